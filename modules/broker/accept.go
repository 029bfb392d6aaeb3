package broker

import (
	"bufio"
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/tildegate/tildegate/caddyfile/balancebin"
	"github.com/tildegate/tildegate/wire"
	"go.uber.org/zap"
)

// IsUpgrade reports whether r opens a tildegate connection.
func IsUpgrade(r *http.Request) bool {
	return r.Method == http.MethodGet && r.ProtoMajor == 1 &&
		strings.EqualFold(r.Header.Get("Upgrade"), wire.UpgradeToken)
}

// refusalStatus is the HTTP status of each refusal that can answer an
// upgrade request.
var refusalStatus = map[wire.Code]int{
	wire.CodeWrongPassword:     http.StatusForbidden,
	wire.CodeNameTaken:         http.StatusConflict,
	wire.CodeAddressNotAllowed: http.StatusForbidden,
	wire.CodeTLSRequired:       http.StatusForbidden,
	wire.CodeUnknownName:       http.StatusNotFound,
	wire.CodeBadRequest:        http.StatusBadRequest,
	wire.CodeThrottled:         http.StatusTooManyRequests,
	wire.CodeShuttingDown:      http.StatusServiceUnavailable,
	wire.CodeBadTicket:         http.StatusForbidden,
	wire.CodeVersion:           http.StatusBadRequest,
	wire.CodeTooMany:           http.StatusServiceUnavailable,
}

// attempt is one agent connection being checked.
type attempt struct {
	b    *Broker
	name string
	key  string
	addr string // client address as Caddy sees it
	ip   netip.Addr
	role wire.Role
}

// refuse answers the upgrade with a refusal and logs it once, without
// secrets; failures that could be password guessing count toward the
// address's throttle.
func (a *attempt) refuse(w http.ResponseWriter, code wire.Code, reason string) {
	a.log(code, reason)
	w.Header().Set(wire.HeaderRefusal, code.String())
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Connection", "close")
	w.WriteHeader(refusalStatus[code])
	fmt.Fprintln(w, reason)
}

func (a *attempt) log(code wire.Code, reason string) {
	switch code {
	case wire.CodeWrongPassword, wire.CodeBadTicket, wire.CodeUnknownName:
		a.b.throttle.fail(a.addr)
	}
	a.b.logger.Warn("agent connection refused",
		zap.String("name", a.name), zap.String("role", string(a.role)), zap.String("remote_ip", a.addr),
		zap.String("code", code.String()), zap.String("reason", reason))
}

// ServeUpgrade takes an agent's control or back connection for the back
// entry called name. The client address is the one Caddy determined, with
// trusted proxies respected.
func (b *Broker) ServeUpgrade(w http.ResponseWriter, r *http.Request, name string) {
	a := &attempt{b: b, name: name, key: strings.ToLower(name)}
	a.addr, _ = caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string)
	a.ip, _ = netip.ParseAddr(a.addr)
	if blocked, first := b.throttle.blocked(a.addr); blocked {
		if first {
			a.log(wire.CodeThrottled, "too many failed handshakes from this address")
		}
		w.Header().Set(wire.HeaderRefusal, wire.CodeThrottled.String())
		http.Error(w, "too many failed handshakes from this address; try again later", http.StatusTooManyRequests)
		return
	}
	hello, err := wire.ParseHello(r.Header.Get(wire.HeaderHello))
	if err != nil {
		if ref, ok := err.(*wire.Refusal); ok {
			a.refuse(w, ref.Code, ref.Reason)
		} else {
			a.refuse(w, wire.CodeBadRequest, "malformed hello: "+err.Error())
		}
		return
	}
	a.role = hello.Role
	entry, ok := b.entry(a.key)
	if !ok {
		a.refuse(w, wire.CodeUnknownName, fmt.Sprintf("the gateway has no back entry named %q", name))
		return
	}
	if entry.RequireTLS && r.TLS == nil {
		a.refuse(w, wire.CodeTLSRequired, fmt.Sprintf("the entry %q requires TLS; this connection is plain", name))
		return
	}
	if err := a.checkAddress(r.Context(), &entry); err != nil {
		a.refuse(w, wire.CodeAddressNotAllowed, err.Error())
		return
	}
	if hello.Role == wire.RoleBack {
		b.serveBack(w, r, a, hello)
		return
	}
	b.serveControl(w, r, a, hello, &entry)
}

// checkAddress applies the entry's address filter to the client.
func (a *attempt) checkAddress(ctx context.Context, e *Entry) error {
	ok, err := allows(ctx, e.Filter, a.ip)
	if err != nil {
		return fmt.Errorf("checking %s against the entry's filter: %w", a.addr, err)
	}
	if !ok {
		return fmt.Errorf("address %s is not allowed for %q", a.addr, a.name)
	}
	return nil
}

// allows applies a filter, resolving a DNS filter now.
func allows(ctx context.Context, f balancebin.Filter, ip netip.Addr) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, resolveFilterTimeout)
	defer cancel()
	return f.Allows(ip, func(host string) ([]netip.Addr, error) {
		return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	})
}

// hijack takes the connection over from the HTTP server and answers 101.
// The returned conn reads any bytes the server had buffered first.
func hijack(w http.ResponseWriter, extraHeader string) (net.Conn, error) {
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return nil, fmt.Errorf("taking the connection over: %w", err)
	}
	_ = conn.SetDeadline(time.Time{})
	resp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: " + wire.UpgradeToken + "\r\nConnection: Upgrade\r\n" + extraHeader + "\r\n"
	if _, err := brw.WriteString(resp); err != nil {
		conn.Close()
		return nil, err
	}
	if err := brw.Flush(); err != nil {
		conn.Close()
		return nil, err
	}
	if brw.Reader.Buffered() == 0 {
		return conn, nil
	}
	return &bufferedConn{Conn: conn, r: brw.Reader}, nil
}

// bufferedConn reads what the HTTP server had already read before the rest.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails: crypto/rand panics instead
	return b
}

// serveControl runs the control handshake and, when it succeeds, registers
// the agent.
func (b *Broker) serveControl(w http.ResponseWriter, r *http.Request, a *attempt, hello wire.Hello, entry *Entry) {
	binding := wire.Binding(r.TLS)
	challenge := wire.Challenge{Version: wire.Version, Nonce: randomBytes(wire.NonceSize), Bound: r.TLS != nil}
	conn, err := hijack(w, wire.HeaderChallenge+": "+challenge.String()+"\r\n")
	if err != nil {
		b.logger.Debug("control handshake failed", zap.String("name", a.name), zap.Error(err))
		return
	}
	_ = conn.SetDeadline(time.Now().Add(handshakeTimeout))
	fail := func(code wire.Code, reason string) {
		a.log(code, reason)
		_ = wire.WriteFrame(conn, wire.Frame{Type: wire.FrameRefuse, Code: code, Reason: reason})
		conn.Close()
	}
	auth, err := wire.ReadFrame(conn)
	if err != nil || auth.Type != wire.FrameAuth {
		fail(wire.CodeBadRequest, "expected an AUTH frame")
		return
	}
	transcript := wire.NewTranscript(a.name, hello.Nonce, challenge.Nonce, binding)
	if !wire.Equal(auth.Proof, entry.Key.AgentProof(transcript)) {
		fail(wire.CodeWrongPassword, "wrong password")
		return
	}
	reg := &registration{
		b:          b,
		name:       a.name,
		key:        a.key,
		entry:      *entry,
		settings:   entry.Settings.WithDefaults(),
		addr:       a.addr,
		ip:         a.ip,
		tls:        r.TLS != nil,
		session:    randomBytes(wire.SessionSize),
		sessionKey: entry.Key.SessionKey(transcript),
		conn:       conn,
		spare:      min(hello.Spare, maxSpare),
		idle:       make(chan net.Conn, maxSpare),
		slots:      make(chan struct{}, entry.Settings.WithDefaults().MaxPending),
		done:       make(chan struct{}),
	}
	replaced, err := b.register(reg, hello.Resume, auth.ResumeProof, transcript)
	if err != nil {
		fail(wire.CodeNameTaken, err.Error())
		return
	}
	welcome := wire.Frame{Type: wire.FrameWelcome, Proof: entry.Key.GatewayProof(transcript), Session: reg.session,
		Alive: reg.settings.Alive, Dead: reg.settings.Dead}
	if replaced != nil {
		replaced.close(wire.CodeResumedElsewhere, "the agent resumed its session on a new connection")
	}
	if err := reg.send(welcome); err != nil {
		reg.close(0, "connection lost during the handshake")
		return
	}
	_ = conn.SetDeadline(time.Time{})
	b.logger.Info("agent registered", zap.String("name", a.name), zap.String("remote_ip", a.addr),
		zap.Bool("tls", reg.tls), zap.Bool("resumed", replaced != nil))
	go reg.run()
}

// register gives the name to reg, unless a live registration holds it and
// reg does not prove that it resumes that one's session.
func (b *Broker) register(reg *registration, resume, resumeProof []byte, t wire.Transcript) (replaced *registration, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	old := b.regs[reg.key]
	if old != nil {
		if resume == nil || resumeProof == nil || !wire.Equal(resume, old.session) ||
			!wire.Equal(resumeProof, wire.ResumeProof(old.sessionKey, t)) {
			return nil, fmt.Errorf("%q is held by another live agent connection", reg.name)
		}
	}
	b.regs[reg.key] = reg
	return old, nil
}

// serveBack checks a back connection's ticket and hands the connection to
// whoever asked for it.
func (b *Broker) serveBack(w http.ResponseWriter, r *http.Request, a *attempt, hello wire.Hello) {
	t, code, reason := b.redeem(a, hello, wire.Binding(r.TLS))
	if t == nil {
		a.refuse(w, code, reason)
		return
	}
	conn, err := hijack(w, "")
	if err != nil {
		t.reg.backDone()
		b.logger.Debug("back connection failed", zap.String("name", a.name), zap.Error(err))
		return
	}
	b.deliver(t, &backConn{Conn: conn, reg: t.reg})
}
