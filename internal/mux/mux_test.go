package mux

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"io"
	"math/big"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/zap"
)

// waitLong bounds every wait of the tests for something that should
// happen quickly: a test that fails is not held up past it.
const waitLong = 10 * time.Second

// pair starts a gateway and an agent on the two ends of a pipe. They are
// closed when the test ends.
func pair(t *testing.T) (gw, agent *Session) {
	t.Helper()
	gc, ac := net.Pipe()
	gw = Gateway(gc, zap.NewNop())
	agent = Agent(ac, nil, zap.NewNop(), 0)
	t.Cleanup(func() {
		gw.Close()
		agent.Close()
	})
	return gw, agent
}

// openAccept opens a stream on gw with opening and accepts it on agent.
func openAccept(t *testing.T, gw, agent *Session, opening string) (gs, as *Stream) {
	t.Helper()
	gs, err := gw.Open(func(uint32) []byte { return []byte(opening) })
	if err != nil {
		t.Fatalf("opening a stream: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	as, err = agent.Accept(ctx)
	if err != nil {
		t.Fatalf("accepting the stream: %v", err)
	}
	if as.StreamID() != gs.StreamID() {
		t.Fatalf("accepted stream %d, opened %d", as.StreamID(), gs.StreamID())
	}
	return gs, as
}

// acceptNow accepts the next stream of s.
func acceptNow(t *testing.T, s *Session) *Stream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	st, err := s.Accept(ctx)
	if err != nil {
		t.Fatalf("accepting a stream: %v", err)
	}
	return st
}

// eventually polls cond until it holds, and fails the test if it does not
// within waitLong.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still not the case after %v: %s", waitLong, what)
		}
		time.Sleep(time.Millisecond)
	}
}

// within waits for c, and fails the test if it is not ready within
// waitLong.
func within[T any](t *testing.T, what string, c <-chan T) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(waitLong):
		t.Fatalf("still waiting after %v: %s", waitLong, what)
		panic("unreachable")
	}
}

// sessionErr returns why s ended, or nil.
func sessionErr(s *Session) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// isTimeout reports whether err is a net.Error that timed out.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// frame is a frame as a peer reads it off the connection.
type frame struct {
	typ    uint8
	flags  uint16
	id     uint32
	length uint32
	body   []byte
}

// readFrame reads one frame from r.
func readFrame(r io.Reader) (frame, error) {
	var h header
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return frame{}, err
	}
	f := frame{typ: h.typ(), flags: h.flags(), id: h.streamID(), length: h.length()}
	if h.version() != protoVersion {
		return f, errors.New("a frame of another version")
	}
	if f.typ == typeData && f.length > 0 {
		f.body = make([]byte, f.length)
		if _, err := io.ReadFull(r, f.body); err != nil {
			return f, err
		}
	}
	return f, nil
}

// appendFrame appends a frame, its header built by hand as the
// specification lays it out, to b.
func appendFrame(b []byte, typ uint8, flags uint16, id, length uint32, body []byte) []byte {
	b = append(b, 0, typ)
	b = binary.BigEndian.AppendUint16(b, flags)
	b = binary.BigEndian.AppendUint32(b, id)
	b = binary.BigEndian.AppendUint32(b, length)
	return append(b, body...)
}

// rawPeer is the other end of a session, speaking frames built by hand.
// It reads every frame the session sends, so that the session's writes
// never wait for it.
type rawPeer struct {
	t    *testing.T
	conn net.Conn

	mu      sync.Mutex
	frames  []frame
	err     error         // why reading ended
	arrived chan struct{} // signalled when a frame arrives or reading ends

	syncs uint32 // the pings sync sent
}

// newRawPeer reads conn's frames until it ends; conn is closed when the
// test ends.
func newRawPeer(t *testing.T, conn net.Conn) *rawPeer {
	p := &rawPeer{t: t, conn: conn, arrived: make(chan struct{}, 1)}
	go func() {
		for {
			f, err := readFrame(conn)
			p.mu.Lock()
			if err != nil {
				p.err = err
			} else {
				p.frames = append(p.frames, f)
			}
			p.mu.Unlock()
			notify(p.arrived)
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { conn.Close() })
	return p
}

// send writes frames built by appendFrame.
func (p *rawPeer) send(b []byte) error {
	_, err := p.conn.Write(b)
	return err
}

// sendFrame writes one frame.
func (p *rawPeer) sendFrame(typ uint8, flags uint16, id, length uint32, body []byte) error {
	return p.send(appendFrame(nil, typ, flags, id, length, body))
}

// waitFrame waits for a frame for which match holds, among all the frames
// read so far and to come, and returns it.
func (p *rawPeer) waitFrame(what string, match func(frame) bool) frame {
	p.t.Helper()
	timeout := time.After(waitLong)
	for {
		p.mu.Lock()
		for _, f := range p.frames {
			if match(f) {
				p.mu.Unlock()
				return f
			}
		}
		err := p.err
		p.mu.Unlock()
		if err != nil {
			p.t.Fatalf("the connection ended (%v) before %s", err, what)
		}
		select {
		case <-p.arrived:
		case <-timeout:
			p.t.Fatalf("no %s after %v", what, waitLong)
		}
	}
}

// sync sends a ping of an id of its own and waits for its answer: the
// session has handled every frame sent before it.
func (p *rawPeer) sync() {
	p.t.Helper()
	p.syncs++
	p.ping(1<<31 + p.syncs)
}

// ping sends a ping with id and waits for its answer.
func (p *rawPeer) ping(id uint32) {
	p.t.Helper()
	if err := p.sendFrame(typePing, flagSYN, 0, id, nil); err != nil {
		p.t.Fatalf("sending a ping: %v", err)
	}
	p.waitFrame("answer to the ping", func(f frame) bool {
		return f.typ == typePing && f.flags == flagACK && f.length == id
	})
}

// count returns how many of the frames read so far match.
func (p *rawPeer) count(match func(frame) bool) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, f := range p.frames {
		if match(f) {
			n++
		}
	}
	return n
}

// all returns the frames read so far.
func (p *rawPeer) all() []frame {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.frames)
}

// waitEnd waits until the connection ends.
func (p *rawPeer) waitEnd() {
	p.t.Helper()
	timeout := time.After(waitLong)
	for {
		p.mu.Lock()
		err := p.err
		p.mu.Unlock()
		if err != nil {
			return
		}
		select {
		case <-p.arrived:
		case <-timeout:
			p.t.Fatalf("the connection did not end within %v", waitLong)
		}
	}
}

// isGoAway matches a GoAway frame with code.
func isGoAway(code uint32) func(frame) bool {
	return func(f frame) bool { return f.typ == typeGoAway && f.length == code }
}

// isRST matches a reset of stream id.
func isRST(id uint32) func(frame) bool {
	return func(f frame) bool { return f.typ == typeWindowUpdate && f.flags&flagRST != 0 && f.id == id }
}

// rawAgent starts an agent whose peer is a rawPeer, which opens streams.
func rawAgent(t *testing.T, keepAlive time.Duration) (*Session, *rawPeer) {
	t.Helper()
	ours, theirs := net.Pipe()
	s := Agent(ours, nil, zap.NewNop(), keepAlive)
	t.Cleanup(func() { s.Close() })
	return s, newRawPeer(t, theirs)
}

// rawGateway starts a gateway whose peer is a rawPeer, which accepts
// streams.
func rawGateway(t *testing.T) (*Session, *rawPeer) {
	t.Helper()
	ours, theirs := net.Pipe()
	s := Gateway(ours, zap.NewNop())
	t.Cleanup(func() { s.Close() })
	return s, newRawPeer(t, theirs)
}

// recordingConn passes writes on to conn, if any, and records them.
type recordingConn struct {
	net.Conn
	mu     sync.Mutex
	writes [][]byte
}

func (c *recordingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.writes = append(c.writes, bytes.Clone(p))
	c.mu.Unlock()
	if c.Conn == nil {
		return len(p), nil
	}
	return c.Conn.Write(p)
}

// taken returns the writes recorded so far, and forgets them.
func (c *recordingConn) taken() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	w := c.writes
	c.writes = nil
	return w
}

// TestFramesAreWrittenWhole shows that bytes written on a stream reach
// the other side intact both ways, and that every write on the connection
// holds whole frames: a data frame's header goes in the same write as its
// body.
func TestFramesAreWrittenWhole(t *testing.T) {
	t.Parallel()
	gc, ac := net.Pipe()
	rec := &recordingConn{Conn: gc}
	gw := Gateway(rec, zap.NewNop())
	agent := Agent(ac, nil, zap.NewNop(), 0)
	defer gw.Close()
	defer agent.Close()
	gs, as := openAccept(t, gw, agent, "opening")
	got := make([]byte, len("opening"))
	if _, err := io.ReadFull(as, got); err != nil || string(got) != "opening" {
		t.Fatalf("the opening arrived as %q (%v)", got, err)
	}

	payload := make([]byte, 3<<20+123)
	_, _ = rand.Read(payload)
	echoed := make(chan error, 1)
	go func() {
		// The agent echoes what it reads, so both sides write frames.
		_, err := io.CopyN(as, as, int64(len(payload)))
		echoed <- err
	}()
	writeErr := make(chan error, 1)
	go func() {
		var err error
		for rest := payload; len(rest) > 0 && err == nil; {
			n := min(len(rest), 8<<10+7)
			_, err = gs.Write(rest[:n])
			rest = rest[n:]
		}
		writeErr <- err
	}()
	back := make([]byte, len(payload))
	if _, err := io.ReadFull(gs, back); err != nil {
		t.Fatalf("reading the echo: %v", err)
	}
	if err := within(t, "the writes", writeErr); err != nil {
		t.Fatal(err)
	}
	if err := within(t, "the echo", echoed); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(back, payload) {
		t.Fatal("the bytes changed on the way")
	}

	writes := rec.taken()
	var data int
	for i, w := range writes {
		for len(w) > 0 {
			if len(w) < headerSize {
				t.Fatalf("write %d ends within a frame's header", i)
			}
			h := header(w[:headerSize])
			n := 0
			if h.typ() == typeData {
				n = int(h.length())
				data++
			}
			if len(w) < headerSize+n {
				t.Fatalf("write %d ends within a frame (%v): the frame's body goes in another write", i, h)
			}
			w = w[headerSize+n:]
		}
	}
	if data < len(payload)/maxFrame {
		t.Fatalf("%d data frames for %d bytes", data, len(payload))
	}
}

// gateConn is a connection whose writes wait while its gate is shut, and
// fail once it is closed. entered is signalled when a write starts.
type gateConn struct {
	net.Conn
	entered   chan struct{}
	closed    chan struct{}
	closeOnce sync.Once
	mu        sync.Mutex
	open      chan struct{} // closed while writes pass
}

func newGateConn(conn net.Conn, open bool) *gateConn {
	c := &gateConn{Conn: conn, entered: make(chan struct{}, 1), closed: make(chan struct{}), open: make(chan struct{})}
	if open {
		close(c.open)
	}
	return c
}

func (c *gateConn) Write(p []byte) (int, error) {
	notify(c.entered)
	c.mu.Lock()
	open := c.open
	c.mu.Unlock()
	select {
	case <-open:
	case <-c.closed:
		return 0, net.ErrClosed
	}
	return c.Conn.Write(p)
}

func (c *gateConn) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

// shut makes the writes from now on wait.
func (c *gateConn) shut() {
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case <-c.open:
		c.open = make(chan struct{})
	default:
	}
}

// release lets the writes through.
func (c *gateConn) release() {
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case <-c.open:
	default:
		close(c.open)
	}
}

// discardPipe returns one end of a pipe whose other end reads and drops
// everything; both are closed when the test ends.
func discardPipe(t *testing.T) net.Conn {
	ours, theirs := net.Pipe()
	go func() { _, _ = io.Copy(io.Discard, theirs) }()
	t.Cleanup(func() {
		ours.Close()
		theirs.Close()
	})
	return ours
}

// TestWriterFullQueueWaitsAndFails shows the writer's queue: frames queue
// while another goroutine writes, until batchLimit bytes are queued; a
// write past that waits; when the connection's write fails, the waiting
// write fails, every later write fails with the same error, and the
// failure is reported once.
func TestWriterFullQueueWaitsAndFails(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		conn := newGateConn(discardPipe(t), false)
		var failures atomic.Int32
		w := newWriter(conn, nil, func(error) { failures.Add(1) })
		body := make([]byte, 16<<10)
		h := makeHeader(typeData, 0, 1, uint32(len(body)))

		first := make(chan error, 1)
		go func() { first <- w.write(h, body) }()
		synctest.Wait() // the first write waits on the connection
		queued := 0
		for queued < batchLimit {
			if err := w.write(h, body); err != nil {
				t.Fatalf("queueing a frame while another is written: %v", err)
			}
			queued += headerSize + len(body)
		}
		blocked := make(chan error, 1)
		go func() { blocked <- w.write(h, body) }()
		synctest.Wait()
		select {
		case err := <-blocked:
			t.Fatalf("a write past the queue's limit returned at once (%v)", err)
		default:
		}

		conn.Close()
		if err := <-first; !errors.Is(err, net.ErrClosed) {
			t.Errorf("the write that failed returned %v, want net.ErrClosed", err)
		}
		if err := <-blocked; !errors.Is(err, net.ErrClosed) {
			t.Errorf("the waiting write returned %v, want net.ErrClosed", err)
		}
		if err := w.write(h, nil); !errors.Is(err, net.ErrClosed) {
			t.Errorf("a write after the failure returned %v, want net.ErrClosed", err)
		}
		w.send(h)
		if n := failures.Load(); n != 1 {
			t.Errorf("the failure was reported %d times, want once", n)
		}
	})
}

// failingConn fails every write.
type failingConn struct {
	net.Conn
	closed atomic.Bool
}

func (*failingConn) Write([]byte) (int, error) { return 0, io.ErrClosedPipe }
func (c *failingConn) Close() error {
	c.closed.Store(true)
	return c.Conn.Close()
}

// TestFailedWriteEndsSession shows that a write that fails on the
// connection fails the Open that made it, ends the session and closes the
// connection.
func TestFailedWriteEndsSession(t *testing.T) {
	t.Parallel()
	ours, theirs := net.Pipe()
	defer theirs.Close()
	conn := &failingConn{Conn: ours}
	gw := Gateway(conn, zap.NewNop())
	defer gw.Close()
	if _, err := gw.Open(func(uint32) []byte { return []byte("x") }); !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("Open on a failing connection returned %v, want its error", err)
	}
	within(t, "the session to end", gw.Done())
	if !errors.Is(sessionErr(gw), io.ErrClosedPipe) {
		t.Errorf("the session ended for %v, want the write's error", sessionErr(gw))
	}
	if !conn.closed.Load() {
		t.Error("the connection was not closed")
	}
	if n := gw.NumStreams(); n != 0 {
		t.Errorf("%d streams left", n)
	}
	if _, err := gw.Open(func(uint32) []byte { return nil }); !errors.Is(err, ErrSessionShutdown) {
		t.Errorf("Open after the end returned %v, want ErrSessionShutdown", err)
	}
}

// TestCloseDeliversWhatIsQueued shows that frames queued behind a slow
// write when Close is called, here a stream's last data and its FIN, still
// reach a peer that reads, and that Close does not wait past closeDrain
// for a peer that does not. It runs on synctest's clock.
func TestCloseDeliversWhatIsQueued(t *testing.T) {
	t.Parallel()
	t.Run("slow peer", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			ours, theirs := net.Pipe()
			conn := newGateConn(ours, true)
			gw := Gateway(conn, zap.NewNop())
			peer := newRawPeer(t, theirs)
			st, err := gw.Open(func(uint32) []byte { return []byte("hi") })
			if err != nil {
				t.Fatal(err)
			}
			peer.waitFrame("the opening", func(f frame) bool { return f.flags&flagSYN != 0 })

			// Shut the gate: the next write waits on the connection, and
			// the frames after it queue.
			conn.shut()
			first := make(chan error, 1)
			go func() {
				_, err := st.Write(bytes.Repeat([]byte{1}, 1000))
				first <- err
			}()
			synctest.Wait()
			for range 4 {
				if _, err := st.Write(bytes.Repeat([]byte{1}, 1000)); err != nil {
					t.Fatal(err)
				}
			}
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}
			// The network is slow, not stuck: it lets the writes through
			// within closeDrain.
			time.AfterFunc(closeDrain/2, conn.release)
			start := time.Now()
			gw.Close()
			if d := time.Since(start); d != closeDrain/2 {
				t.Errorf("Close took %v, want the %v until what was queued was written", d, closeDrain/2)
			}
			if err := <-first; err != nil {
				t.Fatal(err)
			}
			peer.waitEnd()
			data := 0
			for _, f := range peer.all() {
				if f.typ == typeData && f.id == st.StreamID() && f.flags&flagSYN == 0 {
					data += len(f.body)
				}
			}
			if data != 5000 {
				t.Errorf("the peer got %d of the 5000 bytes written before Close", data)
			}
			if peer.count(func(f frame) bool { return f.flags&flagFIN != 0 && f.id == st.StreamID() }) != 1 {
				t.Error("the peer did not get the stream's FIN queued before Close")
			}
		})
	})
	t.Run("stuck peer", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			ours, theirs := net.Pipe()
			defer theirs.Close()
			gw := Gateway(ours, zap.NewNop())
			opened := make(chan error, 1)
			go func() {
				// Nothing reads theirs: the opening's write waits.
				_, err := gw.Open(func(uint32) []byte { return []byte("hi") })
				opened <- err
			}()
			synctest.Wait()
			start := time.Now()
			gw.Close()
			if d := time.Since(start); d != closeDrain {
				t.Errorf("Close took %v with a stuck write, want closeDrain (%v)", d, closeDrain)
			}
			if err := <-opened; err == nil {
				t.Error("the stuck Open succeeded on a closed session")
			}
		})
	})
}

// TestHoldConn shows that writes pass straight through, except between
// hold and release, which send what was written meanwhile in one write.
func TestHoldConn(t *testing.T) {
	t.Parallel()
	rec := &recordingConn{}
	c := NewHoldConn(rec)
	_, _ = c.Write([]byte("a"))
	c.hold()
	_, _ = c.Write([]byte("b"))
	_, _ = c.Write([]byte("c"))
	if n := len(rec.writes); n != 1 {
		t.Fatalf("%d writes reached the connection during the hold, want the one before it", n)
	}
	if err := c.release(); err != nil {
		t.Fatal(err)
	}
	if err := c.release(); err != nil {
		t.Fatalf("a release without a hold: %v", err)
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

// selfSigned returns a TLS certificate for tests.
func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		DNSNames:     []string{"gateway.test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestTLSRecordsOfABatchGoInOneWrite shows that under TLS with a HoldConn
// the records of one batch of frames, here a full data frame that TLS
// cuts into several records, reach the connection beneath in one write,
// and arrive intact.
func TestTLSRecordsOfABatchGoInOneWrite(t *testing.T) {
	t.Parallel()
	gw, agent, rec := tlsSessions(t)
	gs, as := openAccept(t, gw, agent, "o")
	if _, err := io.ReadFull(as, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}

	// The agent's answer to the round-trip ping has gone out.
	eventually(t, "the round trip measured", func() bool { return gw.roundTrip() > 0 })
	payload := make([]byte, maxFrame)
	_, _ = rand.Read(payload)
	rec.taken()
	if _, err := as.Write(payload); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(payload))
	if _, err := io.ReadFull(gs, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, payload) {
		t.Fatal("the bytes changed on the way")
	}
	writes := rec.taken()
	if len(writes) != 1 {
		t.Fatalf("a batch went out in %d writes beneath TLS, want 1", len(writes))
	}
	records := 0
	for w := writes[0]; len(w) > 0; records++ {
		if len(w) < 5 {
			t.Fatal("the write ends within a TLS record's header")
		}
		n := 5 + int(binary.BigEndian.Uint16(w[3:5]))
		if len(w) < n {
			t.Fatal("the write ends within a TLS record")
		}
		w = w[n:]
	}
	if records < maxFrame/(16<<10) {
		t.Errorf("the write holds %d TLS records, want the %d or more of a full data frame", records, maxFrame/(16<<10))
	}
}

// tlsSessions returns a gateway's and an agent's session over TLS, the
// agent's a TLS client over a HoldConn, as the agent's are, and the
// recording of what the agent's TLS writes beneath.
func tlsSessions(t *testing.T) (gw, agent *Session, rec *recordingConn) {
	t.Helper()
	ac, gc := net.Pipe()
	rec = &recordingConn{Conn: ac}
	under := NewHoldConn(rec)
	client := tls.Client(under, &tls.Config{InsecureSkipVerify: true})
	server := tls.Server(gc, &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}})
	handshake := make(chan error, 1)
	go func() { handshake <- server.Handshake() }()
	if err := client.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := within(t, "the handshake", handshake); err != nil {
		t.Fatal(err)
	}
	agent = Agent(client, under, zap.NewNop(), 0)
	gw = Gateway(server, zap.NewNop())
	t.Cleanup(func() { agent.Close(); gw.Close() })
	return gw, agent, rec
}

// TestLargeFramesGoStraightOut shows that under TLS with a HoldConn, full
// data frames from several streams at once, with small frames between
// them, arrive intact and in each stream's order, whether a frame went
// out from its caller's buffer (nobody else wrote) or through the queue
// (another write was under way), and that a full frame on a quiet
// connection goes out in one write beneath TLS.
func TestLargeFramesGoStraightOut(t *testing.T) {
	t.Parallel()
	gw, agent, rec := tlsSessions(t)
	const streams, frames = 4, 3
	type pair struct{ gs, as *Stream }
	pairs := make([]pair, streams)
	open := func(i int) {
		pairs[i].gs, pairs[i].as = openAccept(t, gw, agent, strconv.Itoa(i))
		if _, err := io.ReadFull(pairs[i].as, make([]byte, 1)); err != nil {
			t.Fatal(err)
		}
	}
	// The first stream alone, with the round-trip ping that goes with its
	// opening answered: nothing else to write.
	open(0)
	eventually(t, "the round trip measured", func() bool { return gw.roundTrip() > 0 })

	// One full frame alone: one write beneath TLS.
	alone := make([]byte, maxFrame)
	_, _ = rand.Read(alone)
	rec.taken()
	go func() { _, _ = pairs[0].as.Write(alone) }()
	got := make([]byte, len(alone))
	if _, err := io.ReadFull(pairs[0].gs, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, alone) {
		t.Fatal("a full frame changed on the way")
	}
	if writes := rec.taken(); len(writes) != 1 {
		t.Errorf("a full frame on a quiet connection went out in %d writes beneath TLS, want 1", len(writes))
	}

	// All streams at once.
	for i := 1; i < streams; i++ {
		open(i)
	}
	pieces := make([][][]byte, streams) // each stream's writes
	sent := make([][]byte, streams)
	for i := range pieces {
		for range frames {
			frame := make([]byte, maxFrame)
			_, _ = rand.Read(frame)
			pieces[i] = append(pieces[i], frame, []byte("small "+strconv.Itoa(i)))
		}
		sent[i] = bytes.Join(pieces[i], nil)
	}
	var wg sync.WaitGroup
	received := make([][]byte, streams)
	for i, p := range pairs {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for _, piece := range pieces[i] {
				if _, err := p.as.Write(piece); err != nil {
					t.Error(err)
					return
				}
			}
			_ = p.as.Close()
		}()
		go func() {
			defer wg.Done()
			received[i], _ = io.ReadAll(p.gs)
		}()
	}
	wg.Wait()
	for i := range sent {
		if !bytes.Equal(received[i], sent[i]) {
			t.Errorf("stream %d: %d bytes arrived, not the %d sent", i, len(received[i]), len(sent[i]))
		}
	}
}

// alertingConn stands for a TLS connection over under: its writes go to
// under, and its close first writes an alert, as TLS's close_notify.
type alertingConn struct {
	under *HoldConn
}

func (c alertingConn) Read(p []byte) (int, error)  { return c.under.Read(p) }
func (c alertingConn) Write(p []byte) (int, error) { return c.under.Write(p) }
func (c alertingConn) Close() error {
	_, _ = c.under.Write([]byte("alert"))
	return c.under.Close()
}

// TestCloseUnderTLSDoesNotWaitForAStuckWrite shows that closing a session
// whose batch is stuck in a write beneath TLS returns within closeDrain,
// rather than behind that write.
func TestCloseUnderTLSDoesNotWaitForAStuckWrite(t *testing.T) {
	t.Parallel()
	raw := newGateConn(discardPipe(t), false)
	under := NewHoldConn(raw)
	agent := Agent(alertingConn{under}, under, zap.NewNop(), 0)
	written := make(chan error, 1)
	go func() { written <- agent.w.write(makeHeader(typePing, flagSYN, 0, 1), nil) }()
	within(t, "the batch to reach the connection beneath TLS", raw.entered)
	closed := make(chan struct{})
	start := time.Now()
	go func() {
		agent.Close()
		close(closed)
	}()
	within(t, "Close", closed)
	if d := time.Since(start); d > closeDrain+waitLong/2 {
		t.Errorf("Close took %v", d)
	}
	if err := within(t, "the stuck write", written); err == nil {
		t.Error("the stuck write succeeded")
	}
}
