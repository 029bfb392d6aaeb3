package mux

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
)

// countingConn counts the writes that reach the connection.
type countingConn struct {
	net.Conn
	writes atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// TestDataFramesAreWrittenWhole: what the gateway writes on a stream
// reaches the agent intact, in both directions, and a data frame's header
// reaches the connection in the same write as its body.
func TestDataFramesAreWrittenWhole(t *testing.T) {
	gwConn, agentConn := net.Pipe()
	counted := &countingConn{Conn: gwConn}
	gw, err := Gateway(counted, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	agent, err := Agent(agentConn, nil, zap.NewNop(), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer agent.Close()

	accepted := make(chan net.Conn, 1)
	go func() {
		s, err := agent.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- s
	}()
	s, err := gw.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := s.Write([]byte("opening")); err != nil {
		t.Fatal(err)
	}
	peer := <-accepted
	if peer == nil {
		t.Fatal("the agent accepted no stream")
	}
	defer peer.Close()
	_ = peer.SetDeadline(time.Now().Add(10 * time.Second))
	if got := make([]byte, 7); func() bool { _, err := io.ReadFull(peer, got); return err != nil || string(got) != "opening" }() {
		t.Fatal("the opening did not arrive")
	}

	const frames, size = 50, 8 << 10
	payload := make([]byte, frames*size)
	_, _ = rand.Read(payload)
	before := counted.writes.Load()
	echoed := make(chan []byte, 1)
	go func() {
		// The agent echoes what it reads, so both sides write frames.
		got := make([]byte, len(payload))
		if _, err := io.ReadFull(peer, got); err != nil {
			echoed <- nil
			return
		}
		_, _ = peer.Write(got)
		echoed <- got
	}()
	for i := range frames {
		if _, err := s.Write(payload[i*size : (i+1)*size]); err != nil {
			t.Fatal(err)
		}
	}
	back := make([]byte, len(payload))
	if _, err := io.ReadFull(s, back); err != nil {
		t.Fatalf("reading the echo: %v", err)
	}
	if got := <-echoed; !bytes.Equal(got, payload) || !bytes.Equal(back, payload) {
		t.Fatal("the bytes changed on the way")
	}
	// At most one write per data frame, and a few window updates.
	if writes := counted.writes.Load() - before; writes > frames+frames/4 {
		t.Errorf("%d writes for %d data frames: headers are written apart from their bodies", writes, frames)
	}
}

// blockingConn is a connection whose writes block until it is closed.
type blockingConn struct {
	net.Conn
	closed chan struct{}
	once   sync.Once
}

func (c *blockingConn) Write([]byte) (int, error) {
	<-c.closed
	return 0, net.ErrClosed
}

func (c *blockingConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return nil
}

// TestBatchConnFullWaitsAndCloses: writes queue up to the limit while the
// connection does not take them, then wait; closing the connection ends
// the wait with an error, and so fails every write after it.
func TestBatchConnFullWaitsAndCloses(t *testing.T) {
	c := newBatchConn(&blockingConn{closed: make(chan struct{})}, nil)
	chunk := make([]byte, 16<<10)
	// The flusher takes the first chunk and blocks writing it; the others
	// queue up to the limit.
	if _, err := c.Write(chunk); err != nil {
		t.Fatal(err)
	}
	for taken := false; !taken; time.Sleep(time.Millisecond) {
		c.mu.Lock()
		taken = c.pending == nil
		c.mu.Unlock()
	}
	for range batchLimit / len(chunk) {
		if _, err := c.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan error, 1)
	go func() {
		_, err := c.Write(chunk)
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("a write past the limit returned at once (%v)", err)
	case <-time.After(50 * time.Millisecond):
	}
	c.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("the waiting write succeeded on a closed connection")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("closing the connection did not end the waiting write")
	}
	if _, err := c.Write(chunk); err == nil {
		t.Fatal("a write after the close succeeded")
	}
}

// failingConn fails every write.
type failingConn struct{ net.Conn }

func (failingConn) Write([]byte) (int, error) { return 0, io.ErrClosedPipe }
func (failingConn) Close() error              { return nil }

// TestBatchConnWriteFailure: once a write fails, every write after it
// fails with that error.
func TestBatchConnWriteFailure(t *testing.T) {
	c := newBatchConn(failingConn{}, nil)
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := c.Write([]byte("x")); err != nil {
			if !errors.Is(err, io.ErrClosedPipe) {
				t.Fatalf("got %v, want the connection's error", err)
			}
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatal("writes kept succeeding after the connection failed")
}

// recordingConn records the writes that reach it.
type recordingConn struct {
	net.Conn
	writes [][]byte
}

func (c *recordingConn) Write(p []byte) (int, error) {
	c.writes = append(c.writes, bytes.Clone(p))
	return len(p), nil
}

// TestHoldConn: writes pass straight through, except between hold and
// release, which send what was written meanwhile in one write.
func TestHoldConn(t *testing.T) {
	rec := &recordingConn{}
	c := NewHoldConn(rec)
	_, _ = c.Write([]byte("a"))
	c.hold()
	_, _ = c.Write([]byte("b"))
	_, _ = c.Write([]byte("c"))
	if len(rec.writes) != 1 {
		t.Fatalf("%d writes reached the connection during the hold, want the one before it", len(rec.writes))
	}
	if err := c.release(); err != nil {
		t.Fatal(err)
	}
	_, _ = c.Write([]byte("d"))
	want := []string{"a", "bc", "d"}
	if len(rec.writes) != len(want) {
		t.Fatalf("writes %q, want %q", rec.writes, want)
	}
	for i, w := range want {
		if string(rec.writes[i]) != w {
			t.Fatalf("writes %q, want %q", rec.writes, want)
		}
	}
}

// alertingConn stands for a TLS connection over under: its writes go to
// under, and its close first writes an alert, as TLS's close_notify.
type alertingConn struct {
	net.Conn
	under *HoldConn
}

func (c alertingConn) Write(p []byte) (int, error) { return c.under.Write(p) }

func (c alertingConn) Close() error {
	_, _ = c.under.Write([]byte("alert"))
	return c.under.Close()
}

// TestBatchConnCloseUnderTLS: closing a connection whose batch is stuck
// in a write beneath TLS returns at once, rather than behind that batch.
func TestBatchConnCloseUnderTLS(t *testing.T) {
	raw := &blockingConn{closed: make(chan struct{})}
	under := NewHoldConn(raw)
	c := newBatchConn(alertingConn{under: under}, under)
	if _, err := c.Write([]byte("frames")); err != nil {
		t.Fatal(err)
	}
	// Wait for the flusher to take the batch: it then blocks writing it.
	for taken := false; !taken; time.Sleep(time.Millisecond) {
		c.mu.Lock()
		taken = c.pending == nil
		c.mu.Unlock()
	}
	closed := make(chan struct{})
	go func() {
		c.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("the close waited behind the stuck batch")
	}
}

// TestCloseDeliversWhatIsQueued: frames queued just before Close, such as
// the last streams' FINs, still reach a peer that reads.
func TestCloseDeliversWhatIsQueued(t *testing.T) {
	ours, theirs := net.Pipe()
	c := newBatchConn(ours, nil)
	for range 5 {
		if _, err := c.Write(make([]byte, 1000)); err != nil {
			t.Fatal(err)
		}
	}
	got := make(chan int64, 1)
	go func() {
		n, _ := io.Copy(io.Discard, theirs)
		got <- n
	}()
	c.Close()
	if n := <-got; n != 5000 {
		t.Errorf("the peer read %d of the 5000 bytes queued before Close", n)
	}
}
