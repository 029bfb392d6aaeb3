package mux

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/zap"
)

// The stream tests run a gateway against an agent of this package.

// TestFINGivesEOFAfterTheData shows that a stream closed by one side
// gives the other all the data written before the close, then io.EOF on
// every read; that a write after Close fails with ErrStreamClosed; and
// that the stream is gone from both sides once both closed, whichever
// side closed first.
func TestFINGivesEOFAfterTheData(t *testing.T) {
	t.Parallel()
	for _, first := range []string{"gateway", "agent"} {
		t.Run(first, func(t *testing.T) {
			t.Parallel()
			gw, agent := pair(t)
			gs, as := openAccept(t, gw, agent, "")
			closer, other := gs, as
			if first == "agent" {
				closer, other = as, gs
			}
			payload := make([]byte, 1<<20+17)
			_, _ = rand.Read(payload)
			wrote := make(chan error, 1)
			go func() {
				_, err := closer.Write(payload)
				if err == nil {
					err = closer.Close()
				}
				wrote <- err
			}()
			got, err := io.ReadAll(other)
			if err != nil {
				t.Fatalf("reading up to the end: %v", err)
			}
			if !bytes.Equal(got, payload) {
				t.Fatalf("read %d bytes, not the %d written", len(got), len(payload))
			}
			if err := within(t, "the write and close", wrote); err != nil {
				t.Fatal(err)
			}
			for range 2 {
				if n, err := other.Read(make([]byte, 8)); n != 0 || err != io.EOF {
					t.Fatalf("a read after the end returned %d, %v, want EOF", n, err)
				}
			}
			if _, err := closer.Write([]byte("x")); !errors.Is(err, ErrStreamClosed) {
				t.Errorf("a write after Close returned %v, want ErrStreamClosed", err)
			}
			if n := gw.NumStreams() + agent.NumStreams(); n != 2 {
				t.Errorf("%d streams while one side has not closed, want one on each side", n)
			}
			if err := other.Close(); err != nil {
				t.Fatal(err)
			}
			eventually(t, "no stream left on either side", func() bool { return gw.NumStreams() == 0 && agent.NumStreams() == 0 })
			if err := other.Close(); err != nil {
				t.Errorf("closing twice: %v", err)
			}
		})
	}
}

// TestNumStreams shows that NumStreams counts the open streams on both
// sides, including those not accepted yet, and returns to 0 once both
// sides closed them all.
func TestNumStreams(t *testing.T) {
	t.Parallel()
	gw, agent := pair(t)
	var ours, theirs []*Stream
	for range 5 {
		gs, err := gw.Open(func(uint32) []byte { return []byte("x") })
		if err != nil {
			t.Fatal(err)
		}
		ours = append(ours, gs)
	}
	if n := gw.NumStreams(); n != 5 {
		t.Errorf("the gateway counts %d streams, want 5", n)
	}
	eventually(t, "the agent to count the 5 streams", func() bool { return agent.NumStreams() == 5 })
	for range 5 {
		theirs = append(theirs, acceptNow(t, agent))
	}
	for i := range 5 {
		ours[i].Close()
		theirs[i].Close()
	}
	eventually(t, "no stream left on either side", func() bool { return gw.NumStreams() == 0 && agent.NumStreams() == 0 })
}

// TestWriteStopsAtTheWindow shows the flow control: a writer whose peer
// does not read stops after WindowSize bytes, its write waits and a write
// deadline ends the wait with a timeout; a write deadline in the past
// fails at once; reading on the other side resumes a waiting write.
func TestWriteStopsAtTheWindow(t *testing.T) {
	t.Parallel()
	gw, agent := pair(t)
	gs, as := openAccept(t, gw, agent, "o")
	payload := make([]byte, 3*WindowSize)
	_, _ = rand.Read(payload)

	type result struct {
		n   int
		err error
	}
	write := func(p []byte) result {
		c := make(chan result, 1)
		go func() {
			n, err := gs.Write(p)
			c <- result{n, err}
		}()
		return within(t, "the write", c)
	}
	_ = gs.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
	r := write(payload)
	if !isTimeout(r.err) {
		t.Fatalf("a write past the window returned %v, want a timeout", r.err)
	}
	n := r.n
	if want := WindowSize - len("o"); n != want {
		t.Fatalf("%d bytes written before the window ran out, want %d", n, want)
	}
	_ = gs.SetWriteDeadline(time.Now().Add(-time.Second))
	if r := write(payload[n:]); r.n != 0 || !isTimeout(r.err) {
		t.Fatalf("a write with a past deadline returned %d, %v, want a timeout", r.n, r.err)
	}
	as.mu.Lock()
	held := as.recvLen
	as.mu.Unlock()
	if held != WindowSize {
		t.Errorf("the agent holds %d bytes, want the window, %d", held, WindowSize)
	}

	_ = gs.SetWriteDeadline(time.Time{})
	wrote := make(chan error, 1)
	go func() {
		_, err := gs.Write(payload[n:])
		wrote <- err
	}()
	got := make([]byte, 1+len(payload))
	if _, err := io.ReadFull(as, got); err != nil {
		t.Fatal(err)
	}
	if err := within(t, "the resumed write", wrote); err != nil {
		t.Fatalf("the resumed write: %v", err)
	}
	if got[0] != 'o' || !bytes.Equal(got[1:], payload) {
		t.Fatal("the bytes changed on the way")
	}
}

// TestReadDeadline shows that a read deadline set in the past while a Read
// waits ends it at once with a timeout, that a read with a past deadline
// fails at once, that a deadline moved later lets a waiting Read wait past
// the earlier one for data, and that a deadline not moved ends a Read at
// its time. It runs on synctest's clock.
func TestReadDeadline(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		gw, agent := pair(t)
		gs, as := openAccept(t, gw, agent, "")
		type result struct {
			n   int
			err error
		}
		read := func() chan result {
			c := make(chan result, 1)
			go func() {
				n, err := as.Read(make([]byte, 8))
				c <- result{n, err}
			}()
			return c
		}
		// ready returns the read's result if it returned, without waiting.
		ready := func(c chan result) (result, bool) {
			synctest.Wait()
			select {
			case r := <-c:
				return r, true
			default:
				return result{}, false
			}
		}

		waiting := read()
		if r, ok := ready(waiting); ok {
			t.Fatalf("a read with nothing to read returned %d, %v", r.n, r.err)
		}
		_ = as.SetReadDeadline(time.Now().Add(-time.Second))
		if r, ok := ready(waiting); !ok || r.n != 0 || !isTimeout(r.err) {
			t.Fatalf("a waiting read whose deadline was set in the past returned %v: %d, %v, want a timeout at once", ok, r.n, r.err)
		}
		if _, err := as.Read(make([]byte, 8)); !isTimeout(err) {
			t.Fatalf("a read with a past deadline returned %v, want a timeout", err)
		}

		_ = as.SetReadDeadline(time.Now().Add(time.Second))
		waiting = read()
		synctest.Wait()
		_ = as.SetReadDeadline(time.Now().Add(time.Hour))
		time.Sleep(2 * time.Second)
		if r, ok := ready(waiting); ok {
			t.Fatalf("the read returned %d, %v before its moved deadline", r.n, r.err)
		}
		if _, err := gs.Write([]byte("late")); err != nil {
			t.Fatal(err)
		}
		if r := <-waiting; r.n != 4 || r.err != nil {
			t.Fatalf("the read returned %d, %v, want the 4 bytes written", r.n, r.err)
		}

		_ = as.SetReadDeadline(time.Now().Add(time.Second))
		start := time.Now()
		if r := <-read(); !isTimeout(r.err) {
			t.Fatalf("the read returned %d, %v, want a timeout", r.n, r.err)
		}
		if d := time.Since(start); d != time.Second {
			t.Errorf("the read timed out after %v, want its deadline's 1s", d)
		}
	})
}

// TestSessionCloseWakesEverything shows that closing a session wakes a
// blocked Accept, Read and Write with errors, closes its connection, ends
// the peer's session, and fails Open, Accept, Read and Write after it.
func TestSessionCloseWakesEverything(t *testing.T) {
	t.Parallel()
	gc, ac := net.Pipe()
	closes := &closeCounter{Conn: ac}
	gw := Gateway(gc, zap.NewNop())
	agent := Agent(closes, nil, zap.NewNop(), 0)
	defer gw.Close()
	gsRead, asRead := openAccept(t, gw, agent, "")
	_, asWrite := openAccept(t, gw, agent, "")

	accepted := make(chan error, 1)
	go func() {
		_, err := agent.Accept(context.Background())
		accepted <- err
	}()
	read := make(chan error, 1)
	go func() {
		_, err := asRead.Read(make([]byte, 1))
		read <- err
	}()
	gwRead := make(chan error, 1)
	go func() {
		_, err := gsRead.Read(make([]byte, 1))
		gwRead <- err
	}()
	wrote := make(chan error, 1)
	go func() {
		// The gateway does not read: the write waits past the window.
		_, err := asWrite.Write(make([]byte, WindowSize+1))
		wrote <- err
	}()
	eventually(t, "the write to use up the window", func() bool {
		asWrite.mu.Lock()
		defer asWrite.mu.Unlock()
		return asWrite.sendWindow == 0
	})

	if err := agent.Close(); err != nil {
		t.Fatal(err)
	}
	for what, c := range map[string]chan error{"Accept": accepted, "Read": read, "Write": wrote, "the gateway's Read": gwRead} {
		if err := within(t, "the blocked "+what, c); !errors.Is(err, ErrSessionShutdown) {
			t.Errorf("the blocked %s returned %v, want ErrSessionShutdown", what, err)
		}
	}
	if n := closes.n.Load(); n < 1 {
		t.Error("the connection was not closed")
	}
	within(t, "the gateway's session to end", gw.Done())
	if !agent.IsClosed() || !gw.IsClosed() {
		t.Error("IsClosed is false after the end")
	}
	if err := agent.Close(); err != nil {
		t.Errorf("closing twice: %v", err)
	}
	if _, err := gw.Open(func(uint32) []byte { return nil }); !errors.Is(err, ErrSessionShutdown) {
		t.Errorf("Open after the end returned %v", err)
	}
	if _, err := agent.Accept(context.Background()); !errors.Is(err, ErrSessionShutdown) {
		t.Errorf("Accept after the end returned %v", err)
	}
	if _, err := asRead.Read(make([]byte, 1)); !errors.Is(err, ErrSessionShutdown) {
		t.Errorf("Read after the end returned %v", err)
	}
	if _, err := asRead.Write([]byte("x")); !errors.Is(err, ErrSessionShutdown) {
		t.Errorf("Write after the end returned %v", err)
	}
	if n := agent.NumStreams() + gw.NumStreams(); n != 0 {
		t.Errorf("%d streams after the end", n)
	}
}

// closeCounter counts the closes of a connection.
type closeCounter struct {
	net.Conn
	n atomic.Int32
}

func (c *closeCounter) Close() error {
	c.n.Add(1)
	return c.Conn.Close()
}

// TestAcceptHonoursItsContext shows that Accept returns the context's
// error once it is done, and the session goes on.
func TestAcceptHonoursItsContext(t *testing.T) {
	t.Parallel()
	gw, agent := pair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, err := agent.Accept(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Accept returned %v, want the context's deadline", err)
	}
	openAccept(t, gw, agent, "")
}

// TestStreamAddresses shows that a stream has its session's connection's
// addresses, and placeholders when the connection has none.
func TestStreamAddresses(t *testing.T) {
	t.Parallel()
	gw, agent := pair(t)
	gs, _ := openAccept(t, gw, agent, "")
	if gs.LocalAddr().Network() != "pipe" || gs.RemoteAddr().Network() != "pipe" {
		t.Errorf("a stream over a pipe has addresses %v and %v", gs.LocalAddr(), gs.RemoteAddr())
	}
	ours, theirs := net.Pipe()
	defer theirs.Close()
	s := Agent(struct{ io.ReadWriteCloser }{ours}, nil, zap.NewNop(), 0)
	defer s.Close()
	st := newStream(s, 1)
	if st.LocalAddr() == nil || st.RemoteAddr() == nil {
		t.Error("a stream over a connection without addresses has nil ones")
	}
}

// TestCloseTimeout shows that a stream closed on one side whose peer
// never closes it is reset after closeTimeout, on both sides, and that a
// stream closed on both sides in time is not. It runs on synctest's
// clock, on which closeTimeout passes at once.
func TestCloseTimeout(t *testing.T) {
	t.Parallel()
	t.Run("unanswered", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			gw, agent := pair(t)
			gs, as := openAccept(t, gw, agent, "")
			if err := gs.Close(); err != nil {
				t.Fatal(err)
			}
			if _, err := as.Read(make([]byte, 1)); err != io.EOF {
				t.Fatalf("reading after the peer's close: %v, want EOF", err)
			}
			// The agent goes on writing and never closes.
			time.Sleep(closeTimeout - time.Millisecond)
			synctest.Wait()
			if _, err := as.Write([]byte("x")); err != nil {
				t.Fatalf("the stream failed before closeTimeout: %v", err)
			}
			time.Sleep(2 * time.Millisecond)
			synctest.Wait()
			if _, err := as.Write([]byte("x")); !errors.Is(err, ErrStreamReset) {
				t.Errorf("writing after closeTimeout: %v, want ErrStreamReset", err)
			}
			if _, err := as.Read(make([]byte, 1)); !errors.Is(err, ErrStreamReset) {
				t.Errorf("reading after closeTimeout: %v, want ErrStreamReset", err)
			}
			if n, m := gw.NumStreams(), agent.NumStreams(); n != 0 || m != 0 {
				t.Errorf("%d and %d streams left after closeTimeout", n, m)
			}
		})
	})
	t.Run("answered", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			agent, peer := rawAgent(t, 0)
			if err := peer.sendFrame(typeWindowUpdate, flagSYN, 1, 0, nil); err != nil {
				t.Fatal(err)
			}
			st := acceptNow(t, agent)
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}
			if err := peer.sendFrame(typeWindowUpdate, flagFIN, 1, 0, nil); err != nil {
				t.Fatal(err)
			}
			peer.sync()
			if n := agent.NumStreams(); n != 0 {
				t.Errorf("%d streams once both sides closed", n)
			}
			time.Sleep(2 * closeTimeout)
			peer.sync()
			if n := peer.count(isRST(1)); n != 0 {
				t.Error("a stream closed by both sides in time was reset")
			}
			f := peer.waitFrame("the agent's FIN", func(f frame) bool { return f.id == 1 && f.flags&flagFIN != 0 })
			if f.flags&flagACK == 0 {
				t.Error("the agent's first frame on the stream, its FIN, does not acknowledge the stream")
			}
		})
	})
}
