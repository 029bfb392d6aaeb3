package rdp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/tildegate/tildegate/internal/pipe"
	"github.com/tildegate/tildegate/modules/broker"
	"github.com/tildegate/tildegate/x224"
	"go.uber.org/zap"
)

// serve runs one RDP connection whose first byte, first, was read when
// it was accepted: it reads the Connection Request, connects to the server
// that it names and copies bytes both ways until either side ends.
func (w *ListenerWrapper) serve(client net.Conn, first byte, accepted time.Time) {
	defer client.Close()
	fields := []zap.Field{zap.String("remote_addr", client.RemoteAddr().String())}
	refuse := func(name, reason string) {
		w.sessionLogger().Info("rdp connection refused", append(fields, zap.String("name", name), zap.String("reason", reason))...)
	}

	timeout := time.Duration(w.FirstPacketTimeout)
	if err := client.SetReadDeadline(accepted.Add(timeout)); err != nil {
		refuse("", err.Error())
		return
	}
	req, err := readRequest(client, first)
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			refuse("", fmt.Sprintf("no whole connection request within %s", timeout))
		} else {
			refuse("", err.Error())
		}
		return
	}
	if req.Name == "" {
		refuse("", "the connection request names no server: the client must send /~~NAME as its user name (mstshash cookie) or routing token")
		return
	}
	releaseName, ok := connsPerName.acquire(strings.ToLower(req.Name), w.MaxConnsPerName)
	if !ok {
		refuse(req.Name, fmt.Sprintf("already %d RDP connections to this name (max_conns_per_name)", w.MaxConnsPerName))
		return
	}
	defer releaseName()
	ip := clientIP(client.RemoteAddr())
	releaseClient, ok := connsPerClient.acquire(ip, w.MaxConnsPerClient)
	if !ok {
		refuse(req.Name, fmt.Sprintf("already %d RDP connections from this address (max_conns_per_client)", w.MaxConnsPerClient))
		return
	}
	defer releaseClient()

	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(w.DialTimeout))
	server, target, err := w.dial(ctx, req.Name, ip)
	cancel()
	var limited *broker.SessionError
	switch {
	case errors.As(err, &limited):
		// A limit, or an agent that cannot reach its RDP service: the
		// broker logged it, once per interval.
		return
	case err != nil:
		refuse(req.Name, err.Error())
		return
	}
	defer server.Close()
	server, closed := sessionMetrics(req.Name, server)
	defer closed()
	if err := sendRequest(server, req.Packet, time.Duration(w.DialTimeout)); err != nil {
		refuse(req.Name, fmt.Sprintf("sending the connection request to %s: %v", target, err))
		return
	}
	// Caddy set deadlines for its TLS handshake before the first read;
	// a session has none.
	if err := client.SetDeadline(time.Time{}); err != nil {
		refuse(req.Name, err.Error())
		return
	}

	fields = append(fields, zap.String("name", req.Name), zap.String("target", target))
	w.sessionLogger().Info("rdp connection opened", fields...)
	started := time.Now()
	fromClient, toClient, err := pipe.Join(client, client, server)
	// The session may have outlived its config: log through the newest.
	w.sessionLogger().Info("rdp connection closed", append(fields,
		zap.Int64("bytes_from_client", fromClient), zap.Int64("bytes_to_client", toClient),
		zap.Duration("duration", time.Since(started)), zap.NamedError("end", err))...)
}

// clientIP is the IP address of a client, without its port.
func clientIP(addr net.Addr) string {
	if tcp, ok := addr.(*net.TCPAddr); ok {
		return tcp.IP.String()
	}
	host, _, err := net.SplitHostPort(addr.String())
	if err != nil {
		return addr.String()
	}
	return host
}

// readRequest reads the rest of the Connection Request whose first byte
// was first and parses it.
func readRequest(r io.Reader, first byte) (x224.Request, error) {
	var header [x224.HeaderLen]byte
	header[0] = first
	if _, err := io.ReadFull(r, header[1:]); err != nil {
		return x224.Request{}, fmt.Errorf("reading the TPKT header: %w", err)
	}
	n, err := x224.PacketLength(header)
	if err != nil {
		return x224.Request{}, err
	}
	packet := make([]byte, n)
	copy(packet, header[:])
	if _, err := io.ReadFull(r, packet[x224.HeaderLen:]); err != nil {
		return x224.Request{}, fmt.Errorf("reading the connection request (%d bytes): %w", n, err)
	}
	return x224.Parse(packet)
}

// sendRequest writes the Connection Request to the server within timeout.
func sendRequest(server net.Conn, packet []byte, timeout time.Duration) error {
	if err := server.SetWriteDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	if _, err := server.Write(packet); err != nil {
		return err
	}
	return server.SetWriteDeadline(time.Time{})
}
