package broker

import (
	"strings"
	"testing"
)

// TestInstance: the process's instance id is random and valid, a
// configured one replaces it, an invalid one is refused, and an empty one
// gives the random one back.
func TestInstance(t *testing.T) {
	random := Instance()
	if len(random) != 16 {
		t.Fatalf("random instance %q", random)
	}
	defer func() { _ = SetInstance("") }()
	if err := SetInstance("gw-1.eu"); err != nil || Instance() != "gw-1.eu" {
		t.Errorf("SetInstance(gw-1.eu): %v, instance %q", err, Instance())
	}
	if err := SetInstance("gw 1"); err == nil || !strings.Contains(err.Error(), "letters, digits") || Instance() != "gw-1.eu" {
		t.Errorf("SetInstance(\"gw 1\"): %v, instance %q", err, Instance())
	}
	if err := SetInstance(""); err != nil || Instance() != random {
		t.Errorf("SetInstance(\"\"): %v, instance %q, want %q", err, Instance(), random)
	}
}
