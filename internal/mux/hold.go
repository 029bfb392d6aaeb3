package mux

import (
	"net"
	"sync"
)

// HoldConn is a connection under a TLS client whose writes the
// multiplexer holds and sends together: TLS writes each record of up to
// 16 KiB with a system call of its own, so a batch of frames would cost
// one call per record. What TLS writes for one batch goes out in one
// call. Outside the batches writes pass straight through, as during the
// handshakes.
type HoldConn struct {
	net.Conn
	mu   sync.Mutex
	held *[]byte // the writes held since hold; nil when writes pass through
}

// heldKeep is the capacity of the buffers of held writes: a batch, in
// TLS records of 16 KiB with a few dozen bytes of their own each.
const heldKeep = batchKeep + batchKeep/64

// heldBuffers are the buffers of the writes a HoldConn holds.
var heldBuffers = sync.Pool{New: func() any { b := make([]byte, 0, heldKeep); return &b }}

// NewHoldConn returns conn, for use under a TLS client.
func NewHoldConn(conn net.Conn) *HoldConn { return &HoldConn{Conn: conn} }

// Write writes p, or holds it during a batch.
func (c *HoldConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.held == nil {
		return c.Conn.Write(p)
	}
	*c.held = append(*c.held, p...)
	return len(p), nil
}

// hold holds the writes from now on.
func (c *HoldConn) hold() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.held == nil {
		c.held = heldBuffers.Get().(*[]byte)
	}
}

// release writes what was held since hold, and lets writes through again.
func (c *HoldConn) release() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	held := c.held
	c.held = nil
	if held == nil {
		return nil
	}
	var err error
	if len(*held) > 0 {
		_, err = c.Conn.Write(*held)
	}
	if cap(*held) <= heldKeep {
		*held = (*held)[:0]
		heldBuffers.Put(held)
	}
	return err
}
