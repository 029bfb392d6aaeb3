// Package pipe copies bytes both ways between two connections.
package pipe

import (
	"errors"
	"io"
	"net"
	"sync/atomic"
)

// errNoHalfClose ends a splice whose connection cannot close only its
// writing side.
var errNoHalfClose = errors.New("the connection cannot close its writing side alone")

// Splice copies bytes between a and b, reading a through aR (which may
// hold bytes already read from a), until both directions end or one fails.
// An end of one direction is passed on by closing the writing side of the
// other connection. It returns the bytes copied each way (up from a to b,
// down from b to a) and the first failure, if any; it does not close the
// connections unless one direction fails.
func Splice(a net.Conn, aR io.Reader, b net.Conn) (up, down int64, err error) {
	return copyBoth(a, aR, b, true)
}

// Join copies bytes between a and b, reading a through aR as Splice does,
// until either side ends or fails, then closes both: for protocols such as
// RDP, where the end of one side is the end of the session. It returns the
// bytes copied each way (up from a to b, down from b to a) and the first
// failure, if any.
func Join(a net.Conn, aR io.Reader, b net.Conn) (up, down int64, err error) {
	return copyBoth(a, aR, b, false)
}

// copyBoth runs the two directions. With halfClose, an end is passed on
// with closeWrite; without, it closes both connections, and the other
// direction's resulting error is not a failure.
func copyBoth(a net.Conn, aR io.Reader, b net.Conn, halfClose bool) (up, down int64, err error) {
	type result struct {
		up  bool
		n   int64
		err error
	}
	results := make(chan result, 2)
	var joined atomic.Bool // both closed because one side ended
	end := func(dst net.Conn, err error) error {
		switch {
		case err != nil:
			if joined.Load() && errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		case halfClose:
			return closeWrite(dst)
		}
		joined.Store(true)
		a.Close()
		b.Close()
		return nil
	}
	go func() {
		n, err := io.Copy(b, aR)
		results <- result{true, n, end(b, err)}
	}()
	go func() {
		n, err := io.Copy(a, b)
		results <- result{false, n, end(a, err)}
	}()
	for range 2 {
		res := <-results
		if res.up {
			up = res.n
		} else {
			down = res.n
		}
		if res.err != nil && err == nil {
			err = res.err
			a.Close()
			b.Close()
		}
	}
	if errors.Is(err, errNoHalfClose) {
		err = nil
	}
	return up, down, err
}

// closeWrite closes the writing side of conn.
func closeWrite(conn net.Conn) error {
	if cw, ok := conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errNoHalfClose
}
