package gateway

import (
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
)

func TestLookupKey(t *testing.T) {
	for in, want := range map[string]string{"srv1": "srv1", "SRV1": "srv1", "Srv-2.a_b": "srv-2.a_b", "": "", "S\u212a": "s\u212a"} {
		if got := lookupKey(in); got != want {
			t.Errorf("lookupKey(%q) = %q, want %q", in, got, want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { _ = lookupKey("srv1") }); n != 0 {
		t.Errorf("lookupKey of a lower-case name allocates %v times", n)
	}
}

func TestStripPrefix(t *testing.T) {
	cases := []struct{ target, path, rawPath string }{
		{"/~~srv1/anything?q=1", "/anything", ""},
		{"/~~srv1/a%2Fb", "/a/b", "/a%2Fb"},
		{"/%7E%7Esrv1/x%20y", "/x y", "/x%20y"},
		{"/%7E%7Esrv1/a%2Fb", "/a/b", "/a%2Fb"},
	}
	for _, c := range cases {
		r := httptest.NewRequest("GET", c.target, nil)
		end := len("/~~srv1")
		stripPrefix(r, r.URL.Path[end:])
		if r.URL.Path != c.path || r.URL.RawPath != c.rawPath {
			t.Errorf("%s: path %q raw %q, want %q raw %q", c.target, r.URL.Path, r.URL.RawPath, c.path, c.rawPath)
		}
		if c.target == cases[0].target && r.URL.RawQuery != "q=1" {
			t.Errorf("query lost: %q", r.URL.RawQuery)
		}
	}
}

func TestCleanPath(t *testing.T) {
	for path, want := range map[string]bool{
		"/~~a/x":          true,
		"/~~a/":           true,
		"/~~a/.hidden":    true,
		"/~~a/x..y/z":     true,
		"/~~a/../~~b/x":   false,
		"/~~a/./x":        false,
		"/~~a/x/..":       false,
		"/~~a/x/.":        false,
		"/~~a//x":         true,
		"/~~a/x/...":      true,
		"/~~a/%2e%2e/x":   true, // still escaped: the decoded path is what is checked
		"/~~a/x/../../..": false,
	} {
		if got := cleanPath(path); got != want {
			t.Errorf("cleanPath(%q) = %v, want %v", path, got, want)
		}
	}
}

func TestCheckName(t *testing.T) {
	for _, ok := range []string{"srv1", "SRV-2", "a.b_c"} {
		if err := checkName(ok); err != nil {
			t.Errorf("checkName(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a/b", "a b", "é"} {
		if err := checkName(bad); err == nil {
			t.Errorf("checkName(%q) accepted", bad)
		}
	}
}

// newTestRoute is a route whose cleanup is counted.
func newTestRoute(cleaned *atomic.Int64) *route {
	rt := &route{cancel: func() { cleaned.Add(1) }}
	rt.users.Store(1)
	return rt
}

func TestRouteOutlivesItsTableWhileInUse(t *testing.T) {
	var cleaned atomic.Int64
	var ref tableRef
	rt := newTestRoute(&cleaned)
	ref.swap(&table{routes: map[string]*route{"a": rt}})

	// a request looks the route up and holds it
	tb := ref.acquire()
	held := tb.routes["a"]
	held.hold()
	tb.release()

	ref.swap(&table{routes: map[string]*route{}})
	if cleaned.Load() != 0 {
		t.Fatal("a route in use was cleaned up when its table was replaced")
	}
	held.release()
	if cleaned.Load() != 1 {
		t.Fatalf("route cleaned %d times after its last request, want 1", cleaned.Load())
	}
}

func TestSharedRouteSurvivesSwap(t *testing.T) {
	var cleaned atomic.Int64
	var ref tableRef
	rt := newTestRoute(&cleaned)
	ref.swap(&table{routes: map[string]*route{"a": rt}})
	rt.hold() // the next table shares it
	ref.swap(&table{routes: map[string]*route{"a": rt}})
	if cleaned.Load() != 0 {
		t.Fatal("a route the new table shares was cleaned up")
	}
	ref.close()
	if cleaned.Load() != 1 {
		t.Fatalf("route cleaned %d times after the last table closed, want 1", cleaned.Load())
	}
	if got := ref.acquire(); got == nil {
		t.Fatal("after close, a late request found no table")
	} else {
		got.release()
	}
}

func TestTableConcurrentSwaps(t *testing.T) {
	var cleaned atomic.Int64
	var ref tableRef
	newTable := func() *table { return &table{routes: map[string]*route{"a": newTestRoute(&cleaned)}} }
	ref.swap(newTable())
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 2000 {
				tb := ref.acquire()
				rt := tb.routes["a"]
				rt.hold()
				tb.release()
				if rt.users.Load() <= 0 {
					t.Error("used a route that was cleaned up")
				}
				rt.release()
			}
		}()
	}
	for range 200 {
		ref.swap(newTable())
	}
	wg.Wait()
	if cleaned.Load() != 200 {
		t.Errorf("%d routes cleaned, want the 200 replaced ones", cleaned.Load())
	}
}
