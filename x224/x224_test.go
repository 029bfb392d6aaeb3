package x224

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

// hx decodes a hex dump written with spaces and line breaks.
func hx(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

// Dumps of first packets sent by xfreerdp, and packets built
// the same way.
const (
	// xfreerdp /u:'/~~srv1': "Cookie: mstshash=/~~srv1\r\n", NEG_REQ 0x3.
	dumpMstshash = `03 00 00 2d 28 e0 00 00 00 00 00 43 6f 6f 6b 69 65 3a 20 6d 73 74 73 68 61 73
		68 3d 2f 7e 7e 73 72 76 31 0d 0a 01 00 08 00 03 00 00 00`
	// xfreerdp /load-balance-info:'/~~srv1': raw "/~~srv1\r\n", NEG_REQ 0x3.
	dumpRawToken = `03 00 00 1c 17 e0 00 00 00 00 00 2f 7e 7e 73 72 76 31 0d 0a 01 00 08 00 03 00 00 00`
	// xfreerdp /load-balance-info:'Cookie: msts=/~~srv2': sent verbatim.
	dumpMsts = `03 00 00 29 24 e0 00 00 00 00 00 43 6f 6f 6b 69 65 3a 20 6d 73 74 73 3d 2f 7e 7e
		73 72 76 32 0d 0a 01 00 08 00 03 00 00 00`
	// xfreerdp /u:'CORP\alice': "Cookie: mstshash=alice\r\n".
	dumpAlice = `03 00 00 2b 26 e0 00 00 00 00 00 43 6f 6f 6b 69 65 3a 20 6d 73 74 73 68 61 73
		68 3d 61 6c 69 63 65 0d 0a 01 00 08 00 03 00 00 00`
	// xfreerdp /sec:rdp /u:'/~~srv1': cookie, no RDP_NEG_REQ.
	dumpSecRDP = `03 00 00 25 20 e0 00 00 00 00 00 43 6f 6f 6b 69 65 3a 20 6d 73 74 73 68 61 73
		68 3d 2f 7e 7e 73 72 76 31 0d 0a`
	// Cookie, NEG_REQ with CORRELATION_INFO_PRESENT (0x08), then a 36-byte
	// RDP_NEG_CORRELATION_INFO.
	dumpCorrelation = `03 00 00 51 4c e0 00 00 00 00 00 43 6f 6f 6b 69 65 3a 20 6d 73 74 73 68 61 73
		68 3d 2f 7e 7e 73 72 76 31 0d 0a 01 08 08 00 0b 00 00 00
		06 00 24 00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f 10
		00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00`
	// No routing line at all, NEG_REQ 0x3.
	dumpNoCookie = `03 00 00 13 0e e0 00 00 00 00 00 01 00 08 00 03 00 00 00`
	// No routing line, no RDP_NEG_REQ: the smallest Connection Request.
	dumpBare = `03 00 00 0b 06 e0 00 00 00 00 00`
)

func TestParse(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		wantName string
		want     string // "" means the input, unchanged
	}{
		{"mstshash", dumpMstshash, "srv1", dumpNoCookie},
		{"raw token", dumpRawToken, "srv1", dumpNoCookie},
		{"msts", dumpMsts, "srv2", dumpNoCookie},
		{"mstshash without marker", dumpAlice, "", ""},
		{"sec rdp without NEG_REQ", dumpSecRDP, "srv1", dumpBare},
		{"correlation info", dumpCorrelation, "srv1", `03 00 00 37 32 e0 00 00 00 00 00 01 08 08 00 0b 00 00 00
			06 00 24 00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f 10
			00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00`},
		{"no routing line", dumpNoCookie, "", ""},
		{"bare", dumpBare, "", ""},
		{"case kept", hex.EncodeToString(build("Cookie: mstshash=/~~SRV-1_a.b\r\n", negReq)), "SRV-1_a.b", dumpNoCookie},
		{"longest name", hex.EncodeToString(build("/~~"+strings.Repeat("a", 64)+"\r\n", negReq)), strings.Repeat("a", 64), dumpNoCookie},
		{"other cookie", hex.EncodeToString(build("Cookie: foo=/~~srv1\r\n", negReq)), "", ""},
		{"other raw token", hex.EncodeToString(build("lb.token.1\r\n", negReq)), "", ""},
		{"mstshash empty", hex.EncodeToString(build("Cookie: mstshash=\r\n", negReq)), "", ""},
		{"maximum length", hex.EncodeToString(build("/~~x\r\n", make([]byte, MaxPacketLength-11-6))), "x",
			hex.EncodeToString(build("", make([]byte, MaxPacketLength-11-6)))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := hx(t, tt.in)
			orig := bytes.Clone(in)
			want := in
			if tt.want != "" {
				want = hx(t, tt.want)
			}
			req, err := Parse(in)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if req.Name != tt.wantName {
				t.Errorf("Name = %q, want %q", req.Name, tt.wantName)
			}
			if !bytes.Equal(req.Packet, want) {
				t.Errorf("Packet =\n% x\nwant\n% x", req.Packet, want)
			}
			if !bytes.Equal(in, orig) {
				t.Errorf("Parse modified its input")
			}
			if req.Name == "" && len(req.Packet) > 0 && &req.Packet[0] != &in[0] {
				t.Errorf("Packet is a copy, want the input slice")
			}
			if req.Name != "" && len(req.Packet) > 0 && &req.Packet[0] == &in[0] {
				t.Errorf("Packet aliases the input")
			}
		})
	}
}

var negReq = []byte{0x01, 0x00, 0x08, 0x00, 0x03, 0x00, 0x00, 0x00}

// build makes a Connection Request with correct lengths around the routing
// line and the bytes that follow it.
func build(line string, tail []byte) []byte {
	n := 11 + len(line) + len(tail)
	p := []byte{3, 0, byte(n >> 8), byte(n), byte(n - 5), 0xe0, 0, 0, 0, 0, 0}
	p = append(p, line...)
	return append(p, tail...)
}

func TestParseErrors(t *testing.T) {
	mod := func(s string, f func([]byte) []byte) []byte {
		return f(hx(t, s))
	}
	tests := []struct {
		name string
		in   []byte
		is   error
		msg  string
	}{
		{"empty", nil, ErrMalformed, "truncated: 0 bytes"},
		{"truncated header", []byte{3, 0, 0}, ErrMalformed, "truncated: 3 bytes, a TPKT header needs 4"},
		{"truncated packet", hx(t, dumpMstshash)[:30], ErrMalformed, "TPKT length 45 does not match the packet (30 bytes)"},
		{"length field too small", mod(dumpMstshash, func(b []byte) []byte { b[3] = 0x2c; return b }), ErrMalformed,
			"TPKT length 44 does not match the packet (45 bytes)"},
		{"length field too large", mod(dumpMstshash, func(b []byte) []byte { b[3] = 0x2e; return b }), ErrMalformed,
			"TPKT length 46 does not match the packet (45 bytes)"},
		{"wrong version", mod(dumpMstshash, func(b []byte) []byte { b[0] = 2; return b }), ErrNotRDP,
			"TPKT header starts 0x02 0x00, expected 0x03 0x00"},
		{"TLS", hx(t, "16 03 01 02 00 01 00 01 fc 03 03"), ErrNotRDP, "TPKT header starts 0x16 0x03"},
		{"reserved not zero", mod(dumpMstshash, func(b []byte) []byte { b[1] = 1; return b }), ErrNotRDP,
			"TPKT header starts 0x03 0x01"},
		{"length below minimum", hx(t, "03 00 00 0a 05 e0 00 00 00 00"), ErrMalformed,
			"TPKT length 10 is below the minimum 11"},
		{"length above maximum", build("", make([]byte, MaxPacketLength-10)), ErrMalformed,
			"TPKT length 260 exceeds the maximum 259"},
		{"wrong LI", mod(dumpMstshash, func(b []byte) []byte { b[4] = 0x29; return b }), ErrMalformed,
			"X.224 length indicator 41 does not match the packet (45 bytes, expected 40)"},
		{"wrong code", mod(dumpMstshash, func(b []byte) []byte { b[5] = 0xf0; return b }), ErrMalformed,
			"X.224 TPDU code 0xf0, expected 0xe0 (Connection Request)"},
		{"connection confirm", mod(dumpMstshash, func(b []byte) []byte { b[5] = 0xd0; return b }), ErrMalformed,
			"X.224 TPDU code 0xd0"},
		{"cookie without CR LF", build("Cookie: mstshash=/~~srv1", negReq), ErrMalformed,
			`routing line "Cookie: mstshash=/~~srv1\x01\x00\b\x00\x03\x00\x00\x00" has no CR LF`},
		{"cookie with LF only", build("Cookie: mstshash=/~~srv1\n", nil), ErrMalformed, "has no CR LF"},
		{"raw token without CR LF", build("/~~srv1", nil), ErrMalformed, `routing token "/~~srv1" has no CR LF`},
		{"empty name", build("Cookie: mstshash=/~~\r\n", negReq), ErrInvalidName, "empty name after /~~"},
		{"name with space", build("Cookie: mstshash=/~~srv 1\r\n", negReq), ErrInvalidName,
			`byte 0x20 at position 3 of "srv 1", expected a letter, digit, '-', '_' or '.'`},
		{"name with slash", build("/~~srv/1\r\n", negReq), ErrInvalidName, `byte 0x2f at position 3 of "srv/1"`},
		{"name not ASCII", build("Cookie: msts=/~~sr\u00e9\r\n", negReq), ErrInvalidName, `byte 0xc3 at position 2`},
		{"name with CR", build("/~~srv\r1\r\n", negReq), ErrInvalidName, `byte 0x0d at position 3`},
		{"name too long", build("/~~"+strings.Repeat("a", 65)+"\r\n", negReq), ErrInvalidName,
			"name is 65 characters, at most 64 allowed"},
		{"second routing line", build("Cookie: mstshash=/~~srv1\r\n/~~srv2\r\n", negReq), ErrMalformed,
			"a second routing line follows"},
		{"second cookie", build("Cookie: mstshash=alice\r\nCookie: msts=/~~srv2\r\n", negReq), ErrMalformed,
			"a second routing line follows"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := Parse(tt.in)
			if err == nil {
				t.Fatalf("Parse succeeded: %+v", req)
			}
			if !errors.Is(err, tt.is) {
				t.Errorf("error %q does not wrap %q", err, tt.is)
			}
			if errors.Is(err, ErrInvalidName) && !errors.Is(err, ErrMalformed) {
				t.Errorf("error %q wraps ErrInvalidName but not ErrMalformed", err)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q does not contain %q", err, tt.msg)
			}
			if req.Name != "" || req.Packet != nil {
				t.Errorf("Request = %+v on error, want zero", req)
			}
		})
	}
}

func TestStartsRDP(t *testing.T) {
	tests := []struct {
		name  string
		in    []byte
		isRDP bool
	}{
		{"RDP mstshash", hx(t, dumpMstshash), true},
		{"RDP minimum length", hx(t, dumpBare), true},
		{"TLS ClientHello", hx(t, "16 03 01 02 00 01 00 01 fc 03 03"), false},
		{"HTTP GET", []byte("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"), false},
		{"HTTP OPTIONS", []byte("OPTIONS * HTTP/1.1\r\n"), false},
		{"HTTP/2 prior knowledge", []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), false},
		{"SSH", []byte("SSH-2.0-OpenSSH_9.2\r\n"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := StartsRDP(tt.in[0]); got != tt.isRDP {
				t.Errorf("StartsRDP(0x%02x) = %v, want %v", tt.in[0], got, tt.isRDP)
			}
		})
	}
}

func TestPacketLength(t *testing.T) {
	tests := []struct {
		in   [4]byte
		want int
		is   error
	}{
		{[4]byte{3, 0, 0, 0x2d}, 45, nil},
		{[4]byte{3, 0, 0, 11}, 11, nil},
		{[4]byte{3, 0, 1, 3}, 259, nil},
		{[4]byte{3, 0, 0, 10}, 0, ErrMalformed},
		{[4]byte{3, 0, 1, 4}, 0, ErrMalformed},
		{[4]byte{3, 0, 0xff, 0xff}, 0, ErrMalformed},
		{[4]byte{3, 0, 0, 0}, 0, ErrMalformed},
		{[4]byte{0x16, 3, 1, 2}, 0, ErrNotRDP},
		{[4]byte{3, 0x80, 0, 0x2d}, 0, ErrNotRDP},
	}
	for _, tt := range tests {
		n, err := PacketLength(tt.in)
		if n != tt.want || !errors.Is(err, tt.is) || (tt.is == nil) != (err == nil) {
			t.Errorf("PacketLength(% x) = %d, %v, want %d, %v", tt.in, n, err, tt.want, tt.is)
		}
	}
}

func TestParseAllocs(t *testing.T) {
	named := hx(t, dumpMstshash)
	plain := hx(t, dumpAlice)
	if n := testing.AllocsPerRun(100, func() { _, _ = Parse(plain) }); n != 0 {
		t.Errorf("Parse without a name: %v allocations, want 0", n)
	}
	// The new packet and the name string.
	if n := testing.AllocsPerRun(100, func() { _, _ = Parse(named) }); n > 2 {
		t.Errorf("Parse with a name: %v allocations, want at most 2", n)
	}
}
