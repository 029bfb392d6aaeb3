// Command tlsfloor is the floor under the scale benchmark's figures for
// idle agents: a Go TLS server that does nothing but hold connections,
// each read by a goroutine of its own, as Caddy, which terminates the
// gateway's TLS, reads them; and that keeps them alive as the tunnel
// does: once a second it writes one small record to each connection whose
// alive interval has passed, and its peer answers at once. It has none of
// the gateway's own work (no HTTP upgrade, no handshake of the protocol,
// no tags, no registration, no write deadline, no goroutine per write),
// so its memory and CPU per connection are what any Go server with
// crypto/tls pays for the same idle connections.
//
//	tlsfloor -serve 127.0.0.1:0 -cert cert.pem -key key.pem -alive 20s
//	tlsfloor -dial 127.0.0.1:8443 -ca ca.pem -count 10000
//
// The server prints "listening ADDR", then on SIGUSR1 one JSON line: its
// connections, the answers it read so far, its Go heap in use, its live
// heap (and garbage not collected yet), its goroutine stacks and its count
// of collections; on SIGUSR2 the same line after a collection. The client connects -count times, from source
// addresses 127.3.x.y, answers every record it reads with one of the same
// size, and prints "connected N" when all are up. Both stop on SIGTERM.
package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// recordSize is what each side writes: about an ALIVE frame with its tag.
const recordSize = 40

// window is how often the server's sweep runs, as the gateway's does at
// its default alive interval.
const window = time.Second

// Stats is the server's answer to SIGUSR1; its memory figures are named
// as in runtime.MemStats.
type Stats struct {
	Conns                            int64 `json:"conns"`
	Answers                          int64 `json:"answers"`
	HeapInuse, HeapAlloc, StackInuse uint64
	NumGC                            uint32
}

func main() {
	serveAddr := flag.String("serve", "", "listen on this address")
	cert := flag.String("cert", "", "the server's certificate (PEM)")
	key := flag.String("key", "", "the server's key (PEM)")
	alive := flag.Duration("alive", 20*time.Second, "how often the server writes to each connection")
	dialAddr := flag.String("dial", "", "connect to this address")
	ca := flag.String("ca", "", "the CA of the server's certificate (PEM)")
	count := flag.Int("count", 1, "connections to open")
	flag.Parse()
	var err error
	switch {
	case *serveAddr != "" && *alive >= window:
		err = serve(*serveAddr, *cert, *key, *alive)
	case *serveAddr != "":
		err = fmt.Errorf("-alive %s: at least %s", *alive, window)
	case *dialAddr != "" && *count > 0:
		err = dial(*dialAddr, *ca, *count)
	default:
		err = errors.New("give -serve ADDR -cert FILE -key FILE, or -dial ADDR -ca FILE -count N")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "tlsfloor:", err)
		os.Exit(2)
	}
}

// server holds the connections in one slot a window of the alive
// interval: the sweep writes to a slot's connections every alive
// interval, all in one burst.
type server struct {
	mu      sync.Mutex
	slots   [][]*tls.Conn
	tick    int
	conns   atomic.Int64
	answers atomic.Int64
}

func serve(addr, certFile, keyFile string, alive time.Duration) error {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return err
	}
	ln, err := tls.Listen("tcp", addr, &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		return err
	}
	fmt.Println("listening", ln.Addr())
	s := &server{slots: make([][]*tls.Conn, int(alive/window))}
	go s.sweep()
	go s.printStats()
	go func() {
		stop := make(chan os.Signal, 1)
		signal.Notify(stop, syscall.SIGTERM, os.Interrupt)
		<-stop
		ln.Close()
	}()
	for {
		conn, err := ln.Accept()
		if err != nil {
			return nil
		}
		go s.admit(conn.(*tls.Conn))
	}
}

// admit completes the handshake, slots the connection in and reads it in
// a goroutine of its own, started afresh as the gateway's are.
func (s *server) admit(conn *tls.Conn) {
	if err := conn.Handshake(); err != nil {
		conn.Close()
		return
	}
	s.mu.Lock()
	last := (s.tick + len(s.slots) - 1) % len(s.slots)
	s.slots[last] = append(s.slots[last], conn)
	s.mu.Unlock()
	s.conns.Add(1)
	go s.read(conn)
}

func (s *server) read(conn *tls.Conn) {
	var buf [recordSize]byte
	for {
		if _, err := conn.Read(buf[:]); err != nil {
			conn.Close()
			s.conns.Add(-1)
			return
		}
		s.answers.Add(1)
	}
}

// sweep writes a record to each connection of the next slot, every window.
func (s *server) sweep() {
	var record [recordSize]byte
	for range time.Tick(window) {
		s.mu.Lock()
		s.tick = (s.tick + 1) % len(s.slots)
		slot := s.slots[s.tick]
		s.mu.Unlock()
		for _, conn := range slot {
			_, _ = conn.Write(record[:])
		}
	}
}

func (s *server) printStats() {
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGUSR1, syscall.SIGUSR2)
	for sig := range signals {
		if sig == syscall.SIGUSR2 {
			runtime.GC()
		}
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		line, _ := json.Marshal(Stats{Conns: s.conns.Load(), Answers: s.answers.Load(),
			HeapInuse: m.HeapInuse, HeapAlloc: m.HeapAlloc, StackInuse: m.StackInuse, NumGC: m.NumGC})
		fmt.Println(string(line))
	}
}

func dial(addr, caFile string, count int) error {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return fmt.Errorf("%s: no certificate", caFile)
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	config := &tls.Config{RootCAs: roots, ServerName: host}
	var conns []*tls.Conn
	for i := range count {
		source := &net.TCPAddr{IP: net.IPv4(127, 3, byte(i/250), byte(i%250+1))}
		conn, err := tls.DialWithDialer(&net.Dialer{LocalAddr: source, Timeout: 10 * time.Second}, "tcp", addr, config)
		if err != nil {
			return fmt.Errorf("connection %d: %w", i, err)
		}
		conns = append(conns, conn)
		go answer(conn)
	}
	fmt.Println("connected", len(conns))
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, os.Interrupt)
	<-stop
	return nil
}

// answer writes a record of the same size for each one it reads.
func answer(conn *tls.Conn) {
	var buf [recordSize]byte
	for {
		if _, err := conn.Read(buf[:]); err != nil {
			return
		}
		if _, err := conn.Write(buf[:]); err != nil {
			return
		}
	}
}
