package mux

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/yamux"
	"go.uber.org/zap"
)

// The interoperability tests run this package against hashicorp/yamux, which
// gateways and agents of older releases run.

// yamuxConfig is the configuration of hashicorp/yamux with which older
// releases ran, pinging every keepAlive unless that is zero.
func yamuxConfig(keepAlive time.Duration) *yamux.Config {
	c := &yamux.Config{
		AcceptBacklog:          Backlog,
		EnableKeepAlive:        keepAlive > 0,
		KeepAliveInterval:      keepAlive,
		ConnectionWriteTimeout: 30 * time.Second,
		MaxStreamWindowSize:    WindowSize,
		StreamCloseTimeout:     30 * time.Second,
		StreamOpenTimeout:      0,
		LogOutput:              io.Discard,
	}
	if keepAlive <= 0 {
		c.KeepAliveInterval = time.Minute
	}
	return c
}

// tcpPair returns the two ends of a loopback TCP connection, closed when
// the test ends.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	client, err = net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = within(t, "the TCP connection", accepted)
	if server == nil {
		t.Fatal("accepting the TCP connection failed")
	}
	t.Cleanup(func() {
		client.Close()
		server.Close()
	})
	return client, server
}

// patternBlock is the source of the bytes the interoperability tests send:
// stream seed s sends patternBlock from offset s on, round and round.
var patternBlock = func() []byte {
	b := make([]byte, 1<<20+13)
	_, _ = rand.Read(b)
	return b
}()

// writePattern writes n bytes of seed's pattern to w, in writes of
// varying sizes.
func writePattern(w io.Writer, seed, n int) error {
	off := seed % len(patternBlock)
	for i := 0; n > 0; i++ {
		k := min(n, len(patternBlock)-off, 1000+(i*7919)%(96<<10))
		if _, err := w.Write(patternBlock[off : off+k]); err != nil {
			return err
		}
		n -= k
		off = (off + k) % len(patternBlock)
	}
	return nil
}

// readPattern reads n bytes from r and checks that they are seed's
// pattern.
func readPattern(r io.Reader, seed, n int) error {
	off := seed % len(patternBlock)
	buf := make([]byte, 32<<10)
	for got := 0; got < n; {
		k, err := r.Read(buf[:min(len(buf), n-got, len(patternBlock)-off)])
		if !bytes.Equal(buf[:k], patternBlock[off:off+k]) {
			return fmt.Errorf("the bytes from offset %d differ from those sent", got)
		}
		got += k
		off = (off + k) % len(patternBlock)
		if err != nil && got < n {
			return fmt.Errorf("after %d of %d bytes: %w", got, n, err)
		}
	}
	return nil
}

// exchange sends n bytes of seed out's pattern on c while it reads and
// checks n bytes of seed in's pattern, then ends the stream: it closes
// first when closesFirst is set, else it waits for the peer's end (EOF)
// and then closes.
func exchange(c net.Conn, out, in, n int, closesFirst bool) error {
	wrote := make(chan error, 1)
	go func() { wrote <- writePattern(c, out, n) }()
	if err := readPattern(c, in, n); err != nil {
		return fmt.Errorf("reading: %w", err)
	}
	if err := <-wrote; err != nil {
		return fmt.Errorf("writing: %w", err)
	}
	if !closesFirst {
		if k, err := c.Read(make([]byte, 1)); k != 0 || err != io.EOF {
			return fmt.Errorf("after the data, a read returned %d bytes and %v, want EOF", k, err)
		}
	}
	if err := c.Close(); err != nil {
		return fmt.Errorf("closing: %w", err)
	}
	return nil
}

// Sizes of the bulk interoperability tests.
const (
	bulkStreams = 50
	bulkBytes   = 2 << 20 // each way, on each stream
)

// plan is what the first byte a stream carries tells its acceptor: the
// acceptor closes first when it is odd.
func acceptorClosesFirst(plan byte) bool { return plan%2 == 1 }

// idConn is a stream of either implementation.
type idConn interface {
	net.Conn
	StreamID() uint32
}

// acceptBulk accepts bulkStreams streams with accept, in wg, and runs the
// acceptor's side of exchange on each, as its first byte plans; side
// names the acceptor in the errors sent to errs.
func acceptBulk(wg *sync.WaitGroup, errs chan<- error, side string, accept func() (idConn, error)) {
	wg.Go(func() {
		for range bulkStreams {
			st, err := accept()
			if err != nil {
				errs <- fmt.Errorf("%s: accepting: %w", side, err)
				return
			}
			wg.Go(func() {
				plan := make([]byte, 1)
				if _, err := io.ReadFull(st, plan); err != nil {
					errs <- fmt.Errorf("%s: stream %d: reading the opening: %w", side, st.StreamID(), err)
					return
				}
				id := int(st.StreamID())
				if err := exchange(st, 2*id+1, 2*id, bulkBytes, acceptorClosesFirst(plan[0])); err != nil {
					errs <- fmt.Errorf("%s: stream %d: %w", side, id, err)
				}
			})
		}
	})
}

// TestInteropGatewayToYamuxServer shows that the gateway's side runs
// against a hashicorp/yamux server (an agent of an older release): many
// concurrent streams move data both ways intact, half of them closed
// first by each side; the server's keep-alive pings are answered; every
// stream is gone from both sides at the end.
func TestInteropGatewayToYamuxServer(t *testing.T) {
	t.Parallel()
	gc, sc := tcpPair(t)
	server, err := yamux.Server(sc, yamuxConfig(10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	gw := Gateway(gc, zap.NewNop())
	defer gw.Close()

	var wg sync.WaitGroup
	errs := make(chan error, 2*bulkStreams)
	acceptBulk(&wg, errs, "server", func() (idConn, error) { return server.AcceptStream() })
	for i := range bulkStreams {
		st, err := gw.Open(func(uint32) []byte { return []byte{byte(i)} })
		if err != nil {
			t.Fatalf("opening stream %d: %v", i, err)
		}
		wg.Go(func() {
			id := int(st.StreamID())
			if err := exchange(st, 2*id, 2*id+1, bulkBytes, !acceptorClosesFirst(byte(i))); err != nil {
				errs <- fmt.Errorf("gateway: stream %d: %w", id, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if _, err := server.Ping(); err != nil {
		t.Errorf("the server's ping: %v", err)
	}
	eventually(t, "no stream left on either side", func() bool { return gw.NumStreams() == 0 && server.NumStreams() == 0 })
	if gw.IsClosed() || server.IsClosed() {
		t.Fatal("a session ended")
	}
}

// TestInteropYamuxClientToAgent shows that the agent's side runs against a
// hashicorp/yamux client (a gateway of an older release), which opens its
// streams with a window update and writes their opening after: many
// concurrent streams move data both ways intact, half of them closed
// first by each side; pings both ways are answered; every stream is gone
// from both sides at the end.
func TestInteropYamuxClientToAgent(t *testing.T) {
	t.Parallel()
	cc, ac := tcpPair(t)
	client, err := yamux.Client(cc, yamuxConfig(0))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	agent := Agent(ac, nil, zap.NewNop(), 5*time.Millisecond)
	defer agent.Close()

	var wg sync.WaitGroup
	errs := make(chan error, 2*bulkStreams)
	acceptBulk(&wg, errs, "agent", func() (idConn, error) {
		ctx, cancel := context.WithTimeout(context.Background(), waitLong)
		defer cancel()
		return agent.Accept(ctx)
	})
	for i := range bulkStreams {
		st, err := client.OpenStream()
		if err != nil {
			t.Fatalf("opening stream %d: %v", i, err)
		}
		wg.Go(func() {
			id := int(st.StreamID())
			if _, err := st.Write([]byte{byte(i)}); err != nil {
				errs <- fmt.Errorf("client: stream %d: writing the opening: %w", id, err)
				return
			}
			if err := exchange(st, 2*id, 2*id+1, bulkBytes, !acceptorClosesFirst(byte(i))); err != nil {
				errs <- fmt.Errorf("client: stream %d: %w", id, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if _, err := client.Ping(); err != nil {
		t.Errorf("the client's ping: %v", err)
	}
	eventually(t, "the agent's pings answered", func() bool { return answeredPings(agent) >= 3 })
	eventually(t, "no stream left on either side", func() bool { return agent.NumStreams() == 0 && client.NumStreams() == 0 })
	if agent.IsClosed() || client.IsClosed() {
		t.Fatal("a session ended")
	}
}

// answeredPings returns how many of s's keep-alive pings were answered:
// the keep-alive sends a ping only once the one before it was answered.
func answeredPings(s *Session) uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pingTimer != nil {
		return s.pingID - 1
	}
	return s.pingID
}

// TestInteropPings shows that pings cross between this package and
// hashicorp/yamux both ways: the agent's keep-alive pings are answered by
// a yamux client and by a yamux server, and the gateway and the agent
// answer the pings of yamux.
func TestInteropPings(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		ours  func(net.Conn) *Session
		yamux func(io.ReadWriteCloser, *yamux.Config) (*yamux.Session, error)
	}{
		{"agent and client", func(c net.Conn) *Session { return Agent(c, nil, zap.NewNop(), 5*time.Millisecond) }, yamux.Client},
		{"agent and server", func(c net.Conn) *Session { return Agent(c, nil, zap.NewNop(), 5*time.Millisecond) }, yamux.Server},
		{"gateway and server", func(c net.Conn) *Session { return Gateway(c, zap.NewNop()) }, yamux.Server},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			oc, yc := tcpPair(t)
			ys, err := tc.yamux(yc, yamuxConfig(5*time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			defer ys.Close()
			ours := tc.ours(oc)
			defer ours.Close()
			for range 5 {
				if _, err := ys.Ping(); err != nil {
					t.Fatalf("yamux's ping: %v", err)
				}
			}
			if !ours.opens {
				eventually(t, "our pings answered", func() bool { return answeredPings(ours) >= 3 })
			}
			if ours.IsClosed() || ys.IsClosed() {
				t.Fatal("a session ended")
			}
		})
	}
}

// TestInteropBacklogReset shows that a stream the agent resets, here one
// past its backlog, reaches a hashicorp/yamux client as a reset, and that
// the streams within the backlog are kept.
func TestInteropBacklogReset(t *testing.T) {
	t.Parallel()
	cc, ac := tcpPair(t)
	cfg := yamuxConfig(0)
	// yamux opens no more streams than its own backlog before they are
	// answered.
	cfg.AcceptBacklog = Backlog + 1
	client, err := yamux.Client(cc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	agent := Agent(ac, nil, zap.NewNop(), 0)
	defer agent.Close()

	// Fill the backlog, then one more.
	first, err := client.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i < Backlog; i++ {
		if _, err := client.OpenStream(); err != nil {
			t.Fatalf("opening stream %d: %v", i, err)
		}
	}
	eventually(t, "the backlog to fill", func() bool { return agent.NumStreams() == Backlog })
	last, err := client.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	_ = last.SetReadDeadline(time.Now().Add(waitLong))
	if _, err := last.Read(make([]byte, 1)); !errors.Is(err, yamux.ErrConnectionReset) {
		t.Fatalf("reading the stream past the backlog: %v, want a reset", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	st, err := agent.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.StreamID() != first.StreamID() {
		t.Fatalf("accepted stream %d first, want %d", st.StreamID(), first.StreamID())
	}
	if _, err := first.Write([]byte("kept")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 4)
	if _, err := io.ReadFull(st, got); err != nil || string(got) != "kept" {
		t.Fatalf("the first stream carried %q (%v)", got, err)
	}
	if agent.IsClosed() || client.IsClosed() {
		t.Fatal("a session ended")
	}
}
