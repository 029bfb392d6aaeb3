package mux

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/synctest"
	"time"
)

// The tests of who reads the connection (read.go): a stream's Read that
// reads it for the session, and the windows that grow for fast readers.

// openStream opens a stream on gw, which peer acknowledges.
func openStream(t *testing.T, gw *Session, peer *rawPeer) *Stream {
	t.Helper()
	st, err := gw.Open(func(uint32) []byte { return []byte("open") })
	if err != nil {
		t.Fatal(err)
	}
	if err := peer.sendFrame(typeWindowUpdate, flagACK, st.StreamID(), 0, nil); err != nil {
		t.Fatal(err)
	}
	return st
}

// dataBytes returns the bytes that dataFrames(id, n, size) carries.
func dataBytes(n, size int) []byte {
	var b []byte
	for i := 0; n > 0; i++ {
		k := min(n, size)
		b = append(b, bytes.Repeat([]byte{byte(i)}, k)...)
		n -= k
	}
	return b
}

// twoStreams starts a gateway whose peer is a rawPeer, and opens two
// streams.
func twoStreams(t *testing.T) (*Session, *rawPeer, *Stream, *Stream) {
	t.Helper()
	gw, peer := rawGateway(t)
	return gw, peer, openStream(t, gw, peer), openStream(t, gw, peer)
}

// sendData sends b to st from the peer, in one data frame.
func sendData(t *testing.T, peer *rawPeer, st *Stream, b []byte) {
	t.Helper()
	if err := peer.sendFrame(typeData, 0, st.StreamID(), uint32(len(b)), b); err != nil {
		t.Fatal(err)
	}
}

// readResult is what a Read in a goroutine of its own got.
type readResult struct {
	b   []byte
	err error
}

// readFullAsync reads n bytes of st or more in a goroutine of its own, with a
// buffer large enough for its Reads to read the connection themselves.
func readFullAsync(st *Stream, n int) <-chan readResult {
	c := make(chan readResult, 1)
	go func() {
		var got []byte
		buf := make([]byte, 2*directRead)
		for len(got) < n {
			k, err := st.Read(buf[:min(len(buf), max(n-len(got), directRead))])
			got = append(got, buf[:k]...)
			if err != nil {
				c <- readResult{got, err}
				return
			}
		}
		c <- readResult{got, nil}
	}()
	return c
}

// leadingRead gives st's Read the lead: the session's reader delivers a
// byte to it while it waits, and hands it the lead; the Read after that
// reads the connection itself. It returns that Read's result, to come.
func leadingRead(t *testing.T, st *Stream, peer *rawPeer, n int) <-chan readResult {
	t.Helper()
	first := readFullAsync(st, 1)
	synctest.Wait()
	sendData(t, peer, st, []byte{'1'})
	if r := <-first; r.err != nil {
		t.Fatal(r.err)
	}
	next := readFullAsync(st, n)
	synctest.Wait()
	if len(st.s.lead) != 0 {
		t.Fatal("no goroutine holds the lead while a Read waits")
	}
	return next
}

// TestAReadThatLeadsServesOthers shows that while a stream's Read waits
// reading the connection itself, nothing else reading it, other streams'
// bytes go to their buffers and the peer's pings are answered; its own
// bytes, when they come, end it.
func TestAReadThatLeadsServesOthers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, peer, a, b := twoStreams(t)
		aRead := leadingRead(t, a, peer, 3)
		if err := peer.send(dataFrames(b.StreamID(), 2000, 700)); err != nil {
			t.Fatal(err)
		}
		peer.sync()
		select {
		case r := <-aRead:
			t.Fatalf("A's Read returned %q, %v before A's bytes came", r.b, r.err)
		default:
		}
		got := make([]byte, 2000)
		if _, err := io.ReadFull(b, got); err != nil || !bytes.Equal(got, dataBytes(2000, 700)) {
			t.Fatalf("B read %v, not the bytes sent", err)
		}
		sendData(t, peer, a, []byte("abc"))
		if r := <-aRead; r.err != nil || string(r.b) != "abc" {
			t.Fatalf("A read %q, %v, want abc", r.b, r.err)
		}
	})
}

// TestAReaderAwayHoldsUpNoOne shows that a stream whose Read read the
// connection and returned, its caller now busy elsewhere, holds up other
// streams for the lease at most: then the session's reader delivers their
// bytes, and the absent stream's bytes wait, in order, in its buffer.
func TestAReaderAwayHoldsUpNoOne(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		gw, peer, a, b := twoStreams(t)
		aRead := leadingRead(t, a, peer, 1)
		sendData(t, peer, a, []byte{'a'})
		if r := <-aRead; r.err != nil {
			t.Fatal(r.err)
		}
		// A's caller is away from here on. B's Read has a deadline: it
		// does not read the connection itself.
		start := time.Now()
		_ = b.SetReadDeadline(start.Add(time.Minute))
		bRead := readFullAsync(b, 10)
		synctest.Wait()
		if len(gw.lead) != 1 {
			t.Fatal("a Read with a deadline took the lead")
		}
		frames := append(dataFrames(a.StreamID(), 3000, 1000), dataFrames(b.StreamID(), 10, 10)...)
		if err := peer.send(frames); err != nil {
			t.Fatal(err)
		}
		if r := <-bRead; r.err != nil {
			t.Fatal(r.err)
		}
		if waited := time.Since(start); waited < leaseTime || waited > 2*leaseTime {
			t.Errorf("B's bytes came after %v, want after the lease of %v", waited, leaseTime)
		}
		got := make([]byte, 3000)
		if _, err := io.ReadFull(a, got); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, dataBytes(3000, 1000)) {
			t.Error("A's bytes that waited in its buffer came out of order")
		}
	})
}

// TestADeadlineSetWhileAReadLeads shows that a deadline set while a Read
// reads the connection takes effect once the next frame arrives.
func TestADeadlineSetWhileAReadLeads(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		gw, peer := rawGateway(t)
		a := openStream(t, gw, peer)
		aRead := leadingRead(t, a, peer, 1)
		_ = a.SetReadDeadline(time.Now().Add(time.Second))
		peer.sync()
		if r := <-aRead; !isTimeout(r.err) {
			t.Errorf("the Read returned %q, %v, want a timeout", r.b, r.err)
		}
	})
}

// TestAFrameReadInPieces shows that a Read that leads reads a frame of its
// own stream larger than its buffer piece by piece, and that the frames
// after it, its own and another stream's, come whole and in order.
func TestAFrameReadInPieces(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, peer, a, b := twoStreams(t)
		aRead := leadingRead(t, a, peer, 1)
		big := make([]byte, maxFrame)
		for i := range big {
			big[i] = byte(i * 7)
		}
		frames := appendFrame(nil, typeData, 0, a.StreamID(), uint32(len(big)-1), big[1:])
		frames = append(frames, dataFrames(b.StreamID(), 100, 100)...)
		frames = appendFrame(frames, typeData, flagFIN, a.StreamID(), 4, []byte("tail"))
		go func() { _ = peer.send(appendFrame(nil, typeData, 0, a.StreamID(), 1, big[:1])) }()
		if r := <-aRead; r.err != nil || r.b[0] != big[0] {
			t.Fatalf("A's first byte: %v, %v", r.b, r.err)
		}
		go func() { _ = peer.send(frames) }()
		var got []byte
		buf := make([]byte, directRead+1000)
		for {
			n, err := a.Read(buf)
			got = append(got, buf[:n]...)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if want := append(big[1:len(big):len(big)], "tail"...); !bytes.Equal(got, want) {
			t.Errorf("A read %d bytes, not the %d sent", len(got), len(want))
		}
		bGot := make([]byte, 100)
		if _, err := io.ReadFull(b, bGot); err != nil || !bytes.Equal(bGot, make([]byte, 100)) {
			t.Errorf("B read %v, %v", bGot, err)
		}
	})
}

// TestABreachWhileAReadLeads shows that a Read that reads the connection
// when the peer breaks the protocol ends the session as the session's
// reader would: a protocol GoAway to the peer, ErrSessionShutdown to the
// Read. And a Read of more than arrived of a frame cut by the
// connection's end gets none of it.
func TestABreachWhileAReadLeads(t *testing.T) {
	for _, c := range []struct {
		name string
		send func(peer *rawPeer, id uint32)
	}{
		{"unknown type", func(peer *rawPeer, id uint32) { _ = peer.sendFrame(9, 0, id, 0, nil) }},
		{"past the window", func(peer *rawPeer, id uint32) {
			_ = peer.sendFrame(typeData, 0, id, WindowSize, make([]byte, WindowSize))
		}},
		{"cut frame", func(peer *rawPeer, id uint32) {
			_ = peer.send(appendFrame(nil, typeData, 0, id, 1000, []byte("cut")))
			peer.conn.Close()
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				gw, peer := rawGateway(t)
				a := openStream(t, gw, peer)
				aRead := leadingRead(t, a, peer, 10)
				c.send(peer, a.StreamID())
				r := <-aRead
				if !errors.Is(r.err, ErrSessionShutdown) || len(r.b) > 0 {
					t.Errorf("the Read returned %q, %v, want no bytes and ErrSessionShutdown", r.b, r.err)
				}
				<-gw.Done()
				if c.name != "cut frame" {
					peer.waitFrame("a protocol GoAway", isGoAway(goAwayProtocol))
				}
			})
		})
	}
}

// sendGranted sends stream id all the window it was granted and has not
// used, at most limit bytes (none: no limit), in frames of 64 KiB, and
// returns what it sent in all.
func sendGranted(t *testing.T, peer *rawPeer, id uint32, sent, limit int) int {
	t.Helper()
	outstanding := int(windowGranted(peer, id)) + WindowSize - sent
	if outstanding > MaxWindow {
		t.Fatalf("the window is %d bytes, above MaxWindow", outstanding)
	}
	if limit > 0 {
		outstanding = min(outstanding, limit)
	}
	if err := peer.send(dataFrames(id, outstanding, 64<<10)); err != nil {
		t.Fatal(err)
	}
	return sent + outstanding
}

// windowOf returns the window st gives its peer.
func windowOf(st *Stream) int {
	st.mu.Lock()
	defer st.mu.Unlock()
	return int(st.recvTarget)
}

// TestWindowGrowsForAFastReader shows that a stream whose reader keeps up
// gets a larger window, doubling up to MaxWindow and no further, while
// its reader reads every byte.
func TestWindowGrowsForAFastReader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		gw, peer := rawGateway(t)
		a := openStream(t, gw, peer)
		sent := 0
		for sent < 8*MaxWindow {
			before := sent
			sent = sendGranted(t, peer, a.StreamID(), sent, 0)
			if _, err := io.ReadFull(a, make([]byte, sent-before)); err != nil {
				t.Fatal(err)
			}
			peer.sync()
		}
		if w := windowOf(a); w != MaxWindow {
			t.Errorf("after %d bytes read at once the window is %d, want MaxWindow (%d)", sent, w, MaxWindow)
		}
	})
}

// TestWindowStaysForASlowReader shows that a stream whose reader leaves
// bytes unread when it gives the window back, or reads them slowly,
// keeps the first window.
func TestWindowStaysForASlowReader(t *testing.T) {
	t.Run("behind", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			gw, peer := rawGateway(t)
			a := openStream(t, gw, peer)
			sent := sendGranted(t, peer, a.StreamID(), 0, 0)
			for read := 0; read < 4*MaxWindow; read += WindowSize / 2 {
				// The peer fills the window each time it is given some
				// back: the reader never catches up.
				if _, err := io.ReadFull(a, make([]byte, WindowSize/2)); err != nil {
					t.Fatal(err)
				}
				peer.sync()
				sent = sendGranted(t, peer, a.StreamID(), sent, 0)
			}
			if w := windowOf(a); w != WindowSize {
				t.Errorf("the window grew to %d for a reader that is behind", w)
			}
		})
	})
	t.Run("slow", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			gw, peer := rawGateway(t)
			a := openStream(t, gw, peer)
			for sent := 0; sent < 4*MaxWindow; {
				// The reader reads all there is, 64 KiB every growWithin.
				before := sent
				sent = sendGranted(t, peer, a.StreamID(), sent, 64<<10)
				if _, err := io.ReadFull(a, make([]byte, sent-before)); err != nil {
					t.Fatal(err)
				}
				peer.sync()
				time.Sleep(growWithin)
			}
			if w := windowOf(a); w != WindowSize {
				t.Errorf("the window grew to %d for a reader that reads slowly", w)
			}
		})
	})
}

// TestWindowShrinksWhenTheReaderFallsBehind shows that a window that grew
// comes back to WindowSize once its reader leaves bytes unread.
func TestWindowShrinksWhenTheReaderFallsBehind(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		gw, peer := rawGateway(t)
		a := openStream(t, gw, peer)
		sent := 0
		for windowOf(a) < MaxWindow {
			before := sent
			sent = sendGranted(t, peer, a.StreamID(), sent, 0)
			if _, err := io.ReadFull(a, make([]byte, sent-before)); err != nil {
				t.Fatal(err)
			}
			peer.sync()
		}
		read := sent
		for windowOf(a) > WindowSize {
			sent = sendGranted(t, peer, a.StreamID(), sent, 0)
			// Half of what came, the rest left unread.
			if _, err := io.ReadFull(a, make([]byte, (sent-read)/2+1)); err != nil {
				t.Fatal(err)
			}
			read += (sent-read)/2 + 1
			peer.sync()
			if sent > 16*MaxWindow {
				t.Fatalf("the window is still %d for a reader behind", windowOf(a))
			}
		}
		if grown := gw.grown.Load(); grown != 0 {
			t.Errorf("the session counts %d bytes of growth, want none", grown)
		}
	})
}

// TestWindowGrowthHasABudget shows that the windows of many fast streams
// on one connection grow by growthBudget in all, no more, and that what a
// stream's window grew is given back when it ends.
func TestWindowGrowthHasABudget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		gw, peer := rawGateway(t)
		var streams []*Stream
		for range 2 * growthBudget / MaxWindow {
			streams = append(streams, openStream(t, gw, peer))
		}
		sent := make([]int, len(streams))
		for round := 0; round < 12; round++ {
			for i, st := range streams {
				before := sent[i]
				sent[i] = sendGranted(t, peer, st.StreamID(), sent[i], 0)
				if _, err := io.ReadFull(st, make([]byte, sent[i]-before)); err != nil {
					t.Fatal(err)
				}
			}
			peer.sync()
		}
		total := 0
		for _, st := range streams {
			total += windowOf(st) - WindowSize
		}
		if total > growthBudget || total < growthBudget/2 {
			t.Errorf("the windows grew by %d in all, want up to the budget of %d", total, growthBudget)
		}
		for _, st := range streams {
			_ = peer.sendFrame(typeWindowUpdate, flagRST, st.StreamID(), 0, nil)
		}
		peer.sync()
		if grown := gw.grown.Load(); grown != 0 {
			t.Errorf("%d bytes of growth are still counted once every stream ended", grown)
		}
	})
}

// TestASmallReadLeavesTheReadingToTheSession shows that a Read into a
// buffer under directRead bytes, a stream that carries little, is not
// given the lead: the session's reader goes on reading.
func TestASmallReadLeavesTheReadingToTheSession(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		gw, peer := rawGateway(t)
		a := openStream(t, gw, peer)
		small := make(chan error, 1)
		go func() {
			_, err := a.Read(make([]byte, directRead-1))
			small <- err
		}()
		synctest.Wait()
		sendData(t, peer, a, []byte{'1'})
		if err := <-small; err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if len(gw.lead) != 0 {
			t.Error("the session's reader gave up the lead to a small Read")
		}
		// A large Read is given it.
		large := readFullAsync(a, 1)
		synctest.Wait()
		sendData(t, peer, a, []byte{'2'})
		if r := <-large; r.err != nil {
			t.Fatal(r.err)
		}
		synctest.Wait()
		if len(gw.lead) != 1 {
			t.Error("the session's reader kept the lead from a large Read")
		}
	})
}

// TestRoundTripPingGoesWithTheFirstStream shows that the gateway's side
// pings in the write that opens its first stream, before that stream's
// frame, with no other ping until it is answered, takes the answer as the
// round trip, pings again with a later opening, and keeps the lower.
func TestRoundTripPingGoesWithTheFirstStream(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		gw, peer, _, _ := twoStreams(t)
		openStream(t, gw, peer)
		peer.sync()
		frames := peer.all()
		if f := frames[0]; f.typ != typePing || f.flags != flagSYN || f.length != rttPing {
			t.Errorf("the first frame is of type %d, flags %#x, length %d, not the round-trip ping", f.typ, f.flags, f.length)
		}
		if f := frames[1]; f.typ != typeData || f.flags != flagSYN || f.id != 1 {
			t.Errorf("the second frame is of type %d, flags %#x, stream %d, not the first stream's opening", f.typ, f.flags, f.id)
		}
		if n := peer.count(func(f frame) bool { return f.typ == typePing && f.length == rttPing }); n != 1 {
			t.Errorf("%d round-trip pings for three streams, want 1", n)
		}
		time.Sleep(30 * time.Millisecond)
		if err := peer.sendFrame(typePing, flagACK, 0, rttPing, nil); err != nil {
			t.Fatal(err)
		}
		peer.sync()
		if rtt := gw.roundTrip(); rtt != 30*time.Millisecond {
			t.Errorf("the round trip is %v, want the 30ms the answer took", rtt)
		}
		openStream(t, gw, peer)
		peer.sync()
		if n := peer.count(func(f frame) bool { return f.typ == typePing && f.length == rttPing }); n != 2 {
			t.Fatalf("%d round-trip pings after the first was answered and a stream opened, want 2", n)
		}
		time.Sleep(40 * time.Millisecond)
		if err := peer.sendFrame(typePing, flagACK, 0, rttPing, nil); err != nil {
			t.Fatal(err)
		}
		peer.sync()
		if rtt := gw.roundTrip(); rtt != 30*time.Millisecond {
			t.Errorf("the round trip is %v after a slower answer, want the lower 30ms", rtt)
		}
	})
}

// TestWindowGrowsOnALongPath shows that when a stream's bytes come paced,
// half a window taking longer than growWithin but less than the round
// trip (a path of 50 ms at about 5 MB/s), its window still grows, and
// that without a round trip measured it stays.
func TestWindowGrowsOnALongPath(t *testing.T) {
	const (
		rtt       = 50 * time.Millisecond
		frameSize = 64 << 10
		pace      = 12 * time.Millisecond // between frames
	)
	for _, measured := range []bool{true, false} {
		synctest.Test(t, func(t *testing.T) {
			gw, peer := rawGateway(t)
			a := openStream(t, gw, peer)
			if measured {
				time.Sleep(rtt)
				if err := peer.sendFrame(typePing, flagACK, 0, rttPing, nil); err != nil {
					t.Fatal(err)
				}
			}
			for sent := 0; sent < 2*MaxWindow; {
				outstanding := int(windowGranted(peer, a.StreamID())) + WindowSize - sent
				k := min(outstanding, frameSize)
				if err := peer.send(dataFrames(a.StreamID(), k, frameSize)); err != nil {
					t.Fatal(err)
				}
				if _, err := io.ReadFull(a, make([]byte, k)); err != nil {
					t.Fatal(err)
				}
				sent += k
				peer.sync()
				time.Sleep(pace)
			}
			if w := windowOf(a); measured != (w > WindowSize) {
				t.Errorf("the window is %d with the round trip measured: %v", w, measured)
			}
			if w := windowOf(a); w > 4*(frameSize*int(time.Second/pace))*int(rtt)/int(time.Second) {
				t.Errorf("the window grew to %d, above 4 round trips of the stream's rate", w)
			}
		})
	}
}
