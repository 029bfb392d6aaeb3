package gateway

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap"
)

// TestWatchFiles sees an edit both by notification and by polling alone,
// and stops when its context ends.
func TestWatchFiles(t *testing.T) {
	for _, notify := range []bool{true, false} {
		dir := t.TempDir()
		path := filepath.Join(dir, "balance.bin")
		if err := os.WriteFile(path, []byte("/~~a=127.0.0.1:80;\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		changed := make(chan struct{}, 10)
		done := make(chan struct{})
		go func() {
			watchFiles(ctx, []string{path}, 100*time.Millisecond, notify, zap.NewNop(), func() { changed <- struct{}{} })
			close(done)
		}()
		time.Sleep(150 * time.Millisecond) // let the watcher take its first stamps
		if err := os.WriteFile(path, []byte("/~~a=127.0.0.1:81;/~~b=127.0.0.1:82;\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		select {
		case <-changed:
		case <-time.After(2 * time.Second):
			t.Errorf("notify=%v: edit not seen", notify)
		}
		cancel()
		select {
		case <-done:
		case <-time.After(2 * time.Second):
			t.Fatalf("notify=%v: watcher did not stop with its context", notify)
		}
	}
}
