package gateway

import (
	"net/http/httptest"
	"sync"
	"testing"
)

func TestLookupKey(t *testing.T) {
	for in, want := range map[string]string{"srv1": "srv1", "SRV1": "srv1", "Srv-2.a_b": "srv-2.a_b", "": ""} {
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

func TestTableRetiresAfterLastRequest(t *testing.T) {
	cleaned := 0
	var ref tableRef
	first := &table{cancel: func() { cleaned++ }}
	ref.swap(first)

	held := ref.acquire()
	ref.swap(&table{cancel: func() {}})
	if cleaned != 0 {
		t.Fatal("a table in use was cleaned up")
	}
	if got := ref.acquire(); got == first {
		t.Fatal("a retired table was handed out")
	} else {
		got.release()
	}
	held.release()
	if cleaned != 1 {
		t.Fatalf("retired table cleaned %d times after its last request, want 1", cleaned)
	}
}

func TestTableConcurrentSwaps(t *testing.T) {
	var mu sync.Mutex
	cleaned := map[*table]int{}
	newTable := func() *table {
		tb := &table{}
		tb.cancel = func() { mu.Lock(); cleaned[tb]++; mu.Unlock() }
		return tb
	}
	var ref tableRef
	ref.swap(newTable())
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 2000 {
				tb := ref.acquire()
				mu.Lock()
				if cleaned[tb] > 0 {
					t.Error("acquired a cleaned table")
				}
				mu.Unlock()
				tb.release()
			}
		}()
	}
	for range 200 {
		ref.swap(newTable())
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(cleaned) != 200 {
		t.Errorf("%d tables cleaned, want the 200 replaced ones", len(cleaned))
	}
	for tb, n := range cleaned {
		if n != 1 {
			t.Errorf("table %p cleaned %d times", tb, n)
		}
	}
}
