package gateway

import (
	"time"

	"github.com/tildegate/tildegate/internal/filewatch"
)

// watch reloads the balance files when they change, until the handler's
// context ends.
func (h *Handler) watch(paths []string) {
	defer close(h.stopped)
	filewatch.Watch(h.ctx, paths, time.Duration(h.PollInterval), true, h.logger, h.reload)
}
