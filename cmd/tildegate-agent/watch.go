package main

import (
	"context"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
	"go.uber.org/zap"
)

// Timings of the configuration watcher.
const (
	// pollInterval is how often the file is compared with what was last
	// seen, for file systems without notifications.
	pollInterval = time.Second
	// settleDelay lets an editor finish writing (truncate, write, rename)
	// before the file is read.
	settleDelay = 50 * time.Millisecond
)

// stamp is what the poller compares to notice a change.
type stamp struct {
	modTime int64
	size    int64
	exists  bool
}

func stampOf(path string) stamp {
	fi, err := os.Stat(path)
	if err != nil {
		return stamp{}
	}
	return stamp{modTime: fi.ModTime().UnixNano(), size: fi.Size(), exists: true}
}

// watch sends on changed (without blocking: one pending change is enough)
// when the file at path changes, as a notification on its folder says or,
// without one, as polling every interval sees. It returns when ctx ends.
func watch(ctx context.Context, path string, interval time.Duration, log *zap.Logger, changed chan<- struct{}) {
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = path
	}
	var events <-chan fsnotify.Event
	var errs <-chan error
	if w, err := fsnotify.NewWatcher(); err != nil {
		log.Warn("file notifications unavailable; polling the configuration", zap.Error(err))
	} else {
		defer w.Close()
		if err := w.Add(filepath.Dir(abs)); err != nil {
			log.Warn("cannot watch the configuration's folder; polling it", zap.String("folder", filepath.Dir(abs)), zap.Error(err))
		}
		events, errs = w.Events, w.Errors
	}
	notify := func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	last := stampOf(abs)
	var settle <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-events:
			if filepath.Clean(ev.Name) == abs && settle == nil {
				settle = time.After(settleDelay)
			}
		case err := <-errs:
			log.Warn("file notification error; polling continues", zap.Error(err))
		case <-settle:
			settle = nil
			last = stampOf(abs)
			notify()
		case <-ticker.C:
			if now := stampOf(abs); now != last {
				last = now
				notify()
			}
		}
	}
}
