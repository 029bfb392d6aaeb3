package balancebin

import (
	"reflect"
	"testing"
)

// balanceExamples cover every form of balance.bin entry, one line each.
var balanceExamples = []string{
	"/~~srv1=192.168.1.10:80;",
	"SSL /~~srv2=10.0.0.5:443;",
	"SSL_STRICT /~~portal=portal.example.com:443;",
	"SSL_JVM_TM /~~a=10.0.0.6:8443;  SSL_JVM_TM_STRICT /~~b=b.example:443;",
	"/~~srv1=192.168.55.77:3389 RDPPORT;",
	"/~~v6=[::1]:8080;",
	"/~~home=secret#:*;",
	"/~~home2=secret#:1;",
	"/~~office=pw#:*51.254.22.85;",
	"/~~branch=pw#:*51.254.*;",
	"/~~laptop=pw#:*home.dyndns.net;",
	"SSL /~~secure=pw#:*;",
}

// backExamples cover every form of backbalance.bin entry, one line each.
var backExamples = []string{
	`/~~home=pw#gw.example.com:443;`,
	`SSL /~~home=pw#gw.example.com:8443 => 127.0.0.1:8080;`,
	`/~~srv1=pw#gw.example:443 -> \myuser1:mypass@192.168.10.11:808;`,
	`/~~srv1=pw#gw.example:443 -> mydomain\myuser1:mypass@192.168.10.11:808;`,
	`/~~srv1=pw#gw.example:443 -> myuser2:mypass@192.168.12.12:808;`,
	`/~~srv1=pw#gw.example:443 -> 192.168.10.11:808;`,
	`/~~srv1=pw#gw.example:443 -> \u1:p1@10.0.0.1:808 -> u2:p2@10.0.0.2:808 => 127.0.0.1:8080;`,
	`/~~srv1=pw#gw.example:443 RDPPORT 127.0.0.1:3390;`,
	`/~~srv1=pw#gw.example:443 => 127.0.0.1:8080 RDPPORT 10.0.0.5:3389;`,
	`/~~srv1=pw#gw.example:443 -> u:p@10.0.0.1:808 => 127.0.0.1:8080 RDPPORT 127.0.0.1:3389;`,
}

// withoutPos returns entries with their positions cleared.
func withoutPos(entries []Entry) []Entry {
	out := make([]Entry, len(entries))
	for i, e := range entries {
		e.Pos = Position{}
		out[i] = e
	}
	return out
}

// backWithoutPos returns entries with their positions cleared.
func backWithoutPos(entries []BackEntry) []BackEntry {
	out := make([]BackEntry, len(entries))
	for i, e := range entries {
		e.Pos = Position{}
		out[i] = e
	}
	return out
}

// checkRoundTrip fails t unless entries, parsed from in, come back from
// Parse(Format(entries)) and Format is a fixed point.
func checkRoundTrip(t *testing.T, in []byte, entries []Entry) {
	t.Helper()
	out := Format(entries)
	again, err := Parse("formatted", out)
	if err != nil {
		t.Fatalf("Parse(Format(Parse(%q))) = %v; Format gave %q", in, err, out)
	}
	if !reflect.DeepEqual(withoutPos(again), withoutPos(entries)) {
		t.Fatalf("round trip of %q through %q:\n got %+v\nwant %+v", in, out, again, entries)
	}
	if twice := Format(again); string(twice) != string(out) {
		t.Fatalf("Format not stable for %q: %q then %q", in, out, twice)
	}
}

// checkBackRoundTrip is checkRoundTrip for backbalance.bin.
func checkBackRoundTrip(t *testing.T, in []byte, entries []BackEntry) {
	t.Helper()
	out := FormatBack(entries)
	again, err := ParseBack("formatted", out)
	if err != nil {
		t.Fatalf("ParseBack(FormatBack(ParseBack(%q))) = %v; FormatBack gave %q", in, err, out)
	}
	if !reflect.DeepEqual(backWithoutPos(again), backWithoutPos(entries)) {
		t.Fatalf("round trip of %q through %q:\n got %+v\nwant %+v", in, out, again, entries)
	}
	if twice := FormatBack(again); string(twice) != string(out) {
		t.Fatalf("FormatBack not stable for %q: %q then %q", in, out, twice)
	}
}
