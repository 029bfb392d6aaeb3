package gateway

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	"github.com/tildegate/tildegate/caddyfile/balancebin"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("tildegate", parseCaddyfile)
	httpcaddyfile.RegisterDirectiveOrder("tildegate", httpcaddyfile.Before, "respond")
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	g := new(Handler)
	return g, g.unmarshal(h.Dispenser, &h)
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	tildegate [<matcher>] {
//	    balance_file <path> [{
//	        <reverse_proxy options>
//	    }]
//	    server <name> <upstreams...> [{
//	        <reverse_proxy options>
//	    }]
//	    agent <name> {
//	        password <password>
//	        allow <filter>
//	        require_tls
//	    }
//	    rdp <name> <host:port...>
//	    tunnel {
//	        alive_interval <duration>
//	        dead_after <duration>
//	        back_wait <duration>
//	        ticket_ttl <duration>
//	        max_sessions <n>
//	        back_idle_timeout <duration>
//	        handshake_rate <n>
//	    }
//	    ca_file <path>
//	    poll_interval <duration>
//	    instance_id <id>
//	}
//
// balance_file reads a TSplus balance.bin and reloads it when it changes;
// the options in its block (load balancing, health checks, transport,
// headers: anything reverse_proxy takes but upstreams) apply to every name
// in the file. server defines one name inline: its upstreams and block are
// exactly those of reverse_proxy. Both may appear several times; a name
// defined twice is an error. agent defines a back entry inline: a server
// that runs tildegate-agent and connects out to the gateway; its password
// may be a placeholder such as {env.HOME_PW} or {file./path}, allow is a
// balance.bin address filter (1.2.3.4, 51.254.* or a DNS name) and
// require_tls refuses agents without TLS. rdp gives the addresses that
// native RDP for a name goes to, like balance.bin RDPPORT lines: for a name
// defined by server or agent, or alone. tunnel tunes the back connections
// and sessions of all back entries: back_wait bounds opening a session
// through the agent (then 504), max_sessions limits the web sessions open
// at once per name (default 4096; beyond it a request is answered 503),
// handshake_rate bounds the agents' handshakes the gateway starts a second
// (default 250 per core; beyond it an agent is told to come back later).
// The former max_back_conns is still read as max_sessions, and
// max_pending_tickets is accepted and ignored, both with a warning.
// ca_file is a PEM file of CA certificates that balance.bin SSL_STRICT
// entries trust instead of the system roots.
// poll_interval is how often files are checked when file notifications
// miss a change (default 1s). instance_id names this gateway to agents
// (default: random per process); each gateway of a cluster needs its own,
// never one from shared storage.
func (g *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return g.unmarshal(d, nil)
}

// unmarshal parses the directive; helper, when present, lets reverse_proxy
// blocks use handle_response.
func (g *Handler) unmarshal(d *caddyfile.Dispenser, helper *httpcaddyfile.Helper) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	defined := make(map[string]string)    // lower-case name -> file:line
	rdpDefined := make(map[string]string) // the same for rdp lines
	for d.NextBlock(0) {
		switch d.Val() {
		case "balance_file":
			if !d.NextArg() {
				return d.ArgErr()
			}
			bf := BalanceFile{Path: d.Val()}
			if d.CountRemainingArgs() > 0 {
				return d.ArgErr()
			}
			rp, err := unmarshalProxyBlock(d, helper)
			if err != nil {
				return err
			}
			if len(rp.Upstreams) > 0 || rp.DynamicUpstreamsRaw != nil {
				return d.Errf("balance_file %s: upstreams come from the file; 'to' and 'dynamic' are not allowed here", bf.Path)
			}
			if bf.Proxy, err = marshalProxy(rp); err != nil {
				return d.Errf("balance_file %s: %v", bf.Path, err)
			}
			g.BalanceFiles = append(g.BalanceFiles, bf)

		case "server":
			name, err := defineName(d, defined)
			if err != nil {
				return err
			}
			rp, err := unmarshalProxyBlock(d, helper)
			if err != nil {
				return err
			}
			if len(rp.Upstreams) == 0 && rp.DynamicUpstreamsRaw == nil {
				return d.Errf("server %s: no upstreams", name)
			}
			raw, err := marshalProxy(rp)
			if err != nil {
				return d.Errf("server %s: %v", name, err)
			}
			if g.Servers == nil {
				g.Servers = make(map[string]json.RawMessage)
			}
			g.Servers[name] = raw

		case "agent":
			name, err := defineName(d, defined)
			if err != nil {
				return err
			}
			a, err := unmarshalAgent(d, name)
			if err != nil {
				return err
			}
			if g.Agents == nil {
				g.Agents = make(map[string]AgentEntry)
			}
			g.Agents[name] = a

		case "rdp":
			// An rdp line may name a server or agent, so it has names of its own.
			name, err := defineName(d, rdpDefined)
			if err != nil {
				return err
			}
			addrs := d.RemainingArgs()
			if len(addrs) == 0 {
				return d.Errf("rdp %s: give one or more host:port addresses", name)
			}
			for _, addr := range addrs {
				if _, err := parseHostPort(addr); err != nil {
					return d.Errf("rdp %s: %v", name, err)
				}
			}
			if g.RDP == nil {
				g.RDP = make(map[string][]string)
			}
			g.RDP[name] = addrs

		case "tunnel":
			if d.NextArg() {
				return d.ArgErr()
			}
			if g.Tunnel == nil {
				g.Tunnel = new(TunnelConfig)
			}
			if err := unmarshalTunnel(d, g.Tunnel); err != nil {
				return err
			}

		case "ca_file":
			if !d.NextArg() {
				return d.ArgErr()
			}
			g.CAFile = d.Val()
			if d.NextArg() {
				return d.ArgErr()
			}

		case "poll_interval":
			if !d.NextArg() {
				return d.ArgErr()
			}
			dur, err := caddy.ParseDuration(d.Val())
			if err != nil {
				return d.Errf("poll_interval: %v", err)
			}
			if dur <= 0 {
				return d.Errf("poll_interval must be positive, not %s", d.Val())
			}
			g.PollInterval = caddy.Duration(dur)
			if d.NextArg() {
				return d.ArgErr()
			}

		case "instance_id":
			if !d.NextArg() {
				return d.ArgErr()
			}
			g.InstanceID = d.Val()
			if d.NextArg() {
				return d.ArgErr()
			}

		default:
			return d.Errf("unrecognized tildegate option %q", d.Val())
		}
	}
	return nil
}

// defineName reads the name that follows server, agent or rdp and records
// where it was defined; a name defined twice is an error that names both
// places.
func defineName(d *caddyfile.Dispenser, defined map[string]string) (string, error) {
	directive := d.Val()
	if !d.NextArg() {
		return "", d.ArgErr()
	}
	name := d.Val()
	if err := checkName(name); err != nil {
		return "", d.Err(err.Error())
	}
	here := fmt.Sprintf("%s:%d", d.File(), d.Line())
	if prev, ok := defined[strings.ToLower(name)]; ok {
		return "", d.Errf("%s %s is defined twice: %s and %s", directive, name, prev, here)
	}
	defined[strings.ToLower(name)] = here
	return name, nil
}

func unmarshalAgent(d *caddyfile.Dispenser, name string) (AgentEntry, error) {
	var a AgentEntry
	if d.NextArg() {
		return a, d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "password":
			if !d.NextArg() {
				return a, d.ArgErr()
			}
			a.Password = d.Val()
			if d.NextArg() {
				// Not ArgErr, which would quote a word of the password.
				return a, d.Errf("agent %s: password takes one argument; quote a password that holds blanks", name)
			}
		case "allow":
			if !d.NextArg() {
				return a, d.ArgErr()
			}
			a.Allow = d.Val()
			if _, err := balancebin.ParseFilter(fmt.Sprintf("%s:%d", d.File(), d.Line()), a.Allow); err != nil {
				return a, d.Errf("agent %s: allow: %v", name, err)
			}
		case "require_tls":
			a.RequireTLS = true
		default:
			return a, d.Errf("agent %s: unrecognized option %s", name, quoteOption(d.Val()))
		}
		if d.NextArg() {
			return a, d.ArgErr()
		}
	}
	if a.Password == "" {
		return a, d.Errf("agent %s: password is required", name)
	}
	return a, nil
}

// quoteOption quotes an unrecognized option for an error when it reads
// like one, lower-case letters and "_", and else only says that it is not
// shown: it may be a password written on a line of its own.
func quoteOption(option string) string {
	for _, c := range option {
		if (c < 'a' || c > 'z') && c != '_' {
			return "(not quoted in case it is a password)"
		}
	}
	return strconv.Quote(option)
}

func unmarshalTunnel(d *caddyfile.Dispenser, c *TunnelConfig) error {
	durations := map[string]*caddy.Duration{
		"alive_interval":    &c.AliveInterval,
		"dead_after":        &c.DeadAfter,
		"back_wait":         &c.BackWait,
		"ticket_ttl":        &c.TicketTTL,
		"back_idle_timeout": &c.BackIdleTimeout,
	}
	counts := map[string]*int{
		"max_sessions":        &c.MaxSessions,
		"max_back_conns":      &c.MaxBackConns,
		"max_pending_tickets": &c.MaxPendingTickets,
		"handshake_rate":      &c.HandshakeRate,
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		option := d.Val()
		if !d.NextArg() {
			return d.ArgErr()
		}
		if field, ok := durations[option]; ok {
			dur, err := caddy.ParseDuration(d.Val())
			if err != nil || dur <= 0 {
				return d.Errf("%s: want a positive duration, not %q", option, d.Val())
			}
			*field = caddy.Duration(dur)
		} else if field, ok := counts[option]; ok {
			n, err := strconv.Atoi(d.Val())
			if err != nil || n <= 0 {
				return d.Errf("%s: want a positive number, not %q", option, d.Val())
			}
			*field = n
		} else {
			return d.Errf("unrecognized tunnel option %q", option)
		}
		if d.NextArg() {
			return d.ArgErr()
		}
	}
	if c.DeadAfter > 0 && c.AliveInterval >= c.DeadAfter {
		return d.Errf("tunnel: alive_interval (%s) must be shorter than dead_after (%s)",
			time.Duration(c.AliveInterval), time.Duration(c.DeadAfter))
	}
	return nil
}

// unmarshalProxyBlock hands the rest of the current line and its block to
// reverse_proxy's own parser, as if they followed "reverse_proxy".
func unmarshalProxyBlock(d *caddyfile.Dispenser, helper *httpcaddyfile.Helper) (*reverseproxy.Handler, error) {
	segment := d.NextSegment() // starts at the name or path, which rp takes for its directive

	rp := new(reverseproxy.Handler)
	if err := rp.UnmarshalCaddyfile(caddyfile.NewDispenser(segment)); err != nil {
		return nil, err
	}
	if helper != nil {
		if err := rp.FinalizeUnmarshalCaddyfile(*helper); err != nil {
			return nil, err
		}
	}
	return rp, nil
}

func marshalProxy(rp *reverseproxy.Handler) (json.RawMessage, error) {
	raw, err := json.Marshal(rp)
	if err != nil {
		return nil, err
	}
	if string(raw) == "{}" {
		return nil, nil
	}
	return raw, nil
}

// Interface guard
var _ caddyfile.Unmarshaler = (*Handler)(nil)
