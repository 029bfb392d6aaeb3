package pipe_test

import (
	"bufio"
	"crypto/rand"
	"crypto/sha256"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/tildegate/tildegate/internal/e2e"
	"github.com/tildegate/tildegate/internal/pipe"
)

// result is what Join returned.
type result struct {
	up, down int64
	err      error
}

// start runs copyFn (Join) on a, aR and b in a goroutine and
// returns where its result arrives.
func start(copyFn func(net.Conn, io.Reader, net.Conn) (int64, int64, error), a net.Conn, aR io.Reader, b net.Conn) <-chan result {
	done := make(chan result, 1)
	go func() {
		up, down, err := copyFn(a, aR, b)
		done <- result{up, down, err}
	}()
	return done
}

// await returns the result from done, failing the test if it takes more
// than 10 seconds.
func await(t *testing.T, done <-chan result) result {
	t.Helper()
	select {
	case r := <-done:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("the pipe did not return")
		return result{}
	}
}

func TestJoinEcho(t *testing.T) {
	gateway, back := e2e.TCPPair(t)
	gateway.SetDeadline(time.Now().Add(30 * time.Second))
	local, err := net.Dial("tcp", e2e.EchoServer(t))
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()

	// Bytes the gateway sent before the pipe starts wait in the reader,
	// as they do after the upgrade.
	if _, err := gateway.Write([]byte("head")); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(back)
	if _, err := br.Peek(1); err != nil {
		t.Fatal(err)
	}
	done := start(pipe.Join, back, br, local)

	// Bulk, then small messages: the copy moves from large buffers back
	// to small ones without losing a byte.
	payload := make([]byte, 8<<20)
	rand.Read(payload)
	sent := sha256.New()
	sent.Write([]byte("head"))
	sent.Write(payload)
	go func() {
		gateway.Write(payload)
		for range 100 {
			gateway.Write([]byte("tick"))
		}
	}()
	sent.Write([]byte(strings.Repeat("tick", 100)))
	want := int64(4 + len(payload) + 400)
	got := sha256.New()
	n, err := io.CopyN(got, gateway, want)
	if err != nil {
		t.Fatalf("reading the echo: %v after %d bytes", err, n)
	}
	if string(got.Sum(nil)) != string(sent.Sum(nil)) {
		t.Fatal("the echo differs from what was sent")
	}
	gateway.Close()
	if r := await(t, done); r.err != nil || r.up != n || r.down != n {
		t.Errorf("join: up %d, down %d, %v; want %d each way and no error", r.up, r.down, r.err, n)
	}
}

func TestJoinFailureClosesBoth(t *testing.T) {
	gateway, back := e2e.TCPPair(t)
	localClient, localServer := e2e.TCPPair(t)
	gateway.SetDeadline(time.Now().Add(10 * time.Second))
	done := start(pipe.Join, back, back, localClient)
	// A reset from the local service ends the pipe, and the gateway
	// sees its end of it close.
	localServer.SetLinger(0)
	localServer.Close()
	if _, err := io.ReadAll(gateway); err != nil {
		t.Logf("gateway read: %v", err)
	}
	await(t, done)
}

func TestJoinEndsBothWhenOneSideEnds(t *testing.T) {
	client, gatewaySide := e2e.TCPPair(t)
	serverSide, server := e2e.TCPPair(t)
	client.SetDeadline(time.Now().Add(10 * time.Second))
	server.SetDeadline(time.Now().Add(10 * time.Second))
	done := start(pipe.Join, gatewaySide, gatewaySide, serverSide)
	client.Write([]byte("hello"))
	got := make([]byte, 5)
	if _, err := io.ReadFull(server, got); err != nil || string(got) != "hello" {
		t.Fatalf("server read %q, %v", got, err)
	}
	server.Write([]byte("hi"))
	if _, err := io.ReadFull(client, got[:2]); err != nil || string(got[:2]) != "hi" {
		t.Fatalf("client read %q, %v", got[:2], err)
	}
	// The client leaves; the server, which never closes on its own, is
	// closed too.
	client.Close()
	if n, err := server.Read(got); n != 0 || err != io.EOF {
		t.Fatalf("server still connected: %d bytes, %v", n, err)
	}
	if r := await(t, done); r.err != nil || r.up != 5 || r.down != 2 {
		t.Errorf("join: up %d, down %d, %v; want 5, 2 and no error", r.up, r.down, r.err)
	}
}
