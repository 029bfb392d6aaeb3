package rdp

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

func TestUnmarshalCaddyfile(t *testing.T) {
	var w ListenerWrapper
	d := caddyfile.NewTestDispenser(`tildegate_rdp {
		first_packet_timeout 2s
		dial_timeout 1m
		max_conns_per_name 7
	}`)
	if err := w.UnmarshalCaddyfile(d); err != nil {
		t.Fatal(err)
	}
	if w.FirstPacketTimeout != caddy.Duration(2*time.Second) || w.DialTimeout != caddy.Duration(time.Minute) || w.MaxConnsPerName != 7 {
		t.Errorf("parsed %+v", w)
	}
	for input, want := range map[string]string{
		"tildegate_rdp extra":                             "wrong argument count",
		"tildegate_rdp {\n max_conns_per_name 0\n}":       `max_conns_per_name: want a positive number, not "0"`,
		"tildegate_rdp {\n dial_timeout -1s\n}":           `dial_timeout: want a positive duration, not "-1s"`,
		"tildegate_rdp {\n dial_timeout 1s 2s\n}":         "wrong argument count",
		"tildegate_rdp {\n max_conns_per_name\n}":         "wrong argument count",
		"tildegate_rdp {\n first_packet_timeout x\n}":     `first_packet_timeout: want a positive duration, not "x"`,
		"tildegate_rdp {\n max_connections_per_name 1\n}": `unrecognized tildegate_rdp option "max_connections_per_name"`,
	} {
		var w ListenerWrapper
		err := w.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", input, err, want)
		}
	}
}

func TestProvisionDefaults(t *testing.T) {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	var w ListenerWrapper
	if err := w.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	if time.Duration(w.FirstPacketTimeout) != defaultFirstPacketTimeout || time.Duration(w.DialTimeout) != defaultDialTimeout || w.MaxConnsPerName != defaultMaxConnsPerName {
		t.Errorf("defaults: %+v", w)
	}
	bad := ListenerWrapper{MaxConnsPerName: -1}
	if err := bad.Provision(ctx); err == nil {
		t.Error("a negative limit was accepted")
	}
}

func TestNameLimits(t *testing.T) {
	l := &nameLimits{active: make(map[string]int)}
	r1, ok1 := l.acquire("Desk", 2)
	r2, ok2 := l.acquire("desk", 2)
	_, ok3 := l.acquire("DESK", 2)
	if !ok1 || !ok2 || ok3 {
		t.Fatalf("acquires: %v %v %v, want true true false", ok1, ok2, ok3)
	}
	if _, ok := l.acquire("other", 2); !ok {
		t.Error("another name was refused")
	}
	r1()
	if _, ok := l.acquire("desk", 2); !ok {
		t.Error("refused after a release")
	}
	r2()
	if l.active["desk"] != 1 {
		t.Errorf("count %d, want 1", l.active["desk"])
	}
}

// TestConnPassesOtherTraffic: a connection that is not RDP reads exactly
// what the client sent, however the reads are sized, and is closed by
// Caddy as usual.
func TestConnPassesOtherTraffic(t *testing.T) {
	for _, sent := range []string{"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "\x16\x03\x01\x02\x00\x01", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "G"} {
		client, server := net.Pipe()
		c := &conn{Conn: server, w: &ListenerWrapper{}, accepted: time.Now()}
		go func() {
			client.Write([]byte(sent))
			client.Close()
		}()
		var got []byte
		buf := make([]byte, 3)
		for {
			n, err := c.Read(buf)
			got = append(got, buf[:n]...)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("%q: %v", sent, err)
			}
		}
		if string(got) != sent {
			t.Errorf("read %q, want %q", got, sent)
		}
		if c.takenOver.Load() {
			t.Errorf("%q was taken over", sent)
		}
		if err := c.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	}
}
