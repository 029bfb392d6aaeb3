package main

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"

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
	resolved := make(map[string]resolvedHost)
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
		fmt.Fprintf(stdout, "    %s\n", addresses(cfg, e, proxied(e), resolved))
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

// resolvedHost is a lookup of a gateway's host, kept for the other
// entries with the same host.
type resolvedHost struct {
	addrs []netip.Addr
	err   error
}

// addresses says which addresses the gateway of e resolves to, and so
// where the agent registers: at each of them. proxied says whether the
// agent reaches the gateway through proxies. resolved keeps the lookups
// by host.
func addresses(cfg config, e balancebin.BackEntry, proxied bool, resolved map[string]resolvedHost) string {
	host := strings.ToLower(e.Gateway.Host)
	r, ok := resolved[host]
	if !ok {
		ctx, cancel := context.WithTimeout(context.Background(), checkResolveTimeout)
		r.addrs, r.err = agent.Addresses(ctx, lookup(cfg.dns), e.Gateway.Host)
		cancel()
		resolved[host] = r
	}
	server := ""
	if cfg.dns != "" {
		server = " (DNS server " + cfg.dns + ")"
	}
	switch {
	case r.err != nil && proxied:
		return fmt.Sprintf("cannot resolve the gateway here%s: %v; connects by name through the proxy: one connection, not one per gateway address", server, r.err)
	case r.err != nil:
		return fmt.Sprintf("cannot resolve the gateway%s: %v; retries every %s", server, r.err, cfg.resolveInterval)
	}
	list := make([]string, len(r.addrs))
	for i, a := range r.addrs {
		list[i] = netip.AddrPortFrom(a, e.Gateway.Port).String()
	}
	if _, err := netip.ParseAddr(e.Gateway.Host); err == nil {
		return "at the address " + list[0]
	}
	return fmt.Sprintf("resolves%s to %s: a registration at each address, one per gateway instance", server, strings.Join(list, ", "))
}

// proxied reports whether the agent reaches the gateway of e through
// proxies: the entry's, or that of HTTPS_PROXY.
func proxied(e balancebin.BackEntry) bool {
	if len(e.Proxies) > 0 {
		return true
	}
	px, err := proxy.FromEnvironment(e.Gateway.String())
	return err == nil && px != nil
}

// checkResolveTimeout bounds a lookup of -check.
const checkResolveTimeout = 10 * time.Second

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
