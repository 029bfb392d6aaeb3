package main

import (
	"strings"

	"go.uber.org/zap/zapcore"
)

// eventWriter writes to the Windows Event Log: *eventlog.Log of
// golang.org/x/sys/windows/svc/eventlog is one.
type eventWriter interface {
	Info(eid uint32, msg string) error
	Warning(eid uint32, msg string) error
	Error(eid uint32, msg string) error
}

// eventID is the event identifier of everything the agent logs: the
// source is registered with EventCreate.exe as its message file, which
// takes identifiers from 1 to 1000 and shows the message as it is.
const eventID = 1

// eventType is the type of an Event Log entry.
type eventType int

const (
	eventInfo eventType = iota
	eventWarning
	eventError
)

// eventTypeOf returns the type of entry for a log line of level l: errors
// and worse are errors, warnings warnings, and the rest information.
func eventTypeOf(l zapcore.Level) eventType {
	switch {
	case l >= zapcore.ErrorLevel:
		return eventError
	case l == zapcore.WarnLevel:
		return eventWarning
	}
	return eventInfo
}

// writeEvent writes msg to w as an entry of type t.
func writeEvent(w eventWriter, t eventType, msg string) error {
	switch t {
	case eventError:
		return w.Error(eventID, msg)
	case eventWarning:
		return w.Warning(eventID, msg)
	}
	return w.Info(eventID, msg)
}

// eventCore is a zapcore.Core that writes each log line to the Event Log,
// as its message and fields (the Event Log keeps the time and the level).
type eventCore struct {
	zapcore.LevelEnabler
	enc zapcore.Encoder
	w   eventWriter
}

// newEventCore returns a core that writes to w the lines that enab
// enables.
func newEventCore(enab zapcore.LevelEnabler, w eventWriter) zapcore.Core {
	enc := zapcore.NewConsoleEncoder(zapcore.EncoderConfig{
		MessageKey:     "msg",
		NameKey:        "logger",
		StacktraceKey:  "stacktrace",
		EncodeDuration: zapcore.StringDurationEncoder,
	})
	return &eventCore{LevelEnabler: enab, enc: enc, w: w}
}

func (c *eventCore) With(fields []zapcore.Field) zapcore.Core {
	enc := c.enc.Clone()
	for _, f := range fields {
		f.AddTo(enc)
	}
	return &eventCore{LevelEnabler: c.LevelEnabler, enc: enc, w: c.w}
}

func (c *eventCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *eventCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	buf, err := c.enc.EncodeEntry(e, fields)
	if err != nil {
		return err
	}
	defer buf.Free()
	return writeEvent(c.w, eventTypeOf(e.Level), strings.TrimSuffix(buf.String(), "\n"))
}

// Sync does nothing: every entry is written at once.
func (c *eventCore) Sync() error { return nil }
