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
		{Version: Version, Role: RoleControl, Nonce: filled(NonceSize, 1)},
		{Version: Version, Role: RoleControl, Nonce: filled(NonceSize, 1), Resume: filled(SessionSize, 2), Agent: "tildegate-agent/1.2.0+dev"},
		{Version: Version, Role: RoleBack, Nonce: filled(NonceSize, 1), Session: filled(SessionSize, 2), Ticket: filled(TicketSize, 3), Proof: filled(ProofSize, 4)},
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
		"Basic dXNlcjpwYXNz":                                                           "no Tildegate hello",
		"Tildegate v=1; role=control; " + nonce:                                        "version",
		"Tildegate v=3; role=spy; " + nonce:                                            `role "spy"`,
		"Tildegate v=3; role=control":                                                  `"nonce" is missing`,
		"Tildegate v=3; role=control; nonce=short":                                     `field "nonce"`,
		"Tildegate v=3; role=control; " + nonce + "; " + nonce:                         "given twice",
		"Tildegate v=3; role=back; " + nonce:                                           `"session" is missing`,
		"Tildegate v=3; role=control; agent=a<b>; " + nonce:                            `field "agent"`,
		"Tildegate v=3; role=control; agent=" + strings.Repeat("a", 65) + "; " + nonce: `field "agent"`,
		"Tildegate v=2; role=control; " + nonce:                                        "version",
		"Tildegate v=3; garbage; " + nonce:                                             "malformed field",
		"":                                                                             "no Tildegate hello",
		"Tildegate ":                                                                   "malformed field",
		"Tildegate v=3; role=control; " + nonce + "; x=" + strings.Repeat("a", MaxHeaderSize): "at most 1024",
	}
	for in, want := range cases {
		_, err := ParseHello(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseHello(%q) = %v, want an error containing %q", in, err, want)
		}
	}
	var ref *Refusal
	if _, err := ParseHello("Tildegate v=1; role=control; " + nonce); !errors.As(err, &ref) || ref.Code != CodeVersion {
		t.Errorf("an unknown version is not a version refusal: %v", err)
	}
	if _, err := ParseHello("Tildegate v=2; role=" + strings.Repeat("x", 900) + "; " + nonce); err == nil || len(err.Error()) > 200 {
		t.Errorf("an error quotes too much of a long field: %d bytes", len(err.Error()))
	}
}

// TestUnknownFieldsIgnored: later revisions may add fields to the hello
// and the challenge without a new version.
func TestUnknownFieldsIgnored(t *testing.T) {
	h := Hello{Version: Version, Role: RoleControl, Nonce: filled(NonceSize, 1)}
	if got, err := ParseHello(h.String() + "; agent=1.2.3; mux=yamux"); err != nil || !bytes.Equal(got.Nonce, h.Nonce) {
		t.Errorf("hello with unknown fields: %+v, %v", got, err)
	}
	c := Challenge{Version: Version, Nonce: filled(NonceSize, 1), Share: filled(ShareSize, 2)}
	if got, err := ParseChallenge(c.String() + "; instance=abc"); err != nil || !bytes.Equal(got.Share, c.Share) {
		t.Errorf("challenge with unknown fields: %+v, %v", got, err)
	}
}

func TestUpgradeVersion(t *testing.T) {
	for token, want := range map[string]int{"tildegate/2": 2, "TILDEGATE/1": 1, "tildegate/17": 17} {
		if got, ok := UpgradeVersion(token); !ok || got != want {
			t.Errorf("UpgradeVersion(%q) = %d, %v", token, got, ok)
		}
	}
	for _, token := range []string{"tildegate/", "tildegate/x", "websocket", "tildegate/-1", "tilde"} {
		if _, ok := UpgradeVersion(token); ok {
			t.Errorf("UpgradeVersion(%q) accepted", token)
		}
	}
}

func TestChallengeRoundTrip(t *testing.T) {
	for _, c := range []Challenge{
		{Version: Version, Nonce: filled(NonceSize, 9), Bound: true, Share: filled(ShareSize, 1)},
		{Version: Version, Nonce: filled(NonceSize, 8), Share: filled(ShareSize, 2), Instance: "gw-2.eu_west"},
	} {
		got, err := ParseChallenge(c.String())
		if err != nil || got.Bound != c.Bound || !bytes.Equal(got.Nonce, c.Nonce) || !bytes.Equal(got.Share, c.Share) || got.Instance != c.Instance {
			t.Errorf("ParseChallenge(%q) = %+v, %v", c, got, err)
		}
	}
	if _, err := ParseChallenge("v=2; nonce=" + b64.EncodeToString(filled(NonceSize, 1)) + "; share=" + b64.EncodeToString(filled(ShareSize, 1)) + "; binding=maybe"); err == nil {
		t.Error("an unknown binding was accepted")
	}
	base := Challenge{Version: Version, Nonce: filled(NonceSize, 1), Share: filled(ShareSize, 1)}.String()
	for _, bad := range []string{"gw 1", "gw/1", strings.Repeat("g", MaxInstanceLength+1)} {
		if _, err := ParseChallenge(base + "; instance=" + bad); err == nil {
			t.Errorf("instance %q was accepted", bad)
		}
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
