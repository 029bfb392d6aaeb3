package main

import (
	"fmt"
	"io"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// newLogger returns the logger of the command, writing to w: "console" is
// zap's human-readable development layout with ISO 8601 times, "json" is
// zap's production JSON.
func newLogger(format, level string, w io.Writer) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("-log-level: %w", err)
	}
	sink := zapcore.Lock(zapcore.AddSync(w))
	switch format {
	case "console":
		ec := zap.NewDevelopmentEncoderConfig()
		ec.EncodeTime = zapcore.ISO8601TimeEncoder
		return zap.New(zapcore.NewCore(zapcore.NewConsoleEncoder(ec), sink, lvl)), nil
	case "json":
		core := zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), sink, lvl)
		core = zapcore.NewSamplerWithOptions(core, time.Second, 100, 100)
		return zap.New(core), nil
	}
	return nil, fmt.Errorf("-log-format %q: want console or json", format)
}
