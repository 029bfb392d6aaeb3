package rdp

import (
	"context"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/tildegate/tildegate/internal/e2e"
	"go.uber.org/zap"
)

func TestUnmarshalCaddyfile(t *testing.T) {
	var w ListenerWrapper
	d := caddyfile.NewTestDispenser(`tildegate_rdp {
		first_packet_timeout 2s
		dial_timeout 1m
		max_conns_per_name 7
		max_conns_per_client 3
	}`)
	if err := w.UnmarshalCaddyfile(d); err != nil {
		t.Fatal(err)
	}
	if w.FirstPacketTimeout != caddy.Duration(2*time.Second) || w.DialTimeout != caddy.Duration(time.Minute) || w.MaxConnsPerName != 7 || w.MaxConnsPerClient != 3 {
		t.Errorf("parsed %+v", w)
	}
	var off ListenerWrapper
	if err := off.UnmarshalCaddyfile(caddyfile.NewTestDispenser("tildegate_rdp {\n max_conns_per_client off\n}")); err != nil || off.MaxConnsPerClient != -1 {
		t.Errorf("max_conns_per_client off: %d, %v; want -1", off.MaxConnsPerClient, err)
	}
	for input, want := range map[string]string{
		"tildegate_rdp extra":                             "wrong argument count",
		"tildegate_rdp {\n max_conns_per_name 0\n}":       `max_conns_per_name: want a positive number, not "0"`,
		"tildegate_rdp {\n max_conns_per_name off\n}":     `max_conns_per_name: want a positive number, not "off"`,
		"tildegate_rdp {\n max_conns_per_client 0\n}":     `max_conns_per_client: want a positive number or off, not "0"`,
		"tildegate_rdp {\n max_conns_per_client -1\n}":    `max_conns_per_client: want a positive number or off, not "-1"`,
		"tildegate_rdp {\n max_conns_per_client off 1\n}": "wrong argument count",
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
	defer w.Cleanup()
	if time.Duration(w.FirstPacketTimeout) != defaultFirstPacketTimeout || time.Duration(w.DialTimeout) != defaultDialTimeout ||
		w.MaxConnsPerName != defaultMaxConnsPerName || w.MaxConnsPerClient != 100 {
		t.Errorf("defaults: %+v", w)
	}
	if defaultMaxConnsPerClient >= defaultMaxConnsPerName {
		t.Error("one address alone can fill a name by default")
	}
	bad := ListenerWrapper{MaxConnsPerName: -1}
	if err := bad.Provision(ctx); err == nil {
		t.Error("a negative limit per name was accepted")
	}
	unlimited := ListenerWrapper{MaxConnsPerClient: -1}
	if err := unlimited.Provision(ctx); err != nil || unlimited.MaxConnsPerClient != -1 {
		t.Errorf("no limit per client: %d, %v", unlimited.MaxConnsPerClient, err)
	}
	defer unlimited.Cleanup()
}

func TestConnCounts(t *testing.T) {
	l := &connCounts{active: make(map[string]int)}
	r1, ok1 := l.acquire("desk", 2)
	r2, ok2 := l.acquire("desk", 2)
	_, ok3 := l.acquire("desk", 2)
	if !ok1 || !ok2 || ok3 {
		t.Fatalf("acquires: %v %v %v, want true true false", ok1, ok2, ok3)
	}
	if _, ok := l.acquire("other", 2); !ok {
		t.Error("another key was refused")
	}
	r1()
	if _, ok := l.acquire("desk", 2); !ok {
		t.Error("refused after a release")
	}
	r2()
	if l.active["desk"] != 1 {
		t.Errorf("count %d, want 1", l.active["desk"])
	}
	for range 100 {
		if _, ok := l.acquire("unlimited", 0); !ok {
			t.Fatal("a limit of 0 refused a connection")
		}
		if _, ok := l.acquire("off", -1); !ok {
			t.Fatal("a negative limit refused a connection")
		}
	}
}

// readSizes records the size of each read on a connection.
type readSizes struct {
	net.Conn
	mu    sync.Mutex
	sizes []int
}

func (r *readSizes) Read(p []byte) (int, error) {
	r.mu.Lock()
	r.sizes = append(r.sizes, len(p))
	r.mu.Unlock()
	return r.Conn.Read(p)
}

// first returns the size of the first read.
func (r *readSizes) first() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sizes[0]
}

// TestConnPassesOtherTraffic: a connection that is not RDP reads exactly
// what the client sent, however the reads are sized, after a first read
// of one byte, and is closed by Caddy as usual.
func TestConnPassesOtherTraffic(t *testing.T) {
	for _, sent := range []string{"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "\x16\x03\x01\x02\x00\x01", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "G"} {
		client, server := net.Pipe()
		raw := &readSizes{Conn: server}
		c := &conn{Conn: raw, w: &ListenerWrapper{}, accepted: time.Now()}
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
		if raw.first() != 1 {
			t.Errorf("%q: the first read asked for %d bytes, want 1", sent, raw.first())
		}
		if c.takenOver.Load() {
			t.Errorf("%q was taken over", sent)
		}
		if err := c.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	}
}

// TestTakeover: an RDP connection ends Caddy's use with an error after one
// byte; what Caddy then does to the connection has no effect, and the
// session reaches the server without its routing line, with no deadline
// left from Caddy's.
func TestTakeover(t *testing.T) {
	client, accepted := e2e.TCPPair(t)
	toServer, server := e2e.TCPPair(t)
	dialed := make(chan string, 1)
	w := &ListenerWrapper{
		FirstPacketTimeout: caddy.Duration(5 * time.Second), DialTimeout: caddy.Duration(5 * time.Second), MaxConnsPerName: 2,
		logger: zap.NewNop(),
		dial: func(ctx context.Context, name, _ string) (net.Conn, string, error) {
			dialed <- name
			return toServer, "server", nil
		},
	}
	raw := &readSizes{Conn: accepted}
	c := &conn{Conn: raw, w: w, accepted: time.Now()}
	routed := []byte{3, 0, 0, 0x2d, 0x28, 0xe0, 0, 0, 0, 0, 0}
	routed = append(routed, "Cookie: mstshash=/~~Desk\r\n"...)
	routed = append(routed, 1, 0, 8, 0, 3, 0, 0, 0)
	if _, err := client.Write(routed); err != nil {
		t.Fatal(err)
	}

	// As net/http does: deadlines for the TLS handshake, then a read.
	c.SetDeadline(time.Now().Add(50 * time.Millisecond))
	if n, err := c.Read(make([]byte, 4096)); n != 0 || err != errTakenOver {
		t.Fatalf("Read = %d, %v; want 0, errTakenOver", n, err)
	}
	if raw.first() != 1 {
		t.Errorf("Caddy's read asked for %d bytes, want 1", raw.first())
	}
	// net/http reads again on a plain HTTP port (h2c preface check, then
	// the request): the RDP gateway's bytes stay where they are.
	for range 3 {
		if n, err := c.Read(make([]byte, 4096)); n != 0 || err != errTakenOver {
			t.Fatalf("Read after the takeover = %d, %v; want 0, errTakenOver", n, err)
		}
	}
	if err := c.Close(); err != nil {
		t.Errorf("Close after the takeover: %v", err)
	}
	c.SetDeadline(time.Now())
	if _, err := c.Write([]byte("HTTP/1.1 400 Bad Request\r\n\r\n")); err != errTakenOver {
		t.Errorf("Write after the takeover: %v", err)
	}
	if name := <-dialed; name != "Desk" {
		t.Errorf("dialled %q", name)
	}

	want := []byte{3, 0, 0, 0x13, 0x0e, 0xe0, 0, 0, 0, 0, 0, 1, 0, 8, 0, 3, 0, 0, 0}
	got := make([]byte, len(want))
	server.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(server, got); err != nil || string(got) != string(want) {
		t.Fatalf("the server got % x (%v), want % x", got, err, want)
	}
	// Past Caddy's deadlines, the session still flows both ways.
	time.Sleep(100 * time.Millisecond)
	client.SetDeadline(time.Now().Add(5 * time.Second))
	server.Write([]byte("confirm"))
	if _, err := io.ReadFull(client, got[:7]); err != nil || string(got[:7]) != "confirm" {
		t.Fatalf("client read %q, %v", got[:7], err)
	}
	client.Write([]byte("input"))
	if _, err := io.ReadFull(server, got[:5]); err != nil || string(got[:5]) != "input" {
		t.Fatalf("server read %q, %v", got[:5], err)
	}
	// The client leaves: the server's connection is closed too.
	client.Close()
	if n, err := server.Read(got); n != 0 || err != io.EOF {
		t.Errorf("server still connected: %d, %v", n, err)
	}
}

// TestSessionLogger: sessions log through the newest loaded config's
// logger; a config that failed to load or was unloaded drops out.
func TestSessionLogger(t *testing.T) {
	// As Caddy loads a config's modules: cancelling the context cleans
	// them up.
	provision := func() (*ListenerWrapper, context.CancelFunc) {
		ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
		mod, err := ctx.LoadModuleByID("caddy.listeners.tildegate_rdp", []byte("{}"))
		if err != nil {
			t.Fatal(err)
		}
		return mod.(*ListenerWrapper), cancel
	}
	running, stopRunning := provision()
	defer stopRunning()
	if running.sessionLogger() != running.logger {
		t.Fatal("the only config's logger is not used")
	}
	next, stopNext := provision()
	if running.sessionLogger() != next.logger {
		t.Error("a session of the old config does not log through the new one")
	}
	stopNext() // the new config failed to load, or was replaced
	if running.sessionLogger() != running.logger {
		t.Error("a failed config's logger is still used")
	}
}
