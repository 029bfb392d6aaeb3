package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestRouting covers the /~~name routing rules, prefix-safe responses,
// websockets, streaming and HTTP/2 through one gateway.
func TestRouting(t *testing.T) {
	srv1 := newBackend(t, "srv1", false)
	inline := newBackend(t, "inline", false)
	dir := t.TempDir()
	balance := writeFile(t, dir, "balance.bin", fmt.Sprintf("# farm\r\n/~~srv1=%s;\r\n/~~home=secret#:*;\r\n/~~rdponly=127.0.0.1:3389 RDPPORT;\r\n", srv1.hostPort()))
	tester := startGateway(t, gatewayConfig("", fmt.Sprintf("\t\tbalance_file %s\n\t\tserver inline http://%s", balance, inline.hostPort())), "caddyfile")
	client := tester.Client

	t.Run("prefix stripped, query kept, forwarded headers", func(t *testing.T) {
		res, body := get(t, client, gatewayURL+"/~~srv1/anything?q=1")
		var got seen
		if err := json.Unmarshal([]byte(body), &got); err != nil {
			t.Fatalf("status %d body %q: %v", res.StatusCode, body, err)
		}
		if got.Backend != "srv1" || got.Path != "/anything" || got.Query != "q=1" {
			t.Errorf("backend saw %+v", got)
		}
		want := map[string]string{
			"X-Forwarded-Prefix": "/~~srv1",
			"X-Forwarded-Proto":  "https",
			"X-Forwarded-Host":   fmt.Sprintf("localhost:%d", httpsPort),
			"X-Forwarded-For":    "127.0.0.1",
		}
		for k, v := range want {
			if got.Header.Get(k) != v {
				t.Errorf("%s = %q, want %q", k, got.Header.Get(k), v)
			}
		}
		if res.ProtoMajor != 2 {
			t.Errorf("client got HTTP/%d, want HTTP/2", res.ProtoMajor)
		}
	})

	t.Run("names are case-insensitive, with one spelling", func(t *testing.T) {
		res, _ := get(t, noRedirects(), gatewayURL+"/~~SRV1/x?y=1")
		if res.StatusCode != http.StatusPermanentRedirect || res.Header.Get("Location") != "/~~srv1/x?y=1" {
			t.Errorf("%d Location %q, want 308 to the configured spelling", res.StatusCode, res.Header.Get("Location"))
		}
		_, body := get(t, client, gatewayURL+"/~~SRV1/x")
		if !strings.Contains(body, `"path":"/x"`) || !strings.Contains(body, `"X-Forwarded-Prefix":["/~~srv1"]`) {
			t.Errorf("body %s", body)
		}
	})

	t.Run("dot segments refused", func(t *testing.T) {
		for _, p := range []string{"/~~srv1/../~~inline/x", "/~~srv1/%2e%2e/~~inline/x", "/~~srv1%2F..%2F~~inline/x"} {
			res, body := get(t, noRedirects(), gatewayURL+p)
			if res.StatusCode != http.StatusBadRequest {
				t.Errorf("%s: %d %q, want 400", p, res.StatusCode, body)
			}
		}
	})

	t.Run("escaped path", func(t *testing.T) {
		_, body := get(t, client, gatewayURL+"/~~srv1/a%2Fb")
		if !strings.Contains(body, `"raw_path":"/a%2Fb"`) {
			t.Errorf("body %s", body)
		}
	})

	t.Run("bare name redirects to the slash", func(t *testing.T) {
		for target, want := range map[string]string{"/~~srv1": "/~~srv1/", "/~~srv1?x=1": "/~~srv1/?x=1"} {
			res, _ := get(t, noRedirects(), gatewayURL+target)
			if res.StatusCode != http.StatusPermanentRedirect || res.Header.Get("Location") != want {
				t.Errorf("%s: %d Location %q, want 308 %q", target, res.StatusCode, res.Header.Get("Location"), want)
			}
		}
	})

	t.Run("unknown name is 404 naming it", func(t *testing.T) {
		res, body := get(t, client, gatewayURL+"/~~nosuch/x")
		if res.StatusCode != http.StatusNotFound || !strings.Contains(body, `"nosuch"`) {
			t.Errorf("%d %q", res.StatusCode, body)
		}
	})

	t.Run("other paths go to the next handler", func(t *testing.T) {
		for _, p := range []string{"/", "/other", "/~x", "/%7E"} {
			_, body := get(t, client, gatewayURL+p)
			if !strings.HasPrefix(body, "fallthrough /") {
				t.Errorf("%s: %q", p, body)
			}
		}
	})

	t.Run("back entry without agent", func(t *testing.T) {
		res, body := get(t, client, gatewayURL+"/~~home/")
		if res.StatusCode != http.StatusBadGateway || !strings.Contains(body, "no agent connected for home") {
			t.Errorf("%d %q", res.StatusCode, body)
		}
	})

	t.Run("RDP-only name has no web entry", func(t *testing.T) {
		res, body := get(t, client, gatewayURL+"/~~rdponly/")
		if res.StatusCode != http.StatusNotFound || !strings.Contains(body, "rdponly") {
			t.Errorf("%d %q", res.StatusCode, body)
		}
	})

	t.Run("inline server", func(t *testing.T) {
		_, body := get(t, client, gatewayURL+"/~~inline/y")
		if !strings.Contains(body, `"backend":"inline"`) || !strings.Contains(body, `"path":"/y"`) {
			t.Errorf("body %s", body)
		}
	})

	t.Run("redirects put under the prefix", func(t *testing.T) {
		res, _ := get(t, noRedirects(), gatewayURL+"/~~srv1/redirect")
		if got := res.Header.Get("Location"); got != "/~~srv1/login?from=redirect" {
			t.Errorf("Location %q", got)
		}
		res, _ = get(t, noRedirects(), gatewayURL+"/~~srv1/redirect-absolute")
		if got, want := res.Header.Get("Location"), gatewayURL+"/~~srv1/abs"; got != want {
			t.Errorf("Location %q, want %q", got, want)
		}
		if got := res.Header.Get("Content-Location"); got != "/~~srv1/doc" {
			t.Errorf("Content-Location %q", got)
		}
		if got := res.Header.Get("Refresh"); got != "3; url=/~~srv1/later" {
			t.Errorf("Refresh %q", got)
		}
	})

	t.Run("cookies put under the prefix", func(t *testing.T) {
		res, _ := get(t, noRedirects(), gatewayURL+"/~~srv1/cookie")
		cookies := res.Header.Values("Set-Cookie")
		want := []string{"session=abc; Path=/~~srv1/; HttpOnly", "pref=1; Path=/~~srv1/app"}
		if strings.Join(cookies, "|") != strings.Join(want, "|") {
			t.Errorf("Set-Cookie %q, want %q", cookies, want)
		}
	})

	t.Run("websocket", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ws, _, err := websocket.Dial(ctx, "wss://localhost:9443/~~srv1/ws", &websocket.DialOptions{HTTPClient: http1Client()})
		if err != nil {
			t.Fatal(err)
		}
		defer ws.CloseNow()
		for i := range 3 {
			msg := fmt.Sprintf("hello %d", i)
			if err := ws.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
				t.Fatal(err)
			}
			_, got, err := ws.Read(ctx)
			if err != nil || string(got) != "srv1:"+msg {
				t.Fatalf("echo %q, %v", got, err)
			}
		}
	})

	t.Run("streaming is flushed", func(t *testing.T) {
		res, err := client.Get(gatewayURL + "/~~srv1/stream")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		buf := make([]byte, 64)
		n, err := res.Body.Read(buf)
		if err != nil || !strings.Contains(string(buf[:n]), "data: first") {
			t.Fatalf("first event before the backend finished: %q, %v", buf[:n], err)
		}
		close(srv1.release)
		rest := make([]byte, 64)
		n, _ = res.Body.Read(rest)
		if !strings.Contains(string(rest[:n]), "data: second") {
			t.Errorf("second event %q", rest[:n])
		}
	})
}
