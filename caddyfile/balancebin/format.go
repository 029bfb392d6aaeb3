package balancebin

import (
	"slices"
	"strconv"
	"strings"
)

// mask replaces passwords in MaskedBack.
const mask = "****"

// Format prints entries as balance.bin: one entry per line in canonical
// spacing, each line ending with "\n". A back entry is written in the "*"
// form when Filter.Star is set, its filter is not FilterNone or BackPort is
// zero, and in the port form otherwise.
func Format(entries []Entry) []byte {
	var b strings.Builder
	for _, e := range entries {
		writeEntry(&b, e)
		b.WriteByte('\n')
	}
	return []byte(b.String())
}

// writeEntry writes one balance.bin entry, without a line break.
func writeEntry(b *strings.Builder, e Entry) {
	if e.TLS != KeywordNone {
		b.WriteString(string(e.TLS))
		b.WriteByte(' ')
	}
	b.WriteString(marker)
	b.WriteString(e.Name)
	b.WriteByte('=')
	switch {
	case !e.Back:
		b.WriteString(e.Target.String())
		if e.RDP {
			b.WriteString(" " + rdpPort)
		}
	case e.Filter.Star || e.Filter.Kind != FilterNone || e.BackPort == 0:
		b.WriteString(e.Password)
		b.WriteString("#:*")
		b.WriteString(e.Filter.Value)
	default:
		b.WriteString(e.Password)
		b.WriteString("#:")
		b.WriteString(strconv.Itoa(int(e.BackPort)))
	}
	b.WriteByte(';')
}

// FormatBack prints entries as backbalance.bin: one entry per line in
// canonical spacing, each line ending with "\n". The local service is
// written when LocalSet is true or it differs from the default,
// 127.0.0.1:80, and the RDP service likewise when RDPSet is true or it
// differs from 127.0.0.1:3389.
func FormatBack(entries []BackEntry) []byte {
	var b strings.Builder
	for _, e := range entries {
		writeBackEntry(&b, e)
		b.WriteByte('\n')
	}
	return []byte(b.String())
}

// MaskedBack returns the entry as FormatBack writes it, without the line
// break, with its password and the passwords of its proxies replaced by
// "****". It is meant for logs and check reports.
func MaskedBack(e BackEntry) string {
	e.Password = mask
	e.Proxies = slices.Clone(e.Proxies)
	for i := range e.Proxies {
		e.Proxies[i].Password = mask
	}
	var b strings.Builder
	writeBackEntry(&b, e)
	return b.String()
}

// writeBackEntry writes one backbalance.bin entry, without a line break.
func writeBackEntry(b *strings.Builder, e BackEntry) {
	if e.TLS {
		b.WriteString("SSL ")
	}
	b.WriteString(marker)
	b.WriteString(e.Name)
	b.WriteByte('=')
	b.WriteString(e.Password)
	b.WriteByte('#')
	b.WriteString(e.Gateway.String())
	for _, px := range e.Proxies {
		b.WriteString(proxySep)
		switch px.Auth {
		case ProxyAuthNTLM:
			b.WriteString(px.Domain)
			b.WriteByte('\\')
			fallthrough
		case ProxyAuthBasic:
			b.WriteString(px.User)
			b.WriteByte(':')
			b.WriteString(px.Password)
			b.WriteByte('@')
		}
		b.WriteString(px.Address.String())
	}
	if e.LocalSet || e.Local != (HostPort{}) && e.Local != defaultLocal {
		b.WriteString(localSep)
		b.WriteString(e.Local.String())
	}
	if e.RDPSet || e.RDP != (HostPort{}) && e.RDP != defaultRDP {
		b.WriteString(rdpSep)
		b.WriteString(e.RDP.String())
	}
	b.WriteByte(';')
}
