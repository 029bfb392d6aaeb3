package rdp

import (
	"errors"
	"io"
	"net"
	"sync/atomic"
	"time"

	"github.com/tildegate/tildegate/internal/pipe"
	"github.com/tildegate/tildegate/x224"
)

// errTakenOver ends Caddy's use of a connection that turned out to be RDP.
var errTakenOver = errors.New("tildegate_rdp: the connection is RDP and served by the RDP gateway")

// conn is an accepted connection whose first Read decides what it is. Caddy
// reads it from one goroutine, so the fields Read uses need no lock; only
// takenOver is read by the other methods, which Caddy may call from
// elsewhere.
type conn struct {
	net.Conn
	w        *ListenerWrapper
	accepted time.Time

	decided   bool
	first     [1]byte
	pending   []byte // bytes read while deciding, not yet handed to Caddy
	takenOver atomic.Bool
}

// Read implements net.Conn. The first call reads one byte: for RDP it
// hands the connection to the RDP gateway and ends Caddy's use of it with
// an error; otherwise that byte is the first Caddy gets.
//
// After a takeover every Read fails at once without touching the
// connection: the RDP gateway reads it now. net/http reads again after the
// first error on a plain HTTP port: its check for the HTTP/2 preface
// (h2c) gives up, and then it reads a request. That read raced the RDP
// gateway for the client's bytes.
func (c *conn) Read(p []byte) (int, error) {
	if c.takenOver.Load() {
		return 0, errTakenOver
	}
	if !c.decided {
		n, err := c.Conn.Read(c.first[:])
		if n == 0 {
			return 0, err
		}
		c.decided = true
		if x224.StartsRDP(c.first[0]) {
			c.takenOver.Store(true)
			go c.w.serve(c.Conn, c.first[0], c.accepted)
			return 0, errTakenOver
		}
		c.pending = c.first[:]
	}
	if len(c.pending) > 0 {
		if len(p) == 0 {
			return 0, nil
		}
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// Write implements net.Conn; after a takeover it writes nothing.
func (c *conn) Write(p []byte) (int, error) {
	if c.takenOver.Load() {
		return 0, errTakenOver
	}
	return c.Conn.Write(p)
}

// Close implements net.Conn; after a takeover the RDP gateway closes the
// connection, not Caddy.
func (c *conn) Close() error {
	if c.takenOver.Load() {
		return nil
	}
	return c.Conn.Close()
}

// CloseWrite closes the writing side, as net/http does to end a plain
// HTTP connection gracefully.
func (c *conn) CloseWrite() error {
	if c.takenOver.Load() {
		return nil
	}
	return pipe.CloseWrite(c.Conn)
}

// ReadFrom lets net/http send a file on a plain HTTP connection with the
// kernel's sendfile, as it would without the wrapper.
func (c *conn) ReadFrom(r io.Reader) (int64, error) {
	if c.takenOver.Load() {
		return 0, errTakenOver
	}
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(writerOnly{c.Conn}, r)
}

// writerOnly hides every method but Write, so that io.Copy does not call
// ReadFrom again.
type writerOnly struct{ io.Writer }

// SetDeadline implements net.Conn; after a takeover it does nothing.
func (c *conn) SetDeadline(t time.Time) error {
	if c.takenOver.Load() {
		return nil
	}
	return c.Conn.SetDeadline(t)
}

// SetReadDeadline implements net.Conn; after a takeover it does nothing.
func (c *conn) SetReadDeadline(t time.Time) error {
	if c.takenOver.Load() {
		return nil
	}
	return c.Conn.SetReadDeadline(t)
}

// SetWriteDeadline implements net.Conn; after a takeover it does nothing.
func (c *conn) SetWriteDeadline(t time.Time) error {
	if c.takenOver.Load() {
		return nil
	}
	return c.Conn.SetWriteDeadline(t)
}
