package wire

import (
	"bytes"
	"testing"
)

// run is one control handshake between an agent and a gateway that may
// disagree on its inputs; it returns both sides' keys.
type run struct {
	agentPassword, gatewayPassword string
	agentSid, gatewaySid           []byte
	hello, challenge               string // as the gateway sees them
}

func (r run) keys(t *testing.T) (agent, gateway *Keys) {
	t.Helper()
	a := NewAgentExchange(r.agentPassword, r.agentSid)
	g := NewGatewayExchange(r.gatewayPassword, r.gatewaySid)
	agent, err := a.Finish(g.Share(), "hello", "challenge")
	if err != nil {
		t.Fatal(err)
	}
	gateway, err = g.Finish(a.Share(), r.hello, r.challenge)
	if err != nil {
		t.Fatal(err)
	}
	return agent, gateway
}

// TestHandshakeAgreement: the two sides confirm each other exactly when
// they agree on the password, the session identifier and the associated
// data.
func TestHandshakeAgreement(t *testing.T) {
	na, ng, binding := filled(NonceSize, 1), filled(NonceSize, 2), filled(32, 3)
	sid := SessionID("Home", na, ng, binding)
	good := run{"secret", "secret", sid, sid, "hello", "challenge"}
	a, g := good.keys(t)
	if !Equal(a.AgentConfirmation(), g.AgentConfirmation()) || !Equal(a.GatewayConfirmation(), g.GatewayConfirmation()) ||
		!bytes.Equal(a.Session, g.Session) {
		t.Fatal("the same inputs give different keys")
	}
	if Equal(a.AgentConfirmation(), a.GatewayConfirmation()) {
		t.Error("the two confirmation tags are equal")
	}
	if !bytes.Equal(SessionID("home", na, ng, binding), sid) {
		t.Error("the session identifier depends on the name's case")
	}
	bad := map[string]run{
		"password":          {"secret", "Secret", sid, sid, "hello", "challenge"},
		"name":              {"secret", "secret", sid, SessionID("home2", na, ng, binding), "hello", "challenge"},
		"swapped nonces":    {"secret", "secret", sid, SessionID("home", ng, na, binding), "hello", "challenge"},
		"no binding":        {"secret", "secret", sid, SessionID("home", na, ng, nil), "hello", "challenge"},
		"other TLS":         {"secret", "secret", sid, SessionID("home", na, ng, filled(32, 4)), "hello", "challenge"},
		"changed hello":     {"secret", "secret", sid, sid, "hello; spare=3", "challenge"},
		"changed challenge": {"secret", "secret", sid, sid, "hello", "challenge; binding=none"},
	}
	for name, r := range bad {
		a, g := r.keys(t)
		if Equal(a.AgentConfirmation(), g.AgentConfirmation()) || Equal(a.GatewayConfirmation(), g.GatewayConfirmation()) ||
			bytes.Equal(a.Session, g.Session) {
			t.Errorf("%s: the two sides agree", name)
		}
	}
}

// TestHandshakeFreshness: two runs with the same inputs give different
// shares and keys: nothing of one run is of use in another.
func TestHandshakeFreshness(t *testing.T) {
	sid := SessionID("home", filled(NonceSize, 1), filled(NonceSize, 2), nil)
	r := run{"secret", "secret", sid, sid, "hello", "challenge"}
	a1, _ := r.keys(t)
	a2, _ := r.keys(t)
	if bytes.Equal(a1.Session, a2.Session) || Equal(a1.AgentConfirmation(), a2.AgentConfirmation()) {
		t.Error("two runs gave the same keys")
	}
	if Equal(a1.ResumeProof(a2.Session), a2.ResumeProof(a2.Session)) {
		t.Error("a resume proof is the same in two handshakes")
	}
	if Equal(a1.ResumeProof(a1.Session), a1.ResumeProof(a2.Session)) {
		t.Error("a resume proof does not depend on the previous session key")
	}
}

// TestHandshakeInvalidShares: the identity and non-canonical encodings
// abort the handshake on either side.
func TestHandshakeInvalidShares(t *testing.T) {
	sid := SessionID("home", filled(NonceSize, 1), filled(NonceSize, 2), nil)
	for name, share := range map[string][]byte{
		"identity":      make([]byte, ShareSize),
		"non-canonical": bytes.Repeat([]byte{0xff}, ShareSize),
		"short":         filled(ShareSize-1, 1),
		"empty":         nil,
	} {
		if _, err := NewAgentExchange("pw", sid).Finish(share, "h", "c"); err == nil {
			t.Errorf("agent accepted the %s share", name)
		}
		if _, err := NewGatewayExchange("pw", sid).Finish(share, "h", "c"); err == nil {
			t.Errorf("gateway accepted the %s share", name)
		}
	}
}

// TestBackProofs: a back proof covers every input, the kind included, and
// the gateway's answer differs from it.
func TestBackProofs(t *testing.T) {
	k := SessionKey(filled(SessionKeySize, 1))
	s, tk, n, b := filled(SessionSize, 2), filled(TicketSize, 3), filled(NonceSize, 4), filled(32, 5)
	p := k.BackProof(s, tk, KindHTTP, n, b)
	for name, other := range map[string][]byte{
		"key":     SessionKey(filled(SessionKeySize, 9)).BackProof(s, tk, KindHTTP, n, b),
		"session": k.BackProof(filled(SessionSize, 9), tk, KindHTTP, n, b),
		"ticket":  k.BackProof(s, filled(TicketSize, 9), KindHTTP, n, b),
		"kind":    k.BackProof(s, tk, KindRDP, n, b),
		"nonce":   k.BackProof(s, tk, KindHTTP, filled(NonceSize, 9), b),
		"binding": k.BackProof(s, tk, KindHTTP, n, nil),
		"answer":  k.BackAcceptProof(s, tk, n, b),
	} {
		if Equal(p, other) {
			t.Errorf("the back proof does not cover the %s", name)
		}
	}
	if Binding(nil) != nil {
		t.Error("no TLS must give no binding")
	}
}

func BenchmarkHandshake(b *testing.B) {
	sid := SessionID("home", filled(NonceSize, 1), filled(NonceSize, 2), nil)
	for b.Loop() {
		a := NewAgentExchange("secret", sid)
		g := NewGatewayExchange("secret", sid)
		ka, _ := a.Finish(g.Share(), "h", "c")
		kg, _ := g.Finish(a.Share(), "h", "c")
		if !Equal(ka.AgentConfirmation(), kg.AgentConfirmation()) {
			b.Fatal("no agreement")
		}
	}
}
