package rdp

import (
	"io"
	"net"
	"testing"
)

// BenchmarkNewConnection measures what the wrapper adds to a connection
// that is not RDP: a client connects, sends a request and reads the answer,
// through a plain listener and through the wrapper.
func BenchmarkNewConnection(b *testing.B) {
	request := []byte("GET / HTTP/1.1\r\nHost: gateway.example.com\r\nUser-Agent: bench\r\n\r\n")
	for _, wrapped := range []bool{false, true} {
		name := "plain"
		if wrapped {
			name = "wrapped"
		}
		b.Run(name, func(b *testing.B) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer ln.Close()
			var l net.Listener = ln
			if wrapped {
				l = (&ListenerWrapper{}).WrapListener(ln)
			}
			go func() {
				buf := make([]byte, 4096)
				for {
					c, err := l.Accept()
					if err != nil {
						return
					}
					if _, err := io.ReadFull(c, buf[:len(request)]); err == nil {
						c.Write([]byte{'1'})
					}
					c.Close()
				}
			}()
			answer := make([]byte, 1)
			b.ReportAllocs()
			for b.Loop() {
				c, err := net.Dial("tcp", ln.Addr().String())
				if err != nil {
					b.Fatal(err)
				}
				if _, err := c.Write(request); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(c, answer); err != nil {
					b.Fatal(err)
				}
				// A reset rather than TIME_WAIT: thousands of those would
				// slow down whichever run comes later.
				c.(*net.TCPConn).SetLinger(0)
				c.Close()
			}
		})
	}
}
