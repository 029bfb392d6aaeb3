package broker

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/tildegate/tildegate/caddyfile/balancebin"
	"github.com/tildegate/tildegate/internal/clientip"
	"github.com/tildegate/tildegate/internal/pipe"
	"github.com/tildegate/tildegate/wire"
	"go.uber.org/zap"
)

// IsUpgrade reports whether r opens a tildegate connection, of any
// version: ServeUpgrade refuses the versions it does not speak.
func IsUpgrade(r *http.Request) bool {
	if r.Method != http.MethodGet || r.ProtoMajor != 1 {
		return false
	}
	_, ok := wire.UpgradeVersion(r.Header.Get("Upgrade"))
	return ok
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
	wire.CodeHeld:              http.StatusServiceUnavailable,
	wire.CodeBusy:              http.StatusServiceUnavailable,
}

// maxLoggedName bounds how much of a name that no entry has is logged.
const maxLoggedName = 64

// attempt is one agent connection being checked.
type attempt struct {
	b     *Broker
	name  string
	key   string
	known bool   // an entry has the name
	addr  string // client address as Caddy sees it
	ip    netip.Addr
	role  wire.Role
}

// refuse answers the upgrade with a refusal and logs it, rate-limited and
// without secrets.
func (a *attempt) refuse(w http.ResponseWriter, code wire.Code, reason string, retryAfter time.Duration) {
	a.log(code, reason)
	w.Header().Set(wire.HeaderRefusal, code.String())
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Connection", "close")
	if retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((retryAfter+time.Second-1)/time.Second)))
	}
	w.WriteHeader(refusalStatus[code])
	fmt.Fprintln(w, reason)
}

// log logs a refusal: one line per code and source per interval, with the
// number held back since the last.
func (a *attempt) log(code wire.Code, reason string) {
	if a.role != wire.RoleBack {
		registrations.WithLabelValues(code.String()).Inc()
		if a.known {
			a.b.refusedControl(a.key, code, reason, a.ip)
		}
	}
	source, logged := a.ip, ""
	if a.known {
		logged = a.key
	}
	if code == wire.CodeBusy {
		// Thousands of agents coming back at once: one line for them all.
		source, logged = netip.Addr{}, ""
	}
	ok, held := a.b.logs.allow(code, source, logged)
	if !ok {
		return
	}
	fields := []zap.Field{zap.String("name", a.name), zap.String("role", string(a.role)), zap.String("remote_ip", a.addr),
		zap.String("code", code.String()), zap.String("reason", reason)}
	if held > 0 {
		fields = append(fields, zap.Int("similar_not_logged", held))
	}
	a.b.logger.Warn("agent connection refused", fields...)
}

// ServeUpgrade takes an agent's control or back connection for the back
// entry called name. The client address is the rightmost hop that is not
// a trusted proxy, whatever trusted_proxies_strict says: a client cannot
// claim another address to dodge a filter or the throttle.
//
// Everything that does not need the password is decided first, the same
// way whatever the password: the version, the hello, the name, TLS, the
// address filter, whether the name is taken, and the throttle.
func (b *Broker) ServeUpgrade(w http.ResponseWriter, r *http.Request, name string) {
	helloValue := r.Header.Get(wire.HeaderHello)
	a := &attempt{b: b, name: name, key: strings.ToLower(name)}
	a.ip, a.addr = clientip.FromRequest(r)
	entry, known := b.entry(a.key)
	a.known = known
	if !known {
		a.name = truncateName(name)
	}
	if v, _ := wire.UpgradeVersion(r.Header.Get("Upgrade")); v != wire.Version {
		ref := wire.VersionRefusal(strings.TrimPrefix(strings.ToLower(r.Header.Get("Upgrade")), wire.UpgradePrefix))
		a.refuse(w, ref.Code, ref.Reason, 0)
		return
	}
	hello, err := wire.ParseHello(helloValue)
	if err != nil {
		var ref *wire.Refusal
		if errors.As(err, &ref) {
			a.refuse(w, ref.Code, ref.Reason, 0)
		} else {
			a.refuse(w, wire.CodeBadRequest, "malformed hello: "+err.Error(), 0)
		}
		return
	}
	a.role = hello.Role
	if !known {
		a.refuse(w, wire.CodeUnknownName, fmt.Sprintf("the gateway has no back entry named %s", wire.Quote(name)), 0)
		return
	}
	if entry.RequireTLS && r.TLS == nil {
		a.refuse(w, wire.CodeTLSRequired, fmt.Sprintf("the entry %q requires TLS; this connection is plain", name), 0)
		return
	}
	if err := a.checkAddress(r.Context(), &entry); err != nil {
		a.refuse(w, wire.CodeAddressNotAllowed, err.Error(), 0)
		return
	}
	if hello.Role == wire.RoleBack {
		b.serveBack(w, r, a, hello)
		return
	}
	if left := b.heldFor(a.key); left > 0 {
		a.refuse(w, wire.CodeHeld, fmt.Sprintf("the gateway's administrator holds %q out for another %s", name, left.Round(time.Second)), left)
		return
	}
	live, resumable := b.resumable(a.key, hello)
	if live && !resumable {
		a.refuse(w, wire.CodeNameTaken, fmt.Sprintf("%q is held by another live agent connection", name), 0)
		return
	}
	leave, busy := b.intake.enter()
	if busy != nil {
		a.refuse(w, wire.CodeBusy, busy.reason, busy.retryAfter)
		return
	}
	defer leave()
	adm, th := b.throttle.admit(a.ip, a.key, resumable)
	if th != nil {
		b.intake.refund()
		throttledHandshakes.WithLabelValues(th.budget).Inc()
		a.refuse(w, wire.CodeThrottled, th.reason+"; try again later", th.retryAfter)
		return
	}
	success := false
	defer func() { adm.done(success) }()
	success = b.serveControl(w, r, a, hello, helloValue, &entry, adm)
}

// truncateName cuts a name that no entry has to what a log line shows.
func truncateName(name string) string {
	if len(name) <= maxLoggedName {
		return name
	}
	return name[:maxLoggedName] + "..."
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
	return pipe.ReaderConn(conn, brw.Reader), nil
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails: crypto/rand panics instead
	return b
}

// serveControl runs the control handshake of docs/protocol.md section 3
// and, when it succeeds, registers the agent. It reports whether it did.
func (b *Broker) serveControl(w http.ResponseWriter, r *http.Request, a *attempt, hello wire.Hello, helloValue string, entry *Entry, adm *admission) bool {
	// A TLS session without keying material to export (TLS 1.2 without
	// extended master secret) binds nothing, and the challenge says so.
	binding := wire.Binding(r.TLS)
	gatewayNonce := randomBytes(wire.NonceSize)
	ex := wire.NewGatewayExchange(entry.Password, wire.SessionID(a.name, hello.Nonce, gatewayNonce, binding))
	challenge := wire.Challenge{Version: wire.Version, Nonce: gatewayNonce, Bound: binding != nil, Share: ex.Share(),
		Instance: Instance()}.String()
	conn, err := hijack(w, wire.HeaderChallenge+": "+challenge+"\r\n")
	if err != nil {
		b.logger.Debug("control handshake failed", zap.String("name", a.name), zap.Error(err))
		return false
	}
	_ = conn.SetDeadline(time.Now().Add(handshakeTimeout))
	fail := func(code wire.Code, reason string) bool {
		a.log(code, reason)
		_ = wire.WriteFrame(conn, wire.Frame{Type: wire.FrameRefuse, Code: code, Reason: reason})
		conn.Close()
		return false
	}
	auth, err := wire.ReadFrame(conn)
	if err != nil || auth.Type != wire.FrameAuth {
		return fail(wire.CodeBadRequest, "expected an AUTH frame")
	}
	keys, err := ex.Finish(auth.Share, helloValue, challenge)
	if err != nil {
		return fail(wire.CodeBadRequest, err.Error())
	}
	settings := entry.Settings.WithDefaults()
	reg := &registration{
		b:           b,
		name:        a.name,
		key:         a.key,
		credentials: credentialsOf(entry),
		settings:    settings,
		addr:        a.addr,
		ip:          a.ip,
		tls:         r.TLS != nil,
		bound:       binding != nil,
		agent:       hello.Agent,
		since:       time.Now(),
		stats:       b.stats(a.key),
		session:     randomBytes(wire.SessionSize),
		sessionKey:  keys.Session,
		conn:        conn,
		sealer:      wire.NewSealer(keys.Session, false),
		muxChanged:  make(chan struct{}, 1),
		wanted:      make(chan struct{}, 1),
		done:        make(chan struct{}),
	}
	reg.lastHeard.Store(clock())
	reg.lastSent.Store(clock()) // the WELCOME, about to go
	// No frame may reach the agent before the WELCOME, though requests
	// may find the registration as soon as it is published.
	reg.wmu.Lock()
	replaced, resumed, code, why := b.register(reg, hello.Resume, auth, keys, adm.resumeOnly)
	if code != 0 {
		reg.wmu.Unlock()
		return fail(code, why)
	}
	err = reg.writeLocked(wire.Frame{Type: wire.FrameWelcome, Confirmation: keys.GatewayConfirmation(), Session: reg.session,
		Alive: settings.Alive, Dead: settings.Dead})
	reg.wmu.Unlock()
	if replaced != nil {
		go replaced.close(wire.CodeResumedElsewhere, "the agent resumed its session on a new connection")
	}
	if err != nil {
		reg.close(0, "connection lost during the handshake")
		return false
	}
	// Its writes have no deadline left (writeLocked cleared the
	// handshake's), and requests may be writing to it by now.
	_ = conn.SetReadDeadline(time.Time{})
	registrations.WithLabelValues("accepted").Inc()
	b.logger.Info("agent registered", zap.String("name", a.name), zap.String("remote_ip", a.addr),
		zap.Bool("tls", reg.tls), zap.Bool("resumed", resumed))
	select {
	case <-b.stopped:
		// Destruct took its list of registrations before this one was
		// published, and its sweep has stopped.
		reg.close(wire.CodeShuttingDown, "the gateway is stopping")
	default:
		b.alive.add(reg)
		go reg.run()
	}
	return true
}

// resumable reports whether a live registration holds the name, and
// whether the hello resumes the session that holds it or the one that
// dropped last and may still be resumed, proving that session's key.
func (b *Broker) resumable(key string, hello wire.Hello) (live, resumable bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	live, id, sk := b.resumeTarget(key)
	if id == nil || hello.Resume == nil || hello.Proof == nil {
		return live, false
	}
	return live, wire.Equal(hello.Resume, id) && wire.Equal(hello.Proof, sk.ResumeHelloProof(id, hello.Nonce))
}

// resumeTarget returns the session a resume of the name would take over:
// the live registration's, or the last one that dropped within the resume
// window; id is nil when there is none. Called with b.mu held.
func (b *Broker) resumeTarget(key string) (live bool, id []byte, sk wire.SessionKey) {
	if old := b.regs[key]; old != nil {
		return true, old.session, old.sessionKey
	}
	if e, ok := b.ended[key]; ok && time.Now().Before(e.until) {
		return false, e.id, e.key
	}
	return false, nil, nil
}

// register gives the name to reg. In this order, so that no answer tells
// a right password from a wrong one where the password does not decide:
// an entry removed or changed since the handshake began ends it; a name
// held by a live registration goes only to a valid resume of its
// session (name-taken otherwise, whatever the password); a handshake
// admitted past the throttle's budgets needs a valid resume (throttled
// otherwise); then the agent's key confirmation decides.
func (b *Broker) register(reg *registration, resume []byte, auth wire.Frame, keys *wire.Keys, resumeOnly bool) (replaced *registration, resumed bool, code wire.Code, why string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	old := b.regs[reg.key]
	_, id, previous := b.resumeTarget(reg.key)
	resumed = id != nil && resume != nil && wire.Equal(resume, id) &&
		auth.ResumeProof != nil && wire.Equal(auth.ResumeProof, keys.ResumeProof(previous))
	current := b.claims[reg.key]
	switch {
	case current == nil:
		return nil, false, wire.CodeEntryRemoved, "the entry was removed from the gateway's configuration"
	case !reg.credentials.sameAs(&current.entry):
		// The entry changed during the handshake, which ran on the old
		// one: the agent must start again under the new.
		return nil, false, wire.CodeShuttingDown, "the entry changed on the gateway during the handshake; try again"
	case old != nil && !resumed:
		return nil, false, wire.CodeNameTaken, fmt.Sprintf("%q is held by another live agent connection", reg.name)
	case resumeOnly && !resumed:
		return nil, false, wire.CodeThrottled, "too many attempts at this name; try again later"
	case !wire.Equal(auth.Confirmation, keys.AgentConfirmation()):
		return nil, false, wire.CodeWrongPassword, "wrong password"
	}
	b.regs[reg.key] = reg
	delete(b.ended, reg.key)
	return old, resumed, 0, ""
}

// serveBack checks a back connection's ticket and gives the connection to
// its registration, which multiplexes sessions over it.
func (b *Broker) serveBack(w http.ResponseWriter, r *http.Request, a *attempt, hello wire.Hello) {
	binding := wire.Binding(r.TLS)
	t, code, reason := b.redeem(a, hello, binding)
	if t == nil {
		a.refuse(w, code, reason, 0)
		return
	}
	proof := t.reg.sessionKey.BackAcceptProof(t.reg.session, hello.Ticket, hello.Nonce, binding)
	conn, err := hijack(w, wire.HeaderProof+": "+wire.EncodeValue(proof)+"\r\n")
	if err != nil {
		b.logger.Debug("back connection failed", zap.String("name", a.name), zap.Error(err))
		return
	}
	t.reg.addMux(conn, hello.Ticket)
}
