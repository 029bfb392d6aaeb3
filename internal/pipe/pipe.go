// Package pipe copies bytes both ways between two connections.
package pipe

import (
	"errors"
	"io"
	"net"
	"sync"
)

// errNoHalfClose reports a connection that cannot close only its writing
// side.
var errNoHalfClose = errors.New("the connection cannot close its writing side alone")

// Join copies bytes between a and b, reading a through aR (which may hold
// bytes already read from a), until either side ends or fails, then closes
// both: for protocols such as RDP, and for the tunnel's sessions, where
// the end of one side is the end of the session. It returns the bytes
// copied each way (up from a to b, down from b to a) and the first
// failure, if any; the other direction's failure that closing causes is
// not reported.
//
// An idle session holds two small buffers, not two large ones: a
// direction reads into a large pooled buffer only while data arrives in
// bulk.
func Join(a net.Conn, aR io.Reader, b net.Conn) (up, down int64, err error) {
	var closeBoth sync.Once
	end := func() {
		closeBoth.Do(func() {
			a.Close()
			b.Close()
		})
	}
	upDone := make(chan error, 1)
	go func() {
		var err error
		up, err = copyAdaptive(b, aR)
		end()
		upDone <- err
	}()
	down, downErr := copyAdaptive(a, b)
	end()
	upErr := <-upDone
	// Whichever ended first closed both: the other's error is the close.
	if errors.Is(upErr, net.ErrClosed) {
		upErr = nil
	}
	if errors.Is(downErr, net.ErrClosed) {
		downErr = nil
	}
	return up, down, errors.Join(downErr, upErr)
}

// Buffer sizes of copyAdaptive.
const (
	smallBuffer = 2 << 10
	largeBuffer = 128 << 10
)

var largeBuffers = sync.Pool{New: func() any { b := make([]byte, largeBuffer); return &b }}

// copyAdaptive copies src to dst until src ends (no error then) or either
// fails. It reads into a small buffer while reads are small, and into a
// large pooled one while they fill the buffer they are given, so that a
// quiet stream costs little memory and a bulk one few system calls.
func copyAdaptive(dst io.Writer, src io.Reader) (written int64, err error) {
	small := make([]byte, smallBuffer)
	var large *[]byte
	defer func() {
		if large != nil {
			largeBuffers.Put(large)
		}
	}()
	buf := small
	for {
		n, rerr := src.Read(buf)
		if n > 0 {
			w, werr := dst.Write(buf[:n])
			written += int64(w)
			if werr != nil {
				return written, werr
			}
			if w != n {
				return written, io.ErrShortWrite
			}
		}
		if rerr == io.EOF {
			return written, nil
		}
		if rerr != nil {
			return written, rerr
		}
		switch {
		case large == nil && n == len(small):
			large = largeBuffers.Get().(*[]byte)
			buf = *large
		case large != nil && n < smallBuffer:
			largeBuffers.Put(large)
			large, buf = nil, small
		}
	}
}

// ReaderConn returns conn reading through r, which holds bytes already
// read from conn (past an HTTP answer, say) before the rest of it.
func ReaderConn(conn net.Conn, r io.Reader) net.Conn { return &readerConn{Conn: conn, r: r} }

type readerConn struct {
	net.Conn
	r io.Reader
}

func (c *readerConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// CloseWrite closes the writing side of conn, or fails when conn cannot
// close it alone.
func CloseWrite(conn net.Conn) error {
	if cw, ok := conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errNoHalfClose
}
