package pipe

import (
	"bufio"
	"crypto/rand"
	"crypto/sha256"
	"io"
	"net"
	"testing"
	"time"

	"github.com/tildegate/tildegate/internal/e2e"
)

func TestSpliceEcho(t *testing.T) {
	gateway, back := e2e.TCPPair(t)
	gateway.SetDeadline(time.Now().Add(30 * time.Second))
	local, err := net.Dial("tcp", e2e.EchoServer(t))
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()

	// Bytes the gateway sent before the splice starts wait in the reader,
	// as they do after the upgrade.
	if _, err := gateway.Write([]byte("head")); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(back)
	if _, err := br.Peek(1); err != nil {
		t.Fatal(err)
	}
	type result struct {
		up, down int64
		err      error
	}
	done := make(chan result, 1)
	go func() {
		up, down, err := Splice(back, br, local)
		done <- result{up, down, err}
	}()

	payload := make([]byte, 8<<20)
	rand.Read(payload)
	sent := sha256.New()
	sent.Write([]byte("head"))
	sent.Write(payload)
	go func() {
		gateway.Write(payload)
		// Half-close: the end of the gateway's input reaches the local
		// service, whose answer still comes back in full.
		gateway.CloseWrite()
	}()
	got := sha256.New()
	n, err := io.Copy(got, gateway)
	if err != nil {
		t.Fatalf("reading the echo: %v", err)
	}
	if want := int64(len(payload) + 4); n != want {
		t.Fatalf("echoed %d bytes, want %d", n, want)
	}
	if string(got.Sum(nil)) != string(sent.Sum(nil)) {
		t.Fatal("the echo differs from what was sent")
	}
	select {
	case r := <-done:
		if r.err != nil || r.up != n || r.down != n {
			t.Errorf("splice: up %d, down %d, %v; want %d each way and no error", r.up, r.down, r.err, n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("splice did not return when both directions ended")
	}
}

func TestSpliceHalfCloseFromLocal(t *testing.T) {
	gateway, back := e2e.TCPPair(t)
	localClient, localServer := e2e.TCPPair(t)
	gateway.SetDeadline(time.Now().Add(10 * time.Second))
	localServer.SetDeadline(time.Now().Add(10 * time.Second))
	done := make(chan error, 1)
	go func() {
		_, _, err := Splice(back, back, localClient)
		done <- err
	}()
	// The local service answers and closes its writing side: the gateway
	// reads the answer and the end, and can still send.
	localServer.Write([]byte("bye"))
	localServer.CloseWrite()
	b, err := io.ReadAll(gateway)
	if err != nil || string(b) != "bye" {
		t.Fatalf("gateway read %q, %v", b, err)
	}
	gateway.Write([]byte("late"))
	gateway.CloseWrite()
	b, err = io.ReadAll(localServer)
	if err != nil || string(b) != "late" {
		t.Fatalf("local read %q, %v", b, err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("splice: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("splice did not return")
	}
}

func TestSpliceFailureClosesBoth(t *testing.T) {
	gateway, back := e2e.TCPPair(t)
	localClient, localServer := e2e.TCPPair(t)
	gateway.SetDeadline(time.Now().Add(10 * time.Second))
	done := make(chan error, 1)
	go func() {
		_, _, err := Splice(back, back, localClient)
		done <- err
	}()
	// A reset from the local service ends the pipe, and the gateway
	// sees its end of it close.
	localServer.SetLinger(0)
	localServer.Close()
	if _, err := io.ReadAll(gateway); err != nil {
		t.Logf("gateway read: %v", err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("splice did not return after the local service failed")
	}
}

func TestJoinEndsBothWhenOneSideEnds(t *testing.T) {
	client, gatewaySide := e2e.TCPPair(t)
	serverSide, server := e2e.TCPPair(t)
	client.SetDeadline(time.Now().Add(10 * time.Second))
	server.SetDeadline(time.Now().Add(10 * time.Second))
	type result struct {
		up, down int64
		err      error
	}
	done := make(chan result, 1)
	go func() {
		up, down, err := Join(gatewaySide, gatewaySide, serverSide)
		done <- result{up, down, err}
	}()
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
	select {
	case r := <-done:
		if r.err != nil || r.up != 5 || r.down != 2 {
			t.Errorf("join: up %d, down %d, %v; want 5, 2 and no error", r.up, r.down, r.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("join did not return")
	}
}
