package main

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/Azure/go-ntlmssp"
)

// exchange runs NEGOTIATE, CHALLENGE and AUTHENTICATE between go-ntlmssp's
// client and the helper's protocol, and returns the helper's last answer.
func exchange(t *testing.T, s *server, login, password string) string {
	t.Helper()
	negotiate, err := ntlmssp.NewNegotiateMessage("", "")
	if err != nil {
		t.Fatal(err)
	}
	tt := s.answer("YR " + base64.StdEncoding.EncodeToString(negotiate))
	blob, ok := strings.CutPrefix(tt, "TT ")
	if !ok {
		t.Fatalf("YR answered %q, want TT", tt)
	}
	challenge, err := base64.StdEncoding.DecodeString(blob)
	if err != nil {
		t.Fatal(err)
	}
	auth, err := ntlmssp.NewAuthenticateMessage(challenge, login, password, nil)
	if err != nil {
		t.Fatalf("go-ntlmssp rejects the CHALLENGE: %v", err)
	}
	return s.answer("KK " + base64.StdEncoding.EncodeToString(auth))
}

func testServer(t *testing.T, users ...string) *server {
	s := &server{domain: "TESTDOMAIN", computer: "TESTPROXY"}
	for _, u := range users {
		p, err := parseUser(u)
		if err != nil {
			t.Fatal(err)
		}
		s.users = append(s.users, p)
	}
	return s
}

func TestAgainstGoNTLMSSP(t *testing.T) {
	s := testServer(t, `\myuser1:mypass`, `mydomain\myuser2:pässwörd`)
	for _, c := range []struct{ login, password, want string }{
		{`myuser1`, "mypass", `AF myuser1`},
		{`MyUser1`, "mypass", `AF MyUser1`},
		{`\myuser1`, "mypass", `AF myuser1`},
		{`mydomain\myuser2`, "pässwörd", `AF mydomain\myuser2`},
		{`MYDOMAIN\myuser2`, "pässwörd", `AF MYDOMAIN\myuser2`},
		{`myuser1`, "wrong", `NA myuser1: wrong password`},
		{`myuser1`, "", `NA myuser1: wrong password`},
		{`mydomain\myuser2`, "pässword", `NA mydomain\myuser2: wrong password`},
		{`myuser2`, "pässwörd", `NA myuser2: unknown user`},
		{`other\myuser1`, "mypass", `NA other\myuser1: unknown user`},
		{`nobody`, "mypass", `NA nobody: unknown user`},
	} {
		if got := exchange(t, s, c.login, c.password); got != c.want {
			t.Errorf("%s with %q: helper answered %q, want %q", c.login, c.password, got, c.want)
		}
	}
}

// TestChallengeLayout checks the CHALLENGE field by field.
func TestChallengeLayout(t *testing.T) {
	sc := []byte{1, 2, 3, 4, 5, 6, 7, 8}
	m := challengeMessage(sc, "DOM", "PC")
	if !bytes.Equal(m[:8], signature) || m[8] != 2 {
		t.Fatalf("header % x", m[:12])
	}
	name, err := field(m, 12)
	if err != nil || fromUTF16le(name) != "DOM" {
		t.Fatalf("TargetName %q %v", name, err)
	}
	if !bytes.Equal(m[24:32], sc) {
		t.Fatalf("server challenge % x", m[24:32])
	}
	info, err := field(m, 40)
	if err != nil {
		t.Fatal(err)
	}
	got := map[uint16]string{}
	for len(info) >= 4 {
		id, n := int(info[0])|int(info[1])<<8, int(info[2])|int(info[3])<<8
		if id == avEOL {
			if n != 0 || len(info) != 4 {
				t.Fatalf("MsvAvEOL is not last: % x", info)
			}
			info = nil
			break
		}
		got[uint16(id)] = fromUTF16le(info[4 : 4+n])
		info = info[4+n:]
	}
	if info != nil {
		t.Fatal("TargetInfo has no MsvAvEOL")
	}
	if got[avNbDomainName] != "DOM" || got[avNbComputerName] != "PC" {
		t.Fatalf("AV pairs %v", got)
	}
}

func TestProtocolErrors(t *testing.T) {
	s := testServer(t, `\u:p`)
	for _, line := range []string{"", "YR", "YR !!!", "YR " + base64.StdEncoding.EncodeToString([]byte("NTLMSSP\x00\x09\x00\x00\x00"))} {
		if got := s.answer(line); !strings.HasPrefix(got, "BH ") {
			t.Errorf("%q answered %q, want BH", line, got)
		}
	}
	// An AUTHENTICATE with no CHALLENGE before it is refused.
	auth := make([]byte, 72)
	copy(auth, signature)
	auth[8] = 3
	if got := s.answer("KK " + base64.StdEncoding.EncodeToString(auth)); !strings.HasPrefix(got, "NA ") {
		t.Errorf("KK without YR answered %q, want NA", got)
	}
}

func TestServeLines(t *testing.T) {
	s := testServer(t, `\u:p`)
	negotiate, _ := ntlmssp.NewNegotiateMessage("", "")
	var out bytes.Buffer
	in := "YR " + base64.StdEncoding.EncodeToString(negotiate) + "\nYR bad\n"
	if err := s.serve(strings.NewReader(in), &out); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "TT ") || !strings.HasPrefix(lines[1], "BH ") {
		t.Fatalf("answers %q", lines)
	}
}

// TestSpecVector is the NTLMv2 example of MS-NLMP 4.2.4.
func TestSpecVector(t *testing.T) {
	got := ntowfv2("Password", "User", "Domain")
	want := []byte{0x0c, 0x86, 0x8a, 0x40, 0x3b, 0xfd, 0x7a, 0x93, 0xa3, 0x00, 0x1e, 0xf2, 0x2e, 0xf0, 0x2e, 0x3f}
	if !bytes.Equal(got, want) {
		t.Fatalf("NTOWFv2 % x, want % x", got, want)
	}
}
