package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/tildegate/tildegate/caddyfile/balancebin"
)

// Dial opens a TCP tunnel to target (host:port) through chain: it dials
// the first proxy with d, asks each proxy with CONNECT for the next one
// and the last for target. With an empty chain it dials target directly.
// The caller starts TLS with target inside the returned connection.
//
// ctx bounds every wait; once Dial returns, ctx no longer matters. A
// failure at a proxy is a *HopError.
func Dial(ctx context.Context, d *net.Dialer, chain []balancebin.Proxy, target string) (net.Conn, error) {
	if d == nil {
		d = &net.Dialer{}
	}
	if len(chain) == 0 {
		return d.DialContext(ctx, "tcp", target)
	}
	raw, err := d.DialContext(ctx, "tcp", chain[0].Address.String())
	if err != nil {
		return nil, hopError(chain, 0, 0, err)
	}
	// Closing raw, which every tunnel inside runs on, ends any wait.
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	if dl, has := ctx.Deadline(); has {
		raw.SetDeadline(dl)
	}
	conn := raw
	for i, px := range chain {
		next := target
		if i+1 < len(chain) {
			next = chain[i+1].Address.String()
		}
		var status int
		conn, status, err = through(conn, px, next)
		if err != nil {
			conn.Close()
			stop()
			switch {
			case errors.Is(err, os.ErrDeadlineExceeded):
				// ctx's deadline, set on conn, may pass before ctx notices.
				err = fmt.Errorf("the proxy did not answer in time: %w", context.DeadlineExceeded)
			case ctx.Err() != nil:
				err = fmt.Errorf("%w while waiting for the proxy", context.Cause(ctx))
			}
			return nil, hopError(chain, i, status, err)
		}
	}
	if !stop() {
		conn.Close()
		return nil, context.Cause(ctx)
	}
	if err := conn.SetDeadline(time.Time{}); err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

// through opens a tunnel to next through the proxy px that conn reaches.
// It returns the connection to use from then on (conn itself, or conn
// with the bytes read past the proxy's answer) and the proxy's status.
func through(conn net.Conn, px balancebin.Proxy, next string) (net.Conn, int, error) {
	br := bufio.NewReader(conn)
	var (
		status int
		err    error
	)
	if px.Auth == balancebin.ProxyAuthNTLM {
		status, err = connectNTLM(conn, br, px, next)
	} else {
		status, err = connectBasic(conn, br, px, next)
	}
	if err != nil {
		return conn, status, err
	}
	return withBuffered(conn, br), status, nil
}

// hopError wraps err as the failure of chain[i].
func hopError(chain []balancebin.Proxy, i, status int, err error) *HopError {
	return &HopError{
		Hop: i + 1, Hops: len(chain),
		Address: chain[i].Address.String(),
		Scheme:  chain[i].Auth.String(),
		Status:  status,
		Err:     err,
	}
}

// loginFailure explains a 407 to the login of px, when the proxy offered
// the schemes offered.
func loginFailure(px balancebin.Proxy, offered []string) error {
	list := strings.Join(offered, ", ")
	switch {
	case px.Auth == balancebin.ProxyAuthNone && list == "":
		return ErrLoginRequired
	case px.Auth == balancebin.ProxyAuthNone:
		return &loginError{ErrLoginRequired,
			fmt.Sprintf("the proxy asks for a login (it offers %s) and none is configured", list)}
	case list == "" || containsFold(offered, schemeName(px.Auth)):
		return ErrLoginRefused
	}
	return &loginError{ErrNoCommonScheme,
		fmt.Sprintf("the proxy offers only %s; configure a login it accepts", list)}
}

// schemeName returns the HTTP name of a login scheme.
func schemeName(a balancebin.ProxyAuth) string {
	switch a {
	case balancebin.ProxyAuthBasic:
		return "Basic"
	case balancebin.ProxyAuthNTLM:
		return "NTLM"
	}
	return ""
}

// Login describes the login used with px, without its password:
// "no login", "Basic as user", "NTLM as DOMAIN\user" or "NTLM as user".
func Login(px balancebin.Proxy) string {
	switch px.Auth {
	case balancebin.ProxyAuthBasic:
		return "Basic as " + px.User
	case balancebin.ProxyAuthNTLM:
		return "NTLM as " + ntlmUser(px)
	}
	return "no login"
}
