// Package integration runs tildegate end to end: a real Caddy with the
// plugin, real backends on loopback, real TLS and websockets.
package integration

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"

	_ "github.com/caddyserver/caddy/v2/modules/standard"
	_ "github.com/tildegate/tildegate"
)

// Ports of the Caddy that caddytest runs in this test binary.
const (
	adminAddr = "localhost:2999"
	httpPort  = 9080
	httpsPort = 9443
)

// gatewayURL is the TLS site every gateway config serves.
var gatewayURL = fmt.Sprintf("https://localhost:%d", httpsPort)

// globalOptions start every Caddyfile: caddytest's admin address, test
// ports, no waiting on shutdown, logs in logFile when it is not empty, and
// the extra global options.
func globalOptions(logFile string, extra ...string) string {
	logging := ""
	if logFile != "" {
		logging = fmt.Sprintf("\tlog {\n\t\toutput file %s\n\t\tformat json\n\t}\n", logFile)
	}
	return fmt.Sprintf(`{
	admin %s
	http_port %d
	https_port %d
	grace_period 1ns
	local_certs
	skip_install_trust
%s%s}
`, adminAddr, httpPort, httpsPort, logging, strings.Join(extra, ""))
}

// gatewayConfig is a Caddyfile with one TLS site at gatewayURL whose
// tildegate block is block; other paths answer "fallthrough <path>".
func gatewayConfig(logFile, block string) string {
	return globalOptions(logFile) + fmt.Sprintf(`
localhost:%d {
	tildegate {
%s
	}
	respond "fallthrough {path}" 200
}
`, httpsPort, block)
}

// startGateway loads a config ("caddyfile" or "json") into the test
// binary's Caddy and returns a client that trusts it and keeps cookies.
func startGateway(t testing.TB, config, configType string) *caddytest.Tester {
	t.Helper()
	tester := caddytest.NewTester(t)
	tester.InitServer(config, configType)
	if t.Failed() {
		t.FailNow()
	}
	awaitCertificate(t)
	return tester
}

// awaitCertificate waits until the HTTPS port, if the config has one, has
// its certificate: with a fresh storage (as the tests have), Caddy's
// internal CA issues it in the background after the config loaded, and
// TLS handshakes before that fail with "internal error".
func awaitCertificate(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", fmt.Sprintf("127.0.0.1:%d", httpsPort),
			&tls.Config{ServerName: "localhost", InsecureSkipVerify: true})
		if err == nil {
			conn.Close()
			return
		}
		if !strings.Contains(err.Error(), "internal error") {
			return // no HTTPS site, or another failure the test will meet
		}
		if time.Now().After(deadline) {
			t.Fatalf("the HTTPS port has no certificate after 10s: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// writeFile writes content to name in dir and returns its path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// get fetches url with client and returns the response with its body read.
func get(t *testing.T, client *http.Client, url string) (*http.Response, string) {
	t.Helper()
	res, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("GET %s: reading body: %v", url, err)
	}
	return res, string(body)
}

// noRedirects is a client that reports redirects instead of following them.
func noRedirects() *http.Client {
	return &http.Client{
		Transport:     caddytest.CreateTestingTransport(),
		Timeout:       5 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// http1Client speaks HTTP/1.1 only, as websocket clients do.
func http1Client() *http.Client {
	tr := caddytest.CreateTestingTransport()
	tr.ForceAttemptHTTP2 = false
	tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// eventually retries check until it returns nil or within passes.
func eventually(t *testing.T, within time.Duration, check func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %v", within, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// postConfig loads a Caddyfile through the admin API, as an operator would.
func postConfig(caddyfile string) error {
	res, err := http.Post("http://"+adminAddr+"/load", "text/caddyfile", bytes.NewBufferString(caddyfile))
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(res.Body)
		return fmt.Errorf("POST /load: %s: %s", res.Status, strings.TrimSpace(string(body)))
	}
	return nil
}
