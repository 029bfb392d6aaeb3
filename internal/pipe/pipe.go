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
	type result struct {
		up  bool
		n   int64
		err error
	}
	results := make(chan result, 2)
	go func() {
		n, err := io.Copy(b, aR)
		if err == nil {
			err = closeWrite(b)
		}
		results <- result{true, n, err}
	}()
	go func() {
		n, err := io.Copy(a, b)
		if err == nil {
			err = closeWrite(a)
		}
		results <- result{false, n, err}
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
