package mux

import (
	"bytes"
	"errors"
	"io"
	"net"
	"runtime"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/zap"
)

// The protocol tests talk to a session through frames built by hand, as
// a peer of another implementation, or a hostile one, would send them.

// windowGranted returns the sum of the window updates for stream id the
// peer got.
func windowGranted(p *rawPeer, id uint32) uint32 {
	var sum uint32
	for _, f := range p.all() {
		if f.typ == typeWindowUpdate && f.id == id {
			sum += f.length
		}
	}
	return sum
}

// dataFrames returns frames carrying n bytes of data for stream id, in
// bodies of at most size bytes.
func dataFrames(id uint32, n, size int) []byte {
	var b []byte
	for i := 0; n > 0; i++ {
		k := min(n, size)
		b = appendFrame(b, typeData, 0, id, uint32(k), bytes.Repeat([]byte{byte(i)}, k))
		n -= k
	}
	return b
}

// TestOpenSendsSYNOnADataFrame shows how the gateway opens a stream: one
// data frame with the SYN flag, an odd id that grows, and the opening,
// which may hold the id, as its body; an opening larger than the window
// is refused.
func TestOpenSendsSYNOnADataFrame(t *testing.T) {
	t.Parallel()
	gw, peer := rawGateway(t)
	var ids []uint32
	for range 3 {
		st, err := gw.Open(func(id uint32) []byte { return []byte{'o', byte(id)} })
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, st.StreamID())
	}
	for i, id := range ids {
		if id != uint32(2*i+1) {
			t.Errorf("stream %d has id %d, want %d", i, id, 2*i+1)
		}
		f := peer.waitFrame("the opening", func(f frame) bool { return f.id == id })
		if f.typ != typeData || f.flags != flagSYN || string(f.body) != string([]byte{'o', byte(id)}) {
			t.Errorf("stream %d opened with type %d, flags %#x, body %q", id, f.typ, f.flags, f.body)
		}
	}
	if _, err := gw.Open(func(uint32) []byte { return make([]byte, WindowSize+1) }); err == nil {
		t.Error("an opening larger than the window was sent")
	}
	if n := gw.NumStreams(); n != len(ids) {
		t.Errorf("%d streams after a refused opening, want %d", n, len(ids))
	}
}

// TestPeerPastWindowEndsSession shows that a peer that sends a stream more
// data than the window it was given ends the session with a protocol
// GoAway, whichever side opened the stream: a peer cannot make a side
// buffer more than the window per stream. Data up to the window,
// including what window updates give back, is taken.
func TestPeerPastWindowEndsSession(t *testing.T) {
	t.Parallel()
	check := func(t *testing.T, s *Session, peer *rawPeer, st *Stream, sent uint32) {
		// The first window is used up: reading it gives it back, a first
		// part once half of it is read, as yamux does.
		if _, err := io.ReadFull(st, make([]byte, sent/2)); err != nil {
			t.Fatal(err)
		}
		peer.sync()
		if granted := windowGranted(peer, st.StreamID()); granted < WindowSize/2 {
			t.Fatalf("reading half the window gave back %d bytes of it", granted)
		}
		if _, err := io.ReadFull(st, make([]byte, sent-sent/2)); err != nil {
			t.Fatal(err)
		}
		peer.sync()
		granted := windowGranted(peer, st.StreamID())
		if err := peer.send(dataFrames(st.StreamID(), int(granted), 1000)); err != nil {
			t.Fatal(err)
		}
		peer.sync()
		if s.IsClosed() {
			t.Fatal("data within the window ended the session")
		}
		_ = peer.sendFrame(typeData, 0, st.StreamID(), 1, []byte{1})
		peer.waitFrame("a protocol GoAway", isGoAway(goAwayProtocol))
		within(t, "the session to end", s.Done())
		var pe protocolError
		if !errors.As(sessionErr(s), &pe) {
			t.Errorf("the session ended for %v, want a protocol error", sessionErr(s))
		}
		peer.waitEnd()
	}
	t.Run("agent", func(t *testing.T) {
		t.Parallel()
		agent, peer := rawAgent(t, 0)
		if err := peer.sendFrame(typeData, flagSYN, 1, WindowSize, bytes.Repeat([]byte{9}, WindowSize)); err != nil {
			t.Fatal(err)
		}
		check(t, agent, peer, acceptNow(t, agent), WindowSize)
	})
	t.Run("gateway", func(t *testing.T) {
		t.Parallel()
		gw, peer := rawGateway(t)
		st, err := gw.Open(func(uint32) []byte { return []byte("hello") })
		if err != nil {
			t.Fatal(err)
		}
		if err := peer.sendFrame(typeWindowUpdate, flagACK, st.StreamID(), 0, nil); err != nil {
			t.Fatal(err)
		}
		if err := peer.send(dataFrames(st.StreamID(), WindowSize, 64<<10)); err != nil {
			t.Fatal(err)
		}
		check(t, gw, peer, st, WindowSize)
	})
	t.Run("one frame", func(t *testing.T) {
		t.Parallel()
		agent, peer := rawAgent(t, 0)
		_ = peer.sendFrame(typeData, flagSYN, 1, WindowSize+1, make([]byte, WindowSize+1))
		peer.waitFrame("a protocol GoAway", isGoAway(goAwayProtocol))
		within(t, "the session to end", agent.Done())
	})
}

// TestManyTinyFramesTakeLittleMemory shows that a window's worth of
// 1-byte data frames on a stream that nobody reads is held in about as
// much memory as its bytes, not in a buffer per frame, and arrives
// intact. It does not run in parallel, so that the heap it measures is
// its own.
func TestManyTinyFramesTakeLittleMemory(t *testing.T) {
	agent, peer := rawAgent(t, 0)
	if err := peer.sendFrame(typeWindowUpdate, flagSYN, 1, 0, nil); err != nil {
		t.Fatal(err)
	}
	st := acceptNow(t, agent)
	frames := make([]byte, 0, WindowSize*(headerSize+1))
	for i := range WindowSize {
		frames = appendFrame(frames, typeData, 0, 1, 1, []byte{byte(i % 251)})
	}
	peer.sync()

	var before, after runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&before)
	// The frames go in batches, checked one by one, so that a stream that
	// took a chunk per frame fails at the first rather than exhaust the
	// memory.
	const batch = 4 << 10
	for sent := 0; sent < WindowSize; sent += batch {
		if err := peer.send(frames[sent*(headerSize+1) : (sent+batch)*(headerSize+1)]); err != nil {
			t.Fatal(err)
		}
		peer.sync()
		st.mu.Lock()
		held, chunksHeld := st.recvLen, len(st.recv)
		st.mu.Unlock()
		if held != sent+batch {
			t.Fatalf("the stream holds %d bytes, want %d", held, sent+batch)
		}
		// Full chunks, the one being filled, and the small first one.
		if most := held/chunkSize + 2; chunksHeld > most {
			t.Fatalf("%d bytes in 1-byte frames are held in %d chunks, want at most %d", held, chunksHeld, most)
		}
	}
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(frames)
	grown := int64(after.HeapInuse) - int64(before.HeapInuse)
	t.Logf("the heap grew by %d bytes for %d bytes held", grown, WindowSize)
	if grown > 4*WindowSize {
		t.Errorf("the heap grew by %d bytes for %d bytes held in 1-byte frames", grown, WindowSize)
	}

	got := make([]byte, WindowSize)
	if _, err := io.ReadFull(st, got); err != nil {
		t.Fatal(err)
	}
	for i, b := range got {
		if b != byte(i%251) {
			t.Fatalf("byte %d is %d, want %d", i, b, i%251)
		}
	}
	if agent.IsClosed() {
		t.Fatal("the session ended")
	}
}

// TestBacklogResetsTheStreamBeyond shows that, with nobody accepting, the
// agent keeps Backlog streams and resets the next one, without ending the
// session; once one is accepted, a new stream is kept again.
func TestBacklogResetsTheStreamBeyond(t *testing.T) {
	t.Parallel()
	agent, peer := rawAgent(t, 0)
	var syns []byte
	for i := range Backlog + 1 {
		syns = appendFrame(syns, typeWindowUpdate, flagSYN, uint32(2*i+1), 0, nil)
	}
	if err := peer.send(syns); err != nil {
		t.Fatal(err)
	}
	peer.sync()
	beyond := uint32(2*Backlog + 1)
	if n := peer.count(func(f frame) bool { return f.flags&flagRST != 0 }); n != 1 {
		t.Fatalf("%d streams reset, want 1", n)
	}
	peer.waitFrame("the reset of the stream beyond the backlog", isRST(beyond))
	if n := agent.NumStreams(); n != Backlog {
		t.Errorf("%d streams kept, want %d", n, Backlog)
	}
	if st := acceptNow(t, agent); st.StreamID() != 1 {
		t.Errorf("accepted stream %d first, want 1", st.StreamID())
	}
	next := beyond + 2
	if err := peer.sendFrame(typeWindowUpdate, flagSYN, next, 0, nil); err != nil {
		t.Fatal(err)
	}
	peer.sync()
	if n := peer.count(isRST(next)); n != 0 {
		t.Error("a stream within the backlog was reset")
	}
	if n := agent.NumStreams(); n != Backlog+1 {
		t.Errorf("%d streams kept, want %d", n, Backlog+1)
	}
	if agent.IsClosed() {
		t.Fatal("the session ended")
	}
}

// TestDuplicateSYNEndsSession shows that a peer that opens a stream whose
// id is open already ends the session with a protocol GoAway.
func TestDuplicateSYNEndsSession(t *testing.T) {
	t.Parallel()
	agent, peer := rawAgent(t, 0)
	if err := peer.sendFrame(typeData, flagSYN, 1, 2, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	peer.sync()
	_ = peer.sendFrame(typeWindowUpdate, flagSYN, 1, 0, nil)
	peer.waitFrame("a protocol GoAway", isGoAway(goAwayProtocol))
	within(t, "the session to end", agent.Done())
	peer.waitEnd()
}

// TestMalformedFramesEndSession shows that a frame of another version or
// of an unknown type ends either side's session with a protocol GoAway.
func TestMalformedFramesEndSession(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		frame []byte
	}{
		{"version", []byte{1, typePing, 0, flagSYN, 0, 0, 0, 0, 0, 0, 0, 1}},
		{"type", []byte{0, typeGoAway + 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
	} {
		for _, side := range []string{"agent", "gateway"} {
			t.Run(tc.name+" "+side, func(t *testing.T) {
				t.Parallel()
				var s *Session
				var peer *rawPeer
				if side == "agent" {
					s, peer = rawAgent(t, 0)
				} else {
					s, peer = rawGateway(t)
				}
				_ = peer.send(tc.frame)
				peer.waitFrame("a protocol GoAway", isGoAway(goAwayProtocol))
				within(t, "the session to end", s.Done())
			})
		}
	}
}

// TestGatewayRefusesStreams shows that the gateway's side resets a stream
// the peer opens, drops its data and goes on, and that the agent's side
// opens none.
func TestGatewayRefusesStreams(t *testing.T) {
	t.Parallel()
	gw, peer := rawGateway(t)
	if err := peer.sendFrame(typeData, flagSYN, 2, 5, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	peer.waitFrame("the reset of the stream", isRST(2))
	peer.sync()
	if gw.IsClosed() || gw.NumStreams() != 0 {
		t.Fatalf("closed %v, %d streams", gw.IsClosed(), gw.NumStreams())
	}

	agent, _ := rawAgent(t, 0)
	if _, err := agent.Open(func(uint32) []byte { return nil }); err == nil {
		t.Error("the agent's side opened a stream")
	}
}

// TestGoAwayStopsOpen shows that once the peer sent a GoAway, Open fails
// with ErrRemoteGoAway while the session and its streams go on.
func TestGoAwayStopsOpen(t *testing.T) {
	t.Parallel()
	gw, peer := rawGateway(t)
	st, err := gw.Open(func(uint32) []byte { return []byte("a") })
	if err != nil {
		t.Fatal(err)
	}
	if err := peer.sendFrame(typeGoAway, 0, 0, goAwayNormal, nil); err != nil {
		t.Fatal(err)
	}
	peer.sync()
	if _, err := gw.Open(func(uint32) []byte { return []byte("b") }); !errors.Is(err, ErrRemoteGoAway) {
		t.Fatalf("Open after a GoAway returned %v, want ErrRemoteGoAway", err)
	}
	if _, err := st.Write([]byte("still")); err != nil {
		t.Fatalf("writing on an open stream after a GoAway: %v", err)
	}
	if gw.IsClosed() {
		t.Fatal("the session ended")
	}
}

// TestPingsAreAnswered shows that both sides answer a ping with its id.
func TestPingsAreAnswered(t *testing.T) {
	t.Parallel()
	_, peer := rawGateway(t)
	peer.ping(42)
	_, peer = rawAgent(t, 0)
	peer.ping(1<<32 - 1)
}

// TestCutFrameGivesNoBytesThatDidNotArrive shows that when the connection
// ends within a data frame's body, a read gets no byte the peer did not
// send: the stream's buffers are pooled, and what they held before must
// not leak out.
func TestCutFrameGivesNoBytesThatDidNotArrive(t *testing.T) {
	t.Parallel()
	for _, whole := range []int{0, 5} {
		agent, peer := rawAgent(t, 0)
		if err := peer.sendFrame(typeWindowUpdate, flagSYN, 1, 0, nil); err != nil {
			t.Fatal(err)
		}
		st := acceptNow(t, agent)
		sent := []byte("whole")[:whole]
		if whole > 0 {
			// A whole frame first, whose chunk the cut frame then fills.
			if err := peer.sendFrame(typeData, 0, 1, uint32(whole), sent); err != nil {
				t.Fatal(err)
			}
		}
		cut := bytes.Repeat([]byte{'c'}, 10)
		if err := peer.send(appendFrame(nil, typeData, 0, 1, 1000, cut)); err != nil {
			t.Fatal(err)
		}
		sent = append(sent, cut...)
		peer.conn.Close()
		within(t, "the session to end", agent.Done())
		got, err := io.ReadAll(st)
		if !errors.Is(err, ErrSessionShutdown) {
			t.Errorf("reading after the connection ended: %v, want ErrSessionShutdown", err)
		}
		if len(got) > len(sent) || !bytes.Equal(got, sent[:len(got)]) {
			t.Errorf("read %d bytes (%.20q...), not the %q that arrived or less", len(got), got, sent)
		}
	}
}

// TestResetByPeer shows that a reset from the peer wakes a blocked Read
// and a blocked Write with ErrStreamReset, fails those after it, drops
// the stream, and leaves Close with nothing to do.
func TestResetByPeer(t *testing.T) {
	t.Parallel()
	agent, peer := rawAgent(t, 0)
	if err := peer.sendFrame(typeWindowUpdate, flagSYN, 1, 0, nil); err != nil {
		t.Fatal(err)
	}
	st := acceptNow(t, agent)
	read := make(chan error, 1)
	go func() {
		_, err := st.Read(make([]byte, 1))
		read <- err
	}()
	type result struct {
		n   int
		err error
	}
	wrote := make(chan result, 1)
	go func() {
		// The peer gives no window back: the write waits past it.
		n, err := st.Write(make([]byte, WindowSize+1))
		wrote <- result{n, err}
	}()
	eventually(t, "the window to be used up", func() bool {
		return windowSent(peer, 1) == WindowSize
	})
	if err := peer.sendFrame(typeWindowUpdate, flagRST, 1, 0, nil); err != nil {
		t.Fatal(err)
	}
	if err := within(t, "the blocked read", read); !errors.Is(err, ErrStreamReset) {
		t.Errorf("the blocked read returned %v, want ErrStreamReset", err)
	}
	if r := within(t, "the blocked write", wrote); r.n != WindowSize || !errors.Is(r.err, ErrStreamReset) {
		t.Errorf("the blocked write returned %d, %v, want %d, ErrStreamReset", r.n, r.err, WindowSize)
	}
	if _, err := st.Read(make([]byte, 1)); !errors.Is(err, ErrStreamReset) {
		t.Errorf("a read after the reset returned %v", err)
	}
	if _, err := st.Write([]byte("x")); !errors.Is(err, ErrStreamReset) {
		t.Errorf("a write after the reset returned %v", err)
	}
	eventually(t, "the stream to be dropped", func() bool { return agent.NumStreams() == 0 })
	if err := st.Close(); err != nil {
		t.Errorf("closing a reset stream: %v", err)
	}
	peer.sync()
	if n := peer.count(func(f frame) bool { return f.flags&flagFIN != 0 }); n != 0 {
		t.Error("closing a reset stream sent a FIN")
	}
}

// windowSent returns how many bytes of data the peer got on stream id.
func windowSent(p *rawPeer, id uint32) int {
	n := 0
	for _, f := range p.all() {
		if f.typ == typeData && f.id == id {
			n += len(f.body)
		}
	}
	return n
}

// TestKeepAlive shows that the agent's session ends with
// ErrKeepAliveTimeout when its peer leaves a ping unanswered for
// writeTimeout, and goes on past it while the peer answers. It runs on
// synctest's clock, on which writeTimeout passes at once.
func TestKeepAlive(t *testing.T) {
	t.Parallel()
	t.Run("unanswered", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			start := time.Now()
			agent, peer := rawAgent(t, time.Second)
			<-agent.Done()
			if d := time.Since(start); d < writeTimeout || d > writeTimeout+2*time.Second {
				t.Errorf("the session ended after %v, want a ping interval and writeTimeout (%v)", d, writeTimeout)
			}
			if err := sessionErr(agent); !errors.Is(err, ErrKeepAliveTimeout) {
				t.Errorf("the session ended for %v, want ErrKeepAliveTimeout", err)
			}
			if n := peer.count(func(f frame) bool { return f.typ == typePing && f.flags == flagSYN }); n < 1 {
				t.Error("the agent sent no ping")
			}
			peer.waitEnd()
		})
	})
	t.Run("answered", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			ours, theirs := net.Pipe()
			defer theirs.Close()
			agent := Agent(ours, nil, zap.NewNop(), time.Second)
			defer agent.Close()
			go func() {
				for {
					f, err := readFrame(theirs)
					if err != nil {
						return
					}
					if f.typ == typePing && f.flags == flagSYN {
						if _, err := theirs.Write(appendFrame(nil, typePing, flagACK, 0, f.length, nil)); err != nil {
							return
						}
					}
				}
			}()
			time.Sleep(3 * writeTimeout)
			if agent.IsClosed() {
				t.Fatalf("the session ended for %v while its pings were answered", sessionErr(agent))
			}
			if n, want := answeredPings(agent), uint32(3*writeTimeout/time.Second)-2; n < want {
				t.Errorf("%d pings answered in %v, want %d or more", n, 3*writeTimeout, want)
			}
		})
	})
}
