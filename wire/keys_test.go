package wire

import (
	"bytes"
	"testing"
)

func TestProofsBindEverything(t *testing.T) {
	k := DeriveKey("Home", "secret")
	if !bytes.Equal(k, DeriveKey("home", "secret")) {
		t.Error("the key depends on the name's case")
	}
	if bytes.Equal(k, DeriveKey("home", "Secret")) || bytes.Equal(k, DeriveKey("home2", "secret")) {
		t.Error("different passwords or names give the same key")
	}
	na, ng, binding := filled(NonceSize, 1), filled(NonceSize, 2), filled(32, 3)
	base := NewTranscript("home", na, ng, binding)
	variants := []Transcript{
		NewTranscript("home2", na, ng, binding),
		NewTranscript("home", ng, na, binding),
		NewTranscript("home", na, ng, nil),
		NewTranscript("home", na, ng, filled(32, 4)),
	}
	for i, v := range variants {
		if bytes.Equal(k.AgentProof(base), k.AgentProof(v)) {
			t.Errorf("variant %d: the agent proof does not cover the change", i)
		}
	}
	if bytes.Equal(k.AgentProof(base), k.GatewayProof(base)) || bytes.Equal(k.AgentProof(base), k.SessionKey(base)) {
		t.Error("agent proof, gateway proof and session key must differ")
	}
	sk := k.SessionKey(base)
	p := BackProof(sk, filled(SessionSize, 5), filled(TicketSize, 6), filled(NonceSize, 7), binding)
	if bytes.Equal(p, BackProof(sk, filled(SessionSize, 5), filled(TicketSize, 8), filled(NonceSize, 7), binding)) {
		t.Error("the back proof does not cover the ticket")
	}
	if bytes.Equal(ResumeProof(sk, base), ResumeProof(k.SessionKey(variants[0]), base)) {
		t.Error("the resume proof does not depend on the previous session key")
	}
	if Binding(nil) != nil {
		t.Error("no TLS must give no binding")
	}
}
