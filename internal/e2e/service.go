package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// pattern is the repeated content of large test bodies.
var pattern = func() []byte {
	b := make([]byte, 1<<20)
	for i := range b {
		b[i] = byte(i*7 + i>>8)
	}
	return b
}()

// PatternReader gives size bytes of a repeated pattern, the content of
// large test bodies.
func PatternReader(size int64) io.Reader {
	return io.LimitReader(&repeatReader{}, size)
}

type repeatReader struct{ off int }

func (r *repeatReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		n += copy(p[n:], pattern[(r.off+n)%len(pattern):])
	}
	r.off = (r.off + n) % len(pattern)
	return n, nil
}

// PatternSum is the SHA-256 of size bytes of PatternReader.
func PatternSum(size int64) string {
	h := sha256.New()
	_, _ = io.Copy(h, PatternReader(size))
	return hex.EncodeToString(h.Sum(nil))
}

// LocalService is the service behind an agent: it answers /hello with
// its name, /close the same but closes the connection, /upload with the
// checksum of the body, /download?size=N with N bytes of PatternReader,
// and /ws as a websocket echo.
func LocalService(t testing.TB, name string) *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("/hello", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s, path %s, prefix %s", name, r.URL.Path, r.Header.Get("X-Forwarded-Prefix"))
	})
	mux.HandleFunc("/close", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		fmt.Fprintf(w, "hello from %s, closing", name)
	})
	mux.HandleFunc("/upload", func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "%d %s", n, hex.EncodeToString(h.Sum(nil)))
	})
	mux.HandleFunc("/download", func(w http.ResponseWriter, r *http.Request) {
		size, _ := strconv.ParseInt(r.URL.Query().Get("size"), 10, 64)
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
		_, _ = io.Copy(w, PatternReader(size))
	})
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		c.SetReadLimit(1 << 20)
		for {
			typ, msg, err := c.Read(r.Context())
			if err != nil {
				return
			}
			if err := c.Write(r.Context(), typ, bytes.ToUpper(msg)); err != nil {
				return
			}
		}
	})
	s := httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

// DialEcho dials the websocket echo of a local service at url, an https
// address on the gateway such as URL("/~~home/ws").
func (e *Env) DialEcho(t testing.TB, url string) *websocket.Conn {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: e.TLSConfig()}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: hc})
	if err != nil {
		t.Fatalf("websocket to %s: %v", url, err)
	}
	t.Cleanup(func() { ws.CloseNow() })
	ws.SetReadLimit(1 << 20)
	return ws
}

// Echo sends msg on ws and returns the answer.
func Echo(ws *websocket.Conn, msg string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ws.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		return "", err
	}
	_, got, err := ws.Read(ctx)
	return string(got), err
}
