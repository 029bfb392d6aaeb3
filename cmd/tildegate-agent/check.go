package main

import (
	"fmt"
	"io"

	"github.com/tildegate/tildegate/agent"
	"github.com/tildegate/tildegate/agent/proxy"
	"github.com/tildegate/tildegate/caddyfile/balancebin"
)

// check is -check: it parses the configuration and says, entry by entry
// with passwords masked, what the agent will do with it. It returns 1 when
// the file does not parse or the agent cannot serve an entry, 0 otherwise.
func check(cfg config, stdout, stderr io.Writer) int {
	entries, err := load(cfg.file)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if len(entries) == 0 {
		fmt.Fprintf(stdout, "%s: no entries: the agent would register nothing\n", cfg.file)
		return 0
	}
	refused := 0
	for i, err := range agent.CheckEntries(entries) {
		e := entries[i]
		fmt.Fprintf(stdout, "%s: %s\n", e.Pos, balancebin.MaskedBack(e))
		if err != nil {
			refused++
			fmt.Fprintf(stdout, "    CANNOT BE SERVED: %v\n", err)
			continue
		}
		lines, err := route(e)
		if err != nil {
			refused++
			fmt.Fprintf(stdout, "    CANNOT BE SERVED: %s: %v\n", e.Pos, err)
			continue
		}
		fmt.Fprintf(stdout, "    registers %q with the gateway %s %s\n", e.Name, e.Gateway, transport(cfg, e))
		for _, line := range lines {
			fmt.Fprintf(stdout, "    %s\n", line)
		}
		fmt.Fprintf(stdout, "    and carries its requests to the local service %s%s\n", e.Local, defaulted(e.LocalSet))
		fmt.Fprintf(stdout, "    and native RDP through the gateway to the RDP service %s%s\n", e.RDP, defaulted(e.RDPSet))
	}
	if refused > 0 {
		fmt.Fprintf(stdout, "%d of %d entries cannot be served\n", refused, len(entries))
		return 1
	}
	fmt.Fprintf(stdout, "%d entries, all can be served\n", len(entries))
	return 0
}

// transport says how the agent reaches the gateway of e.
func transport(cfg config, e balancebin.BackEntry) string {
	if !e.UseTLS() {
		return "over plain HTTP (no TLS)"
	}
	switch {
	case cfg.insecure:
		return "over TLS, without verifying its certificate (-insecure)"
	case cfg.caFile != "":
		return "over TLS, its certificate verified with " + cfg.caFile
	}
	return "over TLS, its certificate verified with the system's roots"
}

// defaulted returns the note for a service the entry does not name, that
// is when set is false.
func defaulted(set bool) string {
	if set {
		return ""
	}
	return " (the default)"
}

// route says, hop by hop, which proxies the agent goes through to reach
// the gateway of e, with the login of each; nothing when it connects
// directly and HTTPS_PROXY is not set. The error is an HTTPS_PROXY the
// agent cannot use.
func route(e balancebin.BackEntry) ([]string, error) {
	var lines []string
	for i, px := range e.Proxies {
		lines = append(lines, fmt.Sprintf("through proxy %d of %d, %s, %s", i+1, len(e.Proxies), px.Address, proxy.Login(px)))
	}
	if len(e.Proxies) > 0 || !proxy.EnvProxySet() {
		return lines, nil
	}
	px, err := proxy.FromEnvironment(e.Gateway.String())
	switch {
	case err != nil:
		return nil, err
	case px == nil:
		return []string{"directly: HTTPS_PROXY is set, but NO_PROXY excludes the gateway or the gateway is a loopback address"}, nil
	}
	return []string{fmt.Sprintf("through the proxy of HTTPS_PROXY, %s, %s", px.Address, proxy.Login(*px))}, nil
}
