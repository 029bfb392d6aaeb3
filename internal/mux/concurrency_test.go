package mux

import (
	"io"
	"net"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/zap"
)

// slowConn makes every write take a little while, like a busy link.
type slowConn struct{ net.Conn }

func (c slowConn) Write(p []byte) (int, error) {
	time.Sleep(500 * time.Microsecond)
	return c.Conn.Write(p)
}

// TestOpenIsNotHeldByOthersFrames: the goroutine that finds the writer
// idle writes its own batch, not every frame the others queue after it:
// an Open returns at once while other streams send in bulk.
func TestOpenIsNotHeldByOthersFrames(t *testing.T) {
	gc, ac := net.Pipe()
	gate := newGateConn(slowConn{gc}, true)
	gw := Gateway(gate, zap.NewNop())
	agent := Agent(ac, nil, zap.NewNop(), 0)
	defer gw.Close()
	defer agent.Close()
	var bulk []*Stream
	for i := 0; i < 16; i++ {
		gs, as := openAccept(t, gw, agent, "y")
		go io.Copy(io.Discard, as)
		bulk = append(bulk, gs)
	}
	gate.shut()
	time.Sleep(10 * time.Millisecond)
	select {
	case <-gate.entered: // a stale signal of the writes above
	default:
	}
	opened := make(chan error, 1)
	go func() {
		_, err := gw.Open(func(uint32) []byte { return []byte("x") })
		opened <- err
	}()
	<-gate.entered // Open writes its SYN, and waits on the connection
	stop := make(chan struct{})
	for _, gs := range bulk {
		go func() {
			buf := make([]byte, 64<<10)
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := gs.Write(buf); err != nil {
					return
				}
			}
		}()
	}
	time.Sleep(50 * time.Millisecond)
	gate.release()
	released := time.Now()
	select {
	case err := <-opened:
		t.Logf("Open returned after %v: %v", time.Since(released), err)
	case <-time.After(3 * time.Second):
		close(stop)
		select {
		case <-opened:
			t.Log("Open returned once the other streams stopped writing")
		case <-time.After(3 * time.Second):
			t.Log("Open did not return even after the others stopped")
		}
		t.Fatal("Open still has not returned 3 s after its SYN could go out: it writes the other streams' frames")
	}
	close(stop)
}

// TestTwoWritersShareAWindowUpdate: of two writes that wait for the
// window, the one a window update wakes passes the news on.
func TestTwoWritersShareAWindowUpdate(t *testing.T) {
	synctest.Test(t, twoWritersShareAWindowUpdate)
}

func twoWritersShareAWindowUpdate(t *testing.T) {
	s, p := rawAgent(t, 0)
	if err := p.sendFrame(typeData, flagSYN, 1, 1, []byte("x")); err != nil {
		t.Fatal(err)
	}
	st := acceptNow(t, s)
	if _, err := st.Write(make([]byte, WindowSize)); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 2)
	for i := 0; i < 2; i++ {
		go func() { _, err := st.Write([]byte("0123456789")); done <- err }()
	}
	synctest.Wait() // both wait for the window
	if err := p.sendFrame(typeWindowUpdate, 0, 1, WindowSize/2, nil); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		select {
		case <-done:
		case <-time.After(2 * time.Second):
			t.Fatalf("writer %d still waits with %d bytes of window open", i+1, WindowSize/2-10)
		}
	}
}

// TestTwoReadersSeeTheFIN: both reads that wait on a stream get io.EOF
// from the peer's FIN.
func TestTwoReadersSeeTheFIN(t *testing.T) {
	synctest.Test(t, twoReadersSeeTheFIN)
}

func twoReadersSeeTheFIN(t *testing.T) {
	s, p := rawAgent(t, 0)
	if err := p.sendFrame(typeData, flagSYN, 1, 1, []byte("x")); err != nil {
		t.Fatal(err)
	}
	st := acceptNow(t, s)
	if _, err := st.Read(make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 2)
	for i := 0; i < 2; i++ {
		go func() { _, err := st.Read(make([]byte, 10)); done <- err }()
	}
	synctest.Wait()
	if err := p.sendFrame(typeWindowUpdate, flagFIN, 1, 0, nil); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		select {
		case err := <-done:
			if err != io.EOF {
				t.Errorf("reader got %v", err)
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("reader %d still waits after the peer's FIN", i+1)
		}
	}
}

// TestPingFloodEndsTheConnection: a peer that pings without reading the
// answers does not make the queue of answers grow past sendLimit: the
// connection ends first.
func TestPingFloodEndsTheConnection(t *testing.T) {
	ours, theirs := net.Pipe()
	s := Agent(ours, nil, zap.NewNop(), 0)
	defer s.Close()
	defer theirs.Close()
	const pings = 200_000
	buf := make([]byte, 0, pings*headerSize)
	for i := 0; i < pings; i++ {
		h := makeHeader(typePing, flagSYN, 0, uint32(i))
		buf = append(buf, h[:]...)
	}
	_, _ = theirs.Write(buf) // fails once the session drops the peer
	s.w.mu.Lock()
	q := s.w.queued()
	s.w.mu.Unlock()
	if q > sendLimit+headerSize {
		t.Fatalf("%d bytes of ping answers queued for a peer that does not read", q)
	}
	select {
	case <-s.Done():
	case <-time.After(waitLong):
		t.Fatal("the session goes on with a peer that does not read its answers")
	}
}

// TestHugeWindowUpdate: a window update that takes the send window to
// 2^31 or more leaves writes working (on 32-bit platforms, where an int
// holds less, too).
func TestHugeWindowUpdate(t *testing.T) {
	s, p := rawAgent(t, 0)
	if err := p.sendFrame(typeData, flagSYN, 1, 1, []byte("x")); err != nil {
		t.Fatal(err)
	}
	st := acceptNow(t, s)
	for range 3 {
		if err := p.sendFrame(typeWindowUpdate, 0, 1, 1<<31, nil); err != nil {
			t.Fatal(err)
		}
	}
	p.sync()
	if _, err := st.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
}
