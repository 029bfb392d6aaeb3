package main

import (
	"fmt"
	"io"

	"github.com/tildegate/tildegate/agent"
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
		fmt.Fprintf(stdout, "    registers %q with the gateway %s %s\n", e.Name, e.Gateway, transport(cfg, e))
		fmt.Fprintf(stdout, "    and carries its requests to the local service %s%s\n", e.Local, defaulted(e))
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

// defaulted notes a local service the entry does not name.
func defaulted(e balancebin.BackEntry) string {
	if e.LocalSet {
		return ""
	}
	return " (the default)"
}
