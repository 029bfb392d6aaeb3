package broker

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tildegate/tildegate/wire"
	"go.uber.org/zap"
)

// FuzzHandshake sends the broker arbitrary hellos and arbitrary bytes after
// them, over real connections, and fails on any panic in the broker.
func FuzzHandshake(f *testing.F) {
	b := newBroker(zap.NewNop())
	b.Claim([]Entry{{Name: "home", Password: "pw", Settings: Settings{Dead: time.Second, Alive: 500 * time.Millisecond}}})
	var panicked atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if p := recover(); p != nil {
				panicked.Store(fmt.Sprint(p))
			}
		}()
		b.ServeUpgrade(w, r, "home")
	}))
	f.Cleanup(srv.Close)

	nonce := strings.Repeat("A", 43)
	control := "Tildegate v=2; role=control; nonce=" + nonce
	auth, _ := wire.Frame{Type: wire.FrameAuth, Share: make([]byte, wire.ShareSize), Confirmation: make([]byte, wire.ConfirmationSize)}.Append(nil)
	f.Add(control, auth)
	f.Add(control+"; resume="+strings.Repeat("B", 22)+"; spare=3", append(auth, make([]byte, wire.ProofSize)...))
	f.Add("Tildegate v=2; role=back; nonce="+nonce+"; session="+strings.Repeat("C", 22)+"; ticket="+strings.Repeat("D", 22)+"; proof="+strings.Repeat("E", 43), []byte("GET / HTTP/1.1\r\n\r\n"))
	f.Add("Tildegate v=1; role=control; nonce=x", []byte{1, 0, 200})
	f.Add(control+"; future=1", []byte{1, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, hello string, after []byte) {
		hello = strings.Map(func(r rune) rune {
			if r == '\r' || r == '\n' || r == 0 {
				return -1
			}
			return r
		}, hello)
		c, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		fmt.Fprintf(c, "GET /~~home HTTP/1.1\r\nHost: gw\r\nUpgrade: %s\r\nConnection: Upgrade\r\n%s: %s\r\n\r\n", wire.UpgradeToken, wire.HeaderHello, hello)
		_, _ = c.Write(after)
		res, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err == nil {
			res.Body.Close()
		}
		if p := panicked.Load(); p != nil {
			t.Fatalf("the broker panicked: %v", p)
		}
	})
}
