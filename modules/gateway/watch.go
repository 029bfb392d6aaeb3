package gateway

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/fsnotify/fsnotify"
	"go.uber.org/zap"
)

// settleDelay lets an editor finish writing a file (truncate, write,
// rename) before it is read.
const settleDelay = 50 * time.Millisecond

// fileStamp is what the poller compares to notice a change.
type fileStamp struct {
	modTime int64
	size    int64
	exists  bool
}

func stampAll(paths []string) []fileStamp {
	stamps := make([]fileStamp, len(paths))
	for i, p := range paths {
		if fi, err := os.Stat(p); err == nil {
			stamps[i] = fileStamp{modTime: fi.ModTime().UnixNano(), size: fi.Size(), exists: true}
		}
	}
	return stamps
}

// watch reloads the balance files when they change; see watchFiles.
func (h *Handler) watch(paths []string) {
	defer close(h.stopped)
	watchFiles(h.ctx, paths, time.Duration(h.PollInterval), true, h.logger, h.reload)
}

// watchFiles calls changed when one of paths changes: on a file system
// notification (when notify is set and the system has them) or, where none
// comes, when polling every interval sees a new size or modification time.
// It returns when ctx ends.
func watchFiles(ctx context.Context, paths []string, interval time.Duration, notify bool, logger *zap.Logger, changed func()) {
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
			logger.Warn("file notifications unavailable; polling balance files", zap.Error(err))
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
				settle = time.After(settleDelay) // from the last event of a burst
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
