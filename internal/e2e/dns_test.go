package e2e

import (
	"context"
	"net"
	"slices"
	"testing"
)

// TestDNSServer: the server answers a name with the addresses last set,
// over UDP and TCP, counts the A queries, and knows no other name.
func TestDNSServer(t *testing.T) {
	d := StartDNS(t)
	d.Set("gw.tildegate.test", "127.0.0.2", "127.0.0.3")
	for _, network := range []string{"udp", "tcp"} {
		r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var dialer net.Dialer
			return dialer.DialContext(ctx, network, d.Addr)
		}}
		got, err := r.LookupHost(context.Background(), "gw.tildegate.test.")
		slices.Sort(got)
		if err != nil || !slices.Equal(got, []string{"127.0.0.2", "127.0.0.3"}) {
			t.Errorf("%s: %v %v", network, got, err)
		}
		d.Set("GW.tildegate.test", "127.0.0.4")
		if got, err := r.LookupHost(context.Background(), "gw.tildegate.test."); err != nil || !slices.Equal(got, []string{"127.0.0.4"}) {
			t.Errorf("%s after Set: %v %v", network, got, err)
		}
		d.Set("gw.tildegate.test", "127.0.0.2", "127.0.0.3")
		if _, err := r.LookupHost(context.Background(), "other.tildegate.test."); err == nil {
			t.Errorf("%s: an unknown name resolved", network)
		}
	}
	if n := d.Queries("gw.tildegate.test"); n != 4 {
		t.Errorf("%d A queries counted, want 4", n)
	}
}
