package mux

import (
	"errors"
	"io"
	"runtime"
	"sync"
	"time"
)

// Sizes of the writer's queue.
const (
	// batchLimit is how much a writer queues while another goroutine
	// writes before a data frame waits: enough for several full TLS
	// records per write.
	batchLimit = 64 << 10
	// batchKeep is the capacity of the pooled queue buffers: a full queue
	// and the largest frame. A buffer that grew past it is not kept.
	batchKeep = batchLimit + headerSize + maxFrame
)

// smallFrame is the size of a frame body under which a writer lets others
// queue first.
const smallFrame = 4 << 10

// directWrite is the size of a frame body from which a frame written on
// a connection that nobody writes is not copied into the queue: under
// TLS, a copy of its body costs more than a record of its own for its
// header.
const directWrite = 16 << 10

// batchBuffers are the queue buffers of all sessions: an idle session
// holds none.
var batchBuffers = sync.Pool{New: func() any { b := make([]byte, 0, batchKeep); return &b }}

// writer writes a session's frames. Whoever queues a frame while no other
// goroutine writes writes it at once, so that a frame on a quiet
// connection (a bulk stream's, or a request's) costs no hand-off to
// another goroutine; the frames queued during a write go out together in
// the next one, from a goroutine of its own: over TLS each write costs at
// least a record and a system call. A frame's header always goes in the
// same write as its body, or, for a large frame under TLS with a
// HoldConn, in the same system call. A failed write fails every write
// after it.
type writer struct {
	conn io.Writer
	// deadline, when not nil, sets the connection's write deadline: a
	// write that blocks for writeTimeout fails.
	deadline func(time.Time) error
	// under, when not nil, is the connection under conn's TLS, whose
	// records of one write go out in one system call.
	under *HoldConn
	// failed is called once, without the lock, when a write fails.
	failed func(error)

	mu   sync.Mutex
	cond sync.Cond // signalled when a write ends or err is set
	// queue holds the frames waiting for the next write; nil when there
	// are none.
	queue   *[]byte
	writing bool // a goroutine writes, and will write what is queued
	err     error
	// deadlineSet is when the write deadline was last moved.
	deadlineSet time.Time
}

func newWriter(conn io.Writer, under *HoldConn, failed func(error)) *writer {
	w := &writer{conn: conn, under: under, failed: failed}
	if d, ok := conn.(interface{ SetWriteDeadline(time.Time) error }); ok {
		w.deadline = d.SetWriteDeadline
	}
	w.cond.L = &w.mu
	return w
}

// write queues a frame and, unless another goroutine writes, writes the
// batch that holds it. It waits while batchLimit bytes are queued already.
func (w *writer) write(h header, body []byte) error { return w.writeAfter(nil, h, body) }

// writeAfter is write with the frame first, if any, queued before it, in
// the same batch.
func (w *writer) writeAfter(first []byte, h header, body []byte) error {
	w.mu.Lock()
	for w.err == nil && w.writing && w.queued() >= batchLimit {
		w.cond.Wait()
	}
	if w.err != nil {
		err := w.err
		w.mu.Unlock()
		return err
	}
	if !w.writing && w.queue == nil && first == nil && w.under != nil && len(body) >= directWrite {
		// A large frame on a connection that nobody writes goes out from
		// its caller's buffer, not copied into the queue; its header
		// makes a TLS record of its own, in the same system call.
		w.writing = true
		w.mu.Unlock()
		err := w.writeOut(h[:], body)
		w.mu.Lock()
		err = w.wrote(err)
		w.handOn()
		w.mu.Unlock()
		return err
	}
	if first != nil {
		w.enqueue(first, nil)
	}
	w.enqueue(h[:], body)
	if w.writing {
		w.mu.Unlock()
		return nil
	}
	w.writing = true
	if len(body) < smallFrame {
		// Let the goroutines about to write small frames too (other
		// sessions' requests and answers) queue theirs first, as they
		// would for a writer goroutine, without its wake-up: one write
		// for many.
		w.mu.Unlock()
		runtime.Gosched()
		w.mu.Lock()
	}
	err := w.writeBatch()
	w.handOn()
	w.mu.Unlock()
	return err
}

// send queues a control frame and never waits for the connection: the
// session's reader sends with it, and must go on reading while the peer
// does not. A peer that sends frames to be answered but does not read
// the answers fails the connection once sendLimit bytes are queued.
func (w *writer) send(h header) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return
	}
	if w.queued() >= sendLimit {
		w.err = errPeerNotReading
		w.cond.Broadcast()
		// Not from here: the session's reader may hold the session's lock.
		go w.failed(w.err)
		return
	}
	w.enqueue(h[:], nil)
	if !w.writing {
		w.writing = true
		go w.flush()
	}
}

// sendLimit bounds the queue that send adds to.
const sendLimit = 1 << 20

// errPeerNotReading fails a connection whose peer sends frames to be
// answered and does not read the answers.
var errPeerNotReading = errors.New("the peer does not read the answers to its frames")

// handOn, called with the lock held by the goroutine that wrote a batch,
// has a goroutine of its own write what was queued meanwhile, so that no
// caller writes others' frames for longer than its own batch takes.
func (w *writer) handOn() {
	if w.queue != nil && w.err == nil {
		go w.flush()
		return
	}
	w.writing = false
	w.cond.Broadcast()
}

// flush writes what is queued until nothing is.
func (w *writer) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for w.queue != nil && w.err == nil {
		_ = w.writeBatch()
	}
	w.writing = false
	w.cond.Broadcast()
}

// writeBatch writes what is queued, in one write. It is called with the
// lock held and writing set, and holds the lock again when it returns.
// A failed write fails the writer.
func (w *writer) writeBatch() error {
	out := w.queue
	w.queue = nil
	w.mu.Unlock()
	err := w.writeOut(*out, nil)
	if cap(*out) <= batchKeep {
		*out = (*out)[:0]
		batchBuffers.Put(out)
	}
	w.mu.Lock()
	return w.wrote(err)
}

// wrote, called with the lock held after a write, wakes whoever waits for
// the queue and fails the writer if the write failed. It returns the
// writer's error.
func (w *writer) wrote(err error) error {
	w.cond.Broadcast()
	if err != nil && w.err == nil {
		w.err = err
		// Not under the lock: failing ends the session, which fails
		// the writer too.
		w.mu.Unlock()
		w.failed(err)
		w.mu.Lock()
	}
	return w.err
}

// writeOut writes one batch on the connection: out, then more if any,
// in one system call under TLS.
func (w *writer) writeOut(out, more []byte) error {
	if w.deadline != nil {
		// Moving the deadline costs a timer update: once a second is
		// enough for a bound of writeTimeout.
		if now := time.Now(); now.Sub(w.deadlineSet) > time.Second {
			if err := w.deadline(now.Add(writeTimeout)); err != nil {
				return err
			}
			w.deadlineSet = now
		}
	}
	if w.under != nil {
		w.under.hold()
	}
	_, err := w.conn.Write(out)
	if err == nil && more != nil {
		_, err = w.conn.Write(more)
	}
	if w.under != nil {
		if uerr := w.under.release(); err == nil {
			err = uerr
		}
	}
	return err
}

// fail sets the error that every later write returns, unless one is set,
// and wakes whoever waits.
func (w *writer) fail(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil {
		w.err = err
	}
	w.cond.Broadcast()
}

// drain waits until nothing is queued or being written, a write failed,
// or d passed.
func (w *writer) drain(d time.Duration) {
	expired := false
	timer := time.AfterFunc(d, func() {
		w.mu.Lock()
		expired = true
		w.cond.Broadcast()
		w.mu.Unlock()
	})
	defer timer.Stop()
	w.mu.Lock()
	defer w.mu.Unlock()
	for w.err == nil && (w.queue != nil || w.writing) && !expired {
		w.cond.Wait()
	}
}

// queued returns how many bytes are queued.
func (w *writer) queued() int {
	if w.queue == nil {
		return 0
	}
	return len(*w.queue)
}

// enqueue queues a frame.
func (w *writer) enqueue(h, body []byte) {
	if w.queue == nil {
		w.queue = batchBuffers.Get().(*[]byte)
	}
	*w.queue = append(append(*w.queue, h...), body...)
}
