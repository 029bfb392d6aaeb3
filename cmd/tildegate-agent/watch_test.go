package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
)

func TestWatch(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "backbalance.bin")
	if err := os.WriteFile(path, []byte("a"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, interval := range []time.Duration{time.Hour, 20 * time.Millisecond} {
		// With an hour between polls only notifications can tell; with
		// 20ms polling tells too.
		ctx, cancel := context.WithCancel(context.Background())
		changed := make(chan struct{}, 1)
		done := make(chan struct{})
		go func() {
			defer close(done)
			watch(ctx, path, interval, zaptest.NewLogger(t), changed)
		}()
		time.Sleep(100 * time.Millisecond) // let the watcher start
		if err := os.WriteFile(filepath.Join(dir, "other"), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		select {
		case <-changed:
			t.Errorf("interval %s: another file's change was reported", interval)
		case <-time.After(200 * time.Millisecond):
		}
		if err := os.WriteFile(path, []byte("ab"), 0o600); err != nil {
			t.Fatal(err)
		}
		select {
		case <-changed:
		case <-time.After(5 * time.Second):
			t.Errorf("interval %s: the change was not reported", interval)
		}
		cancel()
		<-done
	}
}
