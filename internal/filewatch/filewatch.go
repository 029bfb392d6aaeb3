// Package filewatch tells when configuration files change: on a file system
// notification where the system sends them, and by polling where it does
// not (network file systems, some containers). It has no Caddy import, so
// the gateway and the agent share it.
package filewatch

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/fsnotify/fsnotify"
	"go.uber.org/zap"
)

// SettleDelay lets an editor finish writing a file (truncate, write,
// rename) before it is read: changed is called this long after the last
// notification of a burst.
const SettleDelay = 50 * time.Millisecond

// stamp is what polling compares to notice a change.
type stamp struct {
	modTime int64
	size    int64
	exists  bool
}

func stampAll(paths []string) []stamp {
	stamps := make([]stamp, len(paths))
	for i, p := range paths {
		if fi, err := os.Stat(p); err == nil {
			stamps[i] = stamp{modTime: fi.ModTime().UnixNano(), size: fi.Size(), exists: true}
		}
	}
	return stamps
}

// Watch calls changed when one of paths changes: on a notification for it
// (when notify is set and the system has them; the folders are watched, so
// that editors that replace a file are seen) or when polling every interval
// sees a new size or modification time. It returns when ctx ends.
func Watch(ctx context.Context, paths []string, interval time.Duration, notify bool, logger *zap.Logger, changed func()) {
	watched := make(map[string]bool, len(paths))
	for _, p := range paths {
		if abs, err := filepath.Abs(p); err == nil {
			watched[abs] = true
		}
	}
	var events <-chan fsnotify.Event
	var errs <-chan error
	if notify {
		if w, err := fsnotify.NewWatcher(); err != nil {
			logger.Warn("file notifications unavailable; polling", zap.Strings("files", paths), zap.Error(err))
		} else {
			defer w.Close()
			for abs := range watched {
				if err := w.Add(filepath.Dir(abs)); err != nil {
					logger.Warn("cannot watch folder; polling it", zap.String("folder", filepath.Dir(abs)), zap.Error(err))
				}
			}
			events, errs = w.Events, w.Errors
		}
	}

	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	stamps := stampAll(paths)
	var settle <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-events:
			if watched[filepath.Clean(ev.Name)] {
				settle = time.After(SettleDelay) // from the last event of a burst
			}
		case err := <-errs:
			logger.Warn("file notification error; polling continues", zap.Error(err))
		case <-settle:
			settle = nil
			stamps = stampAll(paths)
			changed()
		case <-ticker.C:
			if now := stampAll(paths); !slices.Equal(now, stamps) {
				stamps = now
				changed()
			}
		}
	}
}
