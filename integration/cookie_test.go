package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestHostCookie: a __Host- cookie reaches the client as the server set it,
// and the gateway warns once per name that browsers will send it to every
// name's server, however many responses set it.
func TestHostCookie(t *testing.T) {
	srv1 := newBackend(t, "srv1", false)
	srv2 := newBackend(t, "srv2", false)
	logFile := filepath.Join(t.TempDir(), "caddy.log")
	tester := startGateway(t, gatewayConfig(logFile, fmt.Sprintf("\t\tserver srv1 http://%s\n\t\tserver srv2 http://%s", srv1.hostPort(), srv2.hostPort())), "caddyfile")

	for i := range 5 {
		for _, name := range []string{"srv1", "srv2"} {
			res, body := get(t, noRedirects(), gatewayURL+"/~~"+name+"/host-cookie")
			want := []string{hostCookie, "plain=1; Path=/~~" + name + "/"}
			if got := res.Header.Values("Set-Cookie"); body != "cookies set" || strings.Join(got, "|") != strings.Join(want, "|") {
				t.Fatalf("response %d from %s: Set-Cookie %q, body %q; want %q", i, name, got, body, want)
			}
		}
	}
	// Other responses of srv1 do not warn either.
	get(t, tester.Client, gatewayURL+"/~~srv1/cookie")

	logged, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	warnings := map[string]int{}
	for line := range strings.SplitSeq(string(logged), "\n") {
		if !strings.Contains(line, "__Host- cookie") {
			continue
		}
		if !strings.Contains(line, `"level":"warn"`) || !strings.Contains(line, `"cookie":"__Host-sid"`) {
			t.Errorf("warning %s", line)
		}
		if strings.Contains(line, "v4lue") {
			t.Errorf("the warning shows the cookie's value: %s", line)
		}
		for _, name := range []string{"srv1", "srv2"} {
			if strings.Contains(line, `"name":"`+name+`"`) {
				warnings[name]++
			}
		}
	}
	if warnings["srv1"] != 1 || warnings["srv2"] != 1 {
		t.Errorf("warnings per name %v, want one for each of srv1 and srv2; log:\n%s", warnings, logged)
	}
}
