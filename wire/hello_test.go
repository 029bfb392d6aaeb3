package wire

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func filled(n int, b byte) []byte { return bytes.Repeat([]byte{b}, n) }

func TestHelloRoundTrip(t *testing.T) {
	for _, h := range []Hello{
		{Version: 1, Role: RoleControl, Nonce: filled(NonceSize, 1)},
		{Version: 1, Role: RoleControl, Nonce: filled(NonceSize, 1), Resume: filled(SessionSize, 2), Spare: 3},
		{Version: 1, Role: RoleBack, Nonce: filled(NonceSize, 1), Session: filled(SessionSize, 2), Ticket: filled(TicketSize, 3), Proof: filled(ProofSize, 4)},
	} {
		got, err := ParseHello(h.String())
		if err != nil {
			t.Fatalf("ParseHello(%q): %v", h, err)
		}
		if got.String() != h.String() {
			t.Errorf("round trip: %q became %q", h, got)
		}
	}
}

func TestHelloErrors(t *testing.T) {
	nonce := "nonce=" + b64.EncodeToString(filled(NonceSize, 1))
	cases := map[string]string{
		"v=2; role=control; " + nonce:                "version",
		"v=1; role=spy; " + nonce:                    `role "spy"`,
		"v=1; role=control":                          `"nonce" is missing`,
		"v=1; role=control; nonce=short":             `field "nonce"`,
		"v=1; role=control; " + nonce + "; " + nonce: "given twice",
		"v=1; role=back; " + nonce:                   `"session" is missing`,
		"v=1; role=control; " + nonce + "; spare=99": `"spare"`,
		"v=1; garbage; " + nonce:                     "malformed field",
		"":                                           "malformed field",
	}
	for in, want := range cases {
		_, err := ParseHello(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseHello(%q) = %v, want an error containing %q", in, err, want)
		}
	}
	var ref *Refusal
	if _, err := ParseHello("v=2; role=control; " + nonce); !errors.As(err, &ref) || ref.Code != CodeVersion {
		t.Errorf("an unknown version is not a version refusal: %v", err)
	}
}

func TestChallengeRoundTrip(t *testing.T) {
	for _, c := range []Challenge{{Version: 1, Nonce: filled(NonceSize, 9), Bound: true}, {Version: 1, Nonce: filled(NonceSize, 8)}} {
		got, err := ParseChallenge(c.String())
		if err != nil || got.Bound != c.Bound || !bytes.Equal(got.Nonce, c.Nonce) {
			t.Errorf("ParseChallenge(%q) = %+v, %v", c, got, err)
		}
	}
	if _, err := ParseChallenge("v=1; nonce=" + b64.EncodeToString(filled(NonceSize, 1)) + "; binding=maybe"); err == nil {
		t.Error("an unknown binding was accepted")
	}
}

func TestCodes(t *testing.T) {
	for c := range codeNames {
		got, ok := ParseCode(c.String())
		if !ok || got != c {
			t.Errorf("code %d: name %q parses as %d, %v", c, c, got, ok)
		}
	}
	if Code(200).String() != "code-200" {
		t.Errorf("unknown code prints %q", Code(200))
	}
	if !CodeWrongPassword.Permanent() || CodeNameTaken.Permanent() {
		t.Error("wrong-password must be permanent and name-taken not")
	}
}
