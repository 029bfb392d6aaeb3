package broker

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/tildegate/tildegate/internal/e2e"
	"github.com/tildegate/tildegate/wire"
	"go.uber.org/zap"
)

// TestEntryChangedDuringHandshake: a handshake that began on an entry's
// old password does not complete once the password changed, nor once the
// entry left: the registration would hold the name on a revoked password.
func TestEntryChangedDuringHandshake(t *testing.T) {
	for name, change := range map[string]func(b *Broker){
		"password changed": func(b *Broker) {
			b.Claim([]Entry{{Name: "home", Password: "new"}})
		},
		"entry removed": func(b *Broker) {
			b.Unclaim([]Entry{{Name: "home", Password: "old"}})
		},
	} {
		t.Run(name, func(t *testing.T) {
			b := newBroker(zap.NewNop())
			b.Claim([]Entry{{Name: "home", Password: "old"}})
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { b.ServeUpgrade(w, r, "home") }))
			defer srv.Close()
			conn, err := net.Dial("tcp", srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
			hello := wire.Hello{Version: wire.Version, Role: wire.RoleControl, Nonce: randomBytes(wire.NonceSize)}.String()
			res, br, err := wire.Upgrade(conn, "gw", "home", hello)
			if err != nil {
				t.Fatal(err)
			}
			change(b) // between the challenge and the agent's confirmation
			challenge := res.Header.Get(wire.HeaderChallenge)
			ch, err := wire.ParseChallenge(challenge)
			if err != nil {
				t.Fatal(err)
			}
			ex := wire.NewAgentExchange("old", wire.SessionID("home", nonceOf(t, hello), ch.Nonce, nil))
			keys, err := ex.Finish(ch.Share, hello, challenge)
			if err != nil {
				t.Fatal(err)
			}
			if err := wire.WriteFrame(conn, wire.Frame{Type: wire.FrameAuth, Share: ex.Share(), Confirmation: keys.AgentConfirmation()}); err != nil {
				t.Fatal(err)
			}
			f, err := wire.NewOpener(keys.Session, false).ReadWelcome(br)
			if err != nil || f.Type != wire.FrameRefuse {
				t.Errorf("the handshake on the old entry ended with %+v, %v; want a REFUSE", f, err)
			}
			if b.Connected("home") {
				t.Error("the name is held on the old entry")
			}
		})
	}
}

// nonceOf returns the nonce of a hello header value.
func nonceOf(t *testing.T, value string) []byte {
	t.Helper()
	h, err := wire.ParseHello(value)
	if err != nil {
		t.Fatal(err)
	}
	return h.Nonce
}

// TestResumePastBudgetNeedsItsKey: a hello that names a session that may
// be resumed goes past the spent budgets only with the proof of that
// session's key; the session id alone, which travels in back hellos, does
// not.
func TestResumePastBudgetNeedsItsKey(t *testing.T) {
	b := newBroker(zap.NewNop())
	b.Claim([]Entry{{Name: "home", Password: "pw"}})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { b.ServeUpgrade(w, r, "home") }))
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	dial := func() net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		return c
	}
	first, err := e2e.Handshake(dial(), nil, addr, "home", "pw", nil)
	if err != nil {
		t.Fatal(err)
	}
	first.Conn().Close() // the connection drops
	for deadline := time.Now().Add(5 * time.Second); b.Connected("home"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the registration did not end")
		}
	}
	for range pairBurst { // attackers at the agent's own address spend its budget
		if a, refused := b.throttle.admit(netip.MustParseAddr("127.0.0.1"), "home", false); refused == nil {
			a.done(false)
		}
	}

	forged := wire.Hello{Version: wire.Version, Role: wire.RoleControl, Nonce: randomBytes(wire.NonceSize),
		Resume: first.Session, Proof: make([]byte, wire.ProofSize)}
	_, _, err = wire.Upgrade(dial(), addr, "home", forged.String())
	var ref *wire.Refusal
	if !errors.As(err, &ref) || ref.Code != wire.CodeThrottled {
		t.Errorf("a resume hello without the session's key: %v, want throttled", err)
	}
	if _, err := e2e.Handshake(dial(), nil, addr, "home", "pw", first); err != nil {
		t.Errorf("the agent's own resume past the spent budget: %v", err)
	}
}

// registerHome registers an agent for the entry home, password pw, with
// b over HTTP, calling before, if not nil, once the server runs.
func registerHome(t *testing.T, b *Broker, before func()) *e2e.Peer {
	t.Helper()
	b.Claim([]Entry{{Name: "home", Password: "pw"}})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { b.ServeUpgrade(w, r, "home") }))
	t.Cleanup(srv.Close)
	if before != nil {
		before()
	}
	addr := srv.Listener.Addr().String()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	p, err := e2e.Handshake(c, nil, addr, "home", "pw", nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestNewRegistrationIsIdle: a registration asks for no multiplexed back
// connection until a session is asked for, and then asks for them at
// once.
func TestNewRegistrationIsIdle(t *testing.T) {
	b := newBroker(zap.NewNop())
	p := registerHome(t, b, nil)
	if f, err := p.NextOpen(time.Second); err == nil {
		t.Fatalf("a registration without a session got an OPEN: %+v", f)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _, _ = b.Dial(ctx, "home", wire.KindHTTP) }()
	if f, err := p.NextOpen(5 * time.Second); err != nil || f.Kind != wire.KindMux {
		t.Fatalf("no OPEN for a session: %+v, %v", f, err)
	}
}

// TestRegistrationAfterTheBrokerStopped: an agent whose handshake ends
// after the broker stopped, and so after Destruct closed the
// registrations it found, is closed at once, not left with nobody to keep
// it alive or watch it.
func TestRegistrationAfterTheBrokerStopped(t *testing.T) {
	b := newBroker(zap.NewNop())
	p := registerHome(t, b, func() { b.Destruct() })
	_, err := p.NextOpen(5 * time.Second)
	var ne net.Error
	if err == nil || errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the registration after the broker stopped stayed open: %v", err)
	}
	// The connection closes before the registration leaves the table.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		b.mu.Lock()
		left := len(b.regs)
		b.mu.Unlock()
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d registrations left after the broker stopped", left)
		}
	}
}
