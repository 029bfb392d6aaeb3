package agent

import (
	"context"
	"fmt"
	"net"

	"github.com/tildegate/tildegate/caddyfile/balancebin"
	"github.com/tildegate/tildegate/wire"
)

// localAddress returns the local service that a session of the given kind
// reaches for entry e.
func localAddress(e balancebin.BackEntry, kind wire.Kind) (string, error) {
	switch kind {
	case wire.KindHTTP:
		return e.Local.String(), nil
	case wire.KindRDP:
		return e.RDP.String(), nil
	}
	return "", fmt.Errorf("a session of kind %s, which has no local service", kind)
}

// dialLocal connects to the local service.
func dialLocal(ctx context.Context, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: dialTimeout, KeepAlive: tcpKeepAlive}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("connecting to the local service %s: %w", addr, err)
	}
	return conn, nil
}
