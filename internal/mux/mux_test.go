package mux

import (
	"bytes"
	"crypto/rand"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
)

// countingConn counts the writes that reach the connection.
type countingConn struct {
	net.Conn
	writes atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// TestDataFramesAreWrittenWhole: what the gateway writes on a stream
// reaches the agent intact, in both directions, and each data frame
// reaches the connection in one write, header and body together.
func TestDataFramesAreWrittenWhole(t *testing.T) {
	gwConn, agentConn := net.Pipe()
	counted := &countingConn{Conn: gwConn}
	gw, err := Gateway(counted, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	agent, err := Agent(agentConn, zap.NewNop(), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer agent.Close()

	accepted := make(chan net.Conn, 1)
	go func() {
		s, err := agent.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- s
	}()
	s, err := gw.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := s.Write([]byte("opening")); err != nil {
		t.Fatal(err)
	}
	peer := <-accepted
	if peer == nil {
		t.Fatal("the agent accepted no stream")
	}
	defer peer.Close()
	_ = peer.SetDeadline(time.Now().Add(10 * time.Second))
	if got := make([]byte, 7); func() bool { _, err := io.ReadFull(peer, got); return err != nil || string(got) != "opening" }() {
		t.Fatal("the opening did not arrive")
	}

	const frames, size = 50, 8 << 10
	payload := make([]byte, frames*size)
	_, _ = rand.Read(payload)
	before := counted.writes.Load()
	echoed := make(chan []byte, 1)
	go func() {
		// The agent echoes what it reads, so both sides write frames.
		got := make([]byte, len(payload))
		if _, err := io.ReadFull(peer, got); err != nil {
			echoed <- nil
			return
		}
		_, _ = peer.Write(got)
		echoed <- got
	}()
	for i := range frames {
		if _, err := s.Write(payload[i*size : (i+1)*size]); err != nil {
			t.Fatal(err)
		}
	}
	back := make([]byte, len(payload))
	if _, err := io.ReadFull(s, back); err != nil {
		t.Fatalf("reading the echo: %v", err)
	}
	if got := <-echoed; !bytes.Equal(got, payload) || !bytes.Equal(back, payload) {
		t.Fatal("the bytes changed on the way")
	}
	// One write per data frame, and a few window updates.
	if writes := counted.writes.Load() - before; writes > frames+frames/4 {
		t.Errorf("%d writes for %d data frames: headers are written apart from their bodies", writes, frames)
	}
}
