package main

import (
	"context"
	"time"

	"github.com/tildegate/tildegate/internal/filewatch"
	"go.uber.org/zap"
)

// pollInterval is how often the configuration is compared with what was
// last seen, for file systems without notifications.
const pollInterval = time.Second

// watch sends on changed (without blocking: one pending change is enough)
// when the file at path changes. It returns when ctx ends.
func watch(ctx context.Context, path string, interval time.Duration, log *zap.Logger, changed chan<- struct{}) {
	filewatch.Watch(ctx, []string{path}, interval, true, log, func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	})
}
