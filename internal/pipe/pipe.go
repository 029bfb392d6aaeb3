// Package pipe copies bytes both ways between two connections.
package pipe

import (
	"errors"
	"io"
	"net"
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
// with CloseWrite; without, the first end closes both connections. A
// failure closes both too, and the other direction's error that this
// causes is not reported.
func copyBoth(a net.Conn, aR io.Reader, b net.Conn, halfClose bool) (up, down int64, err error) {
	type result struct {
		up  bool
		n   int64
		err error
	}
	results := make(chan result, 2)
	copyOne := func(up bool, dst net.Conn, src io.Reader) {
		n, err := io.Copy(dst, src)
		if err == nil && halfClose {
			err = CloseWrite(dst)
		}
		results <- result{up, n, err}
	}
	go copyOne(true, b, aR)
	go copyOne(false, a, b)
	closed := false
	for range 2 {
		res := <-results
		if res.up {
			up = res.n
		} else {
			down = res.n
		}
		if closed && errors.Is(res.err, net.ErrClosed) {
			res.err = nil
		}
		if res.err != nil && err == nil {
			err = res.err
		}
		if !closed && (res.err != nil || !halfClose) {
			closed = true
			a.Close()
			b.Close()
		}
	}
	if errors.Is(err, errNoHalfClose) {
		err = nil
	}
	return up, down, err
}

// CloseWrite closes the writing side of conn, or fails when conn cannot
// close it alone.
func CloseWrite(conn net.Conn) error {
	if cw, ok := conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errNoHalfClose
}
