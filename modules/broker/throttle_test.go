package broker

import (
	"testing"
	"time"
)

func TestThrottle(t *testing.T) {
	now := time.Unix(1000, 0)
	th := newThrottle()
	th.now = func() time.Time { return now }

	for i := range throttleFailures - 1 {
		th.fail("1.2.3.4")
		if blocked, _ := th.blocked("1.2.3.4"); blocked {
			t.Fatalf("blocked after %d failures", i+1)
		}
	}
	th.fail("1.2.3.4")
	if blocked, first := th.blocked("1.2.3.4"); !blocked || !first {
		t.Fatalf("after %d failures: blocked %v first %v, want a first block", throttleFailures, blocked, first)
	}
	if blocked, first := th.blocked("1.2.3.4"); !blocked || first {
		t.Fatal("a second refusal in the same block must not be logged again")
	}
	if blocked, _ := th.blocked("5.6.7.8"); blocked {
		t.Fatal("another address is blocked too")
	}
	now = now.Add(throttleBlock)
	if blocked, _ := th.blocked("1.2.3.4"); blocked {
		t.Fatal("still blocked after the block time")
	}

	// Failures spread wider than the window never block.
	for range 3 * throttleFailures {
		th.fail("9.9.9.9")
		if blocked, _ := th.blocked("9.9.9.9"); blocked {
			t.Fatal("slow failures were blocked")
		}
		now = now.Add(throttleWindow/(throttleFailures-1) + time.Second)
	}
	now = now.Add(2 * throttleWindow)
	th.fail("10.0.0.1")
	if len(th.addrs) != 1 {
		t.Errorf("%d addresses remembered after they went quiet, want only the new one", len(th.addrs))
	}
}
