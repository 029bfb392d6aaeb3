package integration

import (
	"encoding/pem"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// TestTLSBackends checks the balance.bin TLS keywords: SSL and SSL_JVM_TM
// accept any certificate, SSL_STRICT and SSL_JVM_TM_STRICT verify it against
// the system roots or ca_file.
func TestTLSBackends(t *testing.T) {
	secure := newBackend(t, "secure", true)
	dir := t.TempDir()
	caFile := writeFile(t, dir, "ca.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: secure.Certificate().Raw})))
	balance := writeFile(t, dir, "balance.bin", fmt.Sprintf(`SSL /~~any=%[1]s;
SSL_JVM_TM /~~jvm=%[1]s;
SSL_STRICT /~~strict=%[1]s;
SSL_JVM_TM_STRICT /~~jvmstrict=%[1]s;
/~~plain=%[1]s;
`, secure.hostPort()))

	tester := startGateway(t, gatewayConfig("", "\t\tbalance_file "+balance), "caddyfile")
	for name, wantOK := range map[string]bool{"any": true, "jvm": true, "strict": false, "jvmstrict": false, "plain": false} {
		res, body := get(t, tester.Client, gatewayURL+"/~~"+name+"/x")
		if ok := res.StatusCode == http.StatusOK && strings.Contains(body, `"backend":"secure"`); ok != wantOK {
			t.Errorf("without ca_file, /~~%s: %d %q; want success %v", name, res.StatusCode, body, wantOK)
		}
	}

	tester = startGateway(t, gatewayConfig("", fmt.Sprintf("\t\tbalance_file %s\n\t\tca_file %s", balance, caFile)), "caddyfile")
	for _, name := range []string{"strict", "jvmstrict"} {
		res, body := get(t, tester.Client, gatewayURL+"/~~"+name+"/x")
		if res.StatusCode != http.StatusOK || !strings.Contains(body, `"path":"/x"`) {
			t.Errorf("with ca_file, /~~%s: %d %q", name, res.StatusCode, body)
		}
	}
}
