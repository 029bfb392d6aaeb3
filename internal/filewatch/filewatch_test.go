package filewatch

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap"
)

// TestWatch sees an edit by notification alone (polling an hour apart) and
// by polling alone (notifications off), ignores other files in the folder,
// and stops when its context ends.
func TestWatch(t *testing.T) {
	for _, c := range []struct {
		name     string
		notify   bool
		interval time.Duration
	}{{"notifications", true, time.Hour}, {"polling", false, 50 * time.Millisecond}} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "balance.bin")
			if err := os.WriteFile(path, []byte("/~~a=127.0.0.1:80;\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			changed := make(chan struct{}, 10)
			done := make(chan struct{})
			go func() {
				Watch(ctx, []string{path}, c.interval, c.notify, zap.NewNop(), func() { changed <- struct{}{} })
				close(done)
			}()
			time.Sleep(150 * time.Millisecond) // let the watcher take its first stamps
			if err := os.WriteFile(filepath.Join(dir, "other"), []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
			select {
			case <-changed:
				t.Error("another file's change was reported")
			case <-time.After(200 * time.Millisecond):
			}
			if err := os.WriteFile(path, []byte("/~~a=127.0.0.1:81;/~~b=127.0.0.1:82;\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			select {
			case <-changed:
			case <-time.After(2 * time.Second):
				t.Error("the edit was not seen")
			}
			cancel()
			select {
			case <-done:
			case <-time.After(2 * time.Second):
				t.Fatal("the watcher did not stop with its context")
			}
		})
	}
}
