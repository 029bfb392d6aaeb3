package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/tildegate/tildegate/agent"
	"github.com/tildegate/tildegate/caddyfile/balancebin"
)

// tcpKeepAlive lets the system notice a gateway that vanished.
const tcpKeepAlive = 15 * time.Second

// bindDial returns an agent.Options.Dial that connects from the local IP
// address addr, for -bind; nil when addr is empty. It connects to the
// entry's first proxy (or the one HTTPS_PROXY names) when there is one,
// else to the gateway's address it is given.
func bindDial(addr string) (func(context.Context, balancebin.BackEntry, string) (net.Conn, error), error) {
	if addr == "" {
		return nil, nil
	}
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return nil, fmt.Errorf("-bind %q: want an IP address of this machine", addr)
	}
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: ip.AsSlice(), Zone: ip.Zone()}, KeepAlive: tcpKeepAlive}
	return agent.DialGateway(&d), nil
}

// checkDNS checks the address of -dns: empty, or host:port.
func checkDNS(addr string) error {
	if addr == "" {
		return nil
	}
	if _, port, err := net.SplitHostPort(addr); err != nil || port == "" {
		return fmt.Errorf("-dns %q: want the DNS server's host:port, such as 10.0.0.53:53", addr)
	}
	return nil
}

// lookup returns the agent.Options.Lookup of -dns: the DNS server at addr,
// or the system's resolver when addr is empty.
func lookup(addr string) func(context.Context, string) ([]netip.Addr, error) {
	if addr == "" {
		return agent.LookupResolver(nil)
	}
	return agent.LookupResolver(agent.DNSServer(addr))
}
