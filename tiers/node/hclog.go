package node

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"strings"

	"github.com/hashicorp/go-hclog"
)

// slogHCLog is hashicorp/raft's logger interface (hclog, also taken by
// raft-wal and the transport) writing to the node's slog logger, so raft's
// own records come out in the node's format and level, with its node id,
// as component=raft. hclog's trace level is slog's debug less 4; the
// handler's level decides what is written (SetLevel is ignored: the node's
// log.level rules).
type slogHCLog struct {
	l    *slog.Logger
	name string
	// min is the least level passed on: raft's info records are elections
	// and snapshots (worth keeping), the demo and tests raise it.
	min     slog.Level
	implied []any
}

// levelTrace is where hclog's trace records go (below slog's debug).
const levelTrace = slog.LevelDebug - 4

func newSlogHCLog(l *slog.Logger, min slog.Level) *slogHCLog {
	return &slogHCLog{l: l.With("component", "raft"), name: "raft", min: min}
}

var _ hclog.Logger = (*slogHCLog)(nil)

func slogLevel(level hclog.Level) slog.Level {
	switch level {
	case hclog.Trace:
		return levelTrace
	case hclog.Debug:
		return slog.LevelDebug
	case hclog.Warn:
		return slog.LevelWarn
	case hclog.Error:
		return slog.LevelError
	default: // Info, NoLevel, Off, Default
		return slog.LevelInfo
	}
}

func (h *slogHCLog) enabled(level slog.Level) bool {
	return level >= h.min && h.l.Enabled(context.Background(), level)
}

func (h *slogHCLog) Log(level hclog.Level, msg string, args ...any) {
	if level == hclog.Off {
		return
	}
	lv := slogLevel(level)
	if !h.enabled(lv) {
		return
	}
	args = slogArgs(args)
	if h.name != "raft" {
		args = append(args, "logger", h.name)
	}
	h.l.Log(context.Background(), lv, msg, args...)
}

// slogArgs makes hclog's key/value arguments slog's: hclog.Fmt values are
// formatted, and keys the node's logger uses itself ("node": raft names
// its own server so; "component") become raft_<key>, so a JSON record
// never has the same key twice.
func slogArgs(args []any) []any {
	out := make([]any, len(args))
	for i, a := range args {
		if i%2 == 0 {
			if k, ok := a.(string); ok && (k == "node" || k == "component") {
				a = "raft_" + k
			}
		} else if f, ok := a.(hclog.Format); ok && len(f) > 0 {
			if format, ok := f[0].(string); ok {
				a = fmt.Sprintf(format, f[1:]...)
			}
		}
		out[i] = a
	}
	return out
}

func (h *slogHCLog) Trace(msg string, args ...any) { h.Log(hclog.Trace, msg, args...) }
func (h *slogHCLog) Debug(msg string, args ...any) { h.Log(hclog.Debug, msg, args...) }
func (h *slogHCLog) Info(msg string, args ...any)  { h.Log(hclog.Info, msg, args...) }
func (h *slogHCLog) Warn(msg string, args ...any)  { h.Log(hclog.Warn, msg, args...) }
func (h *slogHCLog) Error(msg string, args ...any) { h.Log(hclog.Error, msg, args...) }

func (h *slogHCLog) IsTrace() bool { return h.enabled(levelTrace) }
func (h *slogHCLog) IsDebug() bool { return h.enabled(slog.LevelDebug) }
func (h *slogHCLog) IsInfo() bool  { return h.enabled(slog.LevelInfo) }
func (h *slogHCLog) IsWarn() bool  { return h.enabled(slog.LevelWarn) }
func (h *slogHCLog) IsError() bool { return h.enabled(slog.LevelError) }

func (h *slogHCLog) ImpliedArgs() []any { return h.implied }

func (h *slogHCLog) With(args ...any) hclog.Logger {
	c := *h
	c.l = h.l.With(slogArgs(args)...)
	c.implied = append(append([]any(nil), h.implied...), args...)
	return &c
}

func (h *slogHCLog) Name() string { return h.name }

// Named gives a sub-logger's name ("raft.net", "raft.wal"), kept as
// logger=<name> on its records.
func (h *slogHCLog) Named(name string) hclog.Logger {
	c := *h
	c.name = h.name + "." + name
	return &c
}

func (h *slogHCLog) ResetNamed(name string) hclog.Logger {
	c := *h
	c.name = name
	return &c
}

// SetLevel is ignored: the node's slog handler decides.
func (h *slogHCLog) SetLevel(hclog.Level) {}

func (h *slogHCLog) GetLevel() hclog.Level {
	switch {
	case h.IsTrace():
		return hclog.Trace
	case h.IsDebug():
		return hclog.Debug
	case h.IsInfo():
		return hclog.Info
	case h.IsWarn():
		return hclog.Warn
	default:
		return hclog.Error
	}
}

func (h *slogHCLog) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(h.StandardWriter(opts), "", 0)
}

// StandardWriter passes lines of a standard logger on at info level, or at
// the level an "[ERROR]"-style prefix names when opts.InferLevels is set.
func (h *slogHCLog) StandardWriter(opts *hclog.StandardLoggerOptions) io.Writer {
	infer := opts != nil && (opts.InferLevels || opts.InferLevelsWithTimestamp)
	return writerFunc(func(p []byte) (int, error) {
		line := strings.TrimRight(string(p), "\n")
		level := hclog.Info
		if opts != nil && opts.ForceLevel != hclog.NoLevel {
			level = opts.ForceLevel
		} else if infer {
			level, line = inferLevel(line)
		}
		h.Log(level, line)
		return len(p), nil
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// inferLevel reads a "[LEVEL] " prefix as hclog's standard writer does.
func inferLevel(line string) (hclog.Level, string) {
	for prefix, level := range map[string]hclog.Level{
		"[TRACE]": hclog.Trace, "[DEBUG]": hclog.Debug, "[INFO]": hclog.Info,
		"[WARN]": hclog.Warn, "[ERROR]": hclog.Error, "[ERR]": hclog.Error,
	} {
		if i := strings.Index(line, prefix); i >= 0 {
			return level, strings.TrimSpace(line[i+len(prefix):])
		}
	}
	return hclog.Info, line
}
