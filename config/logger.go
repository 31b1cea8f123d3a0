package config

import (
	"io"
	"log/slog"
	"os"
)

var slogLevels = map[string]slog.Level{
	LogLevelDebug: slog.LevelDebug,
	LogLevelInfo:  slog.LevelInfo,
	LogLevelWarn:  slog.LevelWarn,
	LogLevelError: slog.LevelError,
}

// Logger builds the process logger from c.Log, writing to w (os.Stderr when
// w is nil): a slog text or JSON handler at the configured level (info when
// the level is unknown). When Node.ID is set every record carries node=<id>.
func (c Config) Logger(w io.Writer) *slog.Logger {
	if w == nil {
		w = os.Stderr
	}
	level, ok := slogLevels[c.Log.Level]
	if !ok {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	if c.Log.Format == LogFormatJSON {
		h = slog.NewJSONHandler(w, opts)
	} else {
		h = slog.NewTextHandler(w, opts)
	}
	l := slog.New(h)
	if c.Node.ID != "" {
		l = l.With(slog.String("node", c.Node.ID))
	}
	return l
}
