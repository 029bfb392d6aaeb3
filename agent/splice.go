package agent

import (
	"errors"
	"io"
	"net"
)

// errNoHalfClose ends a splice whose connection cannot close only its
// writing side.
var errNoHalfClose = errors.New("the connection cannot close its writing side alone")

// splice copies bytes between the gateway's back connection, read through
// backR (which may hold bytes already read from back), and the local
// service, until both directions end or one fails. An end of one direction
// is passed on by closing the writing side of the other connection. It
// returns the bytes copied each way and the first failure, if any; it does
// not close the connections unless one direction fails.
func splice(back net.Conn, backR io.Reader, local net.Conn) (up, down int64, err error) {
	type result struct {
		up  bool
		n   int64
		err error
	}
	results := make(chan result, 2)
	go func() {
		n, err := io.Copy(local, backR)
		if err == nil {
			err = closeWrite(local)
		}
		results <- result{true, n, err}
	}()
	go func() {
		n, err := io.Copy(back, local)
		if err == nil {
			err = closeWrite(back)
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
			back.Close()
			local.Close()
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
