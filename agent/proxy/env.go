package proxy

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/tildegate/tildegate/caddyfile/balancebin"
	"golang.org/x/net/http/httpproxy"
)

// FromEnvironment returns the proxy through which a Go program would reach
// target (host:port) with HTTPS: the one HTTPS_PROXY (or https_proxy)
// names, unless NO_PROXY (or no_proxy) excludes target. It returns nil
// when no proxy applies.
//
// The gateway is always reached through a CONNECT tunnel, so HTTPS_PROXY
// is the variable that counts even for a gateway without TLS; HTTP_PROXY
// is not used. As in every Go program, a loopback or localhost target is
// never proxied.
//
// The URL is http://[user:password@]host[:port] (port 80 by default, and
// "host:port" alone means the same). A user:password is a Basic login; a
// user written domain\user (the backslash escaped as %5C) is an NTLM
// login, as in backbalance.bin. Errors never quote the URL, which may hold
// a password.
func FromEnvironment(target string) (*balancebin.Proxy, error) {
	return fromConfig(httpproxy.FromEnvironment(), target)
}

// errInvalidURL is an HTTPS_PROXY that does not parse. It does not quote
// the URL, which may hold a password.
var errInvalidURL = errors.New("HTTPS_PROXY is not a valid proxy URL; want http://[user:password@]host:port")

// EnvProxySet reports whether HTTPS_PROXY or https_proxy is set.
func EnvProxySet() bool { return httpproxy.FromEnvironment().HTTPSProxy != "" }

// fromConfig is FromEnvironment with the environment in cfg.
func fromConfig(cfg *httpproxy.Config, target string) (*balancebin.Proxy, error) {
	reqURL := &url.URL{Scheme: "https", Host: target}
	u, err := cfg.ProxyFunc()(reqURL)
	if err != nil {
		return nil, errInvalidURL // the error quotes the URL: not repeated
	}
	if u == nil {
		if cfg.HTTPSProxy == "" {
			return nil, nil
		}
		// httpproxy ignores a URL it cannot parse; the agent says so
		// rather than connect directly, when the proxy would apply.
		valid := *cfg
		valid.HTTPSProxy = "http://proxy.invalid"
		if u, _ := valid.ProxyFunc()(reqURL); u != nil {
			return nil, errInvalidURL
		}
		return nil, nil
	}
	px, err := proxyFromURL(u)
	if err != nil {
		return nil, fmt.Errorf("HTTPS_PROXY: %w", err)
	}
	return px, nil
}

// proxyFromURL reads a proxy URL.
func proxyFromURL(u *url.URL) (*balancebin.Proxy, error) {
	switch u.Scheme {
	case "http":
	case "https":
		return nil, errors.New("an https:// proxy is not supported: the agent talks plain HTTP to proxies (TLS with the gateway runs inside the tunnel); use http://")
	default:
		return nil, fmt.Errorf("a %s:// proxy is not supported; use http://", u.Scheme)
	}
	host := u.Hostname()
	if host == "" {
		return nil, errors.New("the proxy URL has no host")
	}
	port := 80
	if p := u.Port(); p != "" {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || n == 0 {
			return nil, errors.New("the proxy URL has an invalid port")
		}
		port = int(n)
	}
	px := &balancebin.Proxy{Address: balancebin.HostPort{Host: host, Port: uint16(port)}}
	if u.User == nil {
		return px, nil
	}
	user := u.User.Username()
	px.Password, _ = u.User.Password()
	if domain, name, isNTLM := strings.Cut(user, `\`); isNTLM {
		px.Auth, px.Domain, user = balancebin.ProxyAuthNTLM, domain, name
	} else {
		px.Auth = balancebin.ProxyAuthBasic
	}
	if user == "" {
		return nil, errors.New("the proxy URL has a login without a user name")
	}
	px.User = user
	return px, nil
}
