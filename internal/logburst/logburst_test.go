package logburst

import (
	"testing"
	"time"
)

func TestBurst(t *testing.T) {
	const interval = 30 * time.Second
	var b Burst
	now := time.Now()
	if ok, missed := b.Allow(now, interval); !ok || missed != 0 {
		t.Fatalf("first: %v %d", ok, missed)
	}
	for i := range 5 {
		if ok, _ := b.Allow(now.Add(time.Duration(i)*time.Second), interval); ok {
			t.Fatalf("occurrence %d within the burst was allowed", i)
		}
	}
	if ok, missed := b.Allow(now.Add(interval), interval); !ok || missed != 5 {
		t.Errorf("after the interval: %v, %d missed; want true, 5", ok, missed)
	}
}
