package gateway

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// TestHostCookieWarnedOncePerName: many responses, some at once, set
// __Host- cookies for two names; each is passed on unchanged and each name
// is warned of once.
func TestHostCookieWarnedOncePerName(t *testing.T) {
	core, logs := observer.New(zapcore.WarnLevel)
	h := &Handler{logger: zap.New(core), hostCookies: new(sync.Map)}
	routes := []*route{
		{name: "srv1", prefix: "/~~srv1"},
		{name: "SRV2", prefix: "/~~SRV2"},
	}
	cookies := []string{"__Host-sid=s3cr3t; Path=/; Secure", "__host-id=s3cr3t; Path=/; Secure"}
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Go(func() {
			rt := routes[i%2]
			rec := httptest.NewRecorder()
			pw := getPrefixWriter(h, rec, httptest.NewRequest("GET", "https://gw.example"+rt.prefix+"/x", nil), rt)
			pw.Header().Add("Set-Cookie", cookies[i/2%2])
			pw.Header().Add("Set-Cookie", "other=1; Path=/")
			pw.WriteHeader(http.StatusOK)
			putPrefixWriter(pw)
			got := rec.Result().Header.Values("Set-Cookie")
			if len(got) != 2 || got[0] != cookies[i/2%2] || got[1] != "other=1; Path="+rt.prefix+"/" {
				t.Errorf("Set-Cookie %q", got)
			}
		})
	}
	wg.Wait()
	if logs.Len() != 2 {
		t.Fatalf("%d warnings, want one per name: %v", logs.Len(), logs.All())
	}
	for _, e := range logs.All() {
		fields := e.ContextMap()
		if name := fields["name"]; name != "srv1" && name != "SRV2" {
			t.Errorf("warning for %v", name)
		}
		if c, _ := fields["cookie"].(string); !strings.EqualFold(c[:7], "__Host-") || strings.Contains(c, "s3cr3t") {
			t.Errorf("cookie field %q", c)
		}
	}
	// A new config warns again.
	h2 := &Handler{logger: zap.New(core), hostCookies: new(sync.Map)}
	h2.warnHostCookie("srv1", cookies[0])
	if logs.Len() != 3 {
		t.Errorf("a new config did not warn again: %d warnings", logs.Len())
	}
}
