package logging

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// Strata's verbosity levels, from quietest to loudest.
const (
	LevelQuiet   = slog.LevelWarn
	LevelInfo    = slog.LevelInfo
	LevelVerbose = slog.LevelDebug
	LevelDebug   = slog.LevelDebug - 4
)

// Options configure New.
type Options struct {
	// Level is one of quiet, info, verbose, debug.
	Level string
	// Format is text or json.
	Format string
}

// ParseLevel maps a level name to its slog level.
func ParseLevel(name string) (slog.Level, error) {
	switch strings.ToLower(name) {
	case "quiet", "q":
		return LevelQuiet, nil
	case "", "info":
		return LevelInfo, nil
	case "verbose", "v":
		return LevelVerbose, nil
	case "debug":
		return LevelDebug, nil
	}
	return 0, fmt.Errorf("unknown log level %q (want quiet, info, verbose or debug)", name)
}

// New returns a logger writing to w with the given options.
func New(w io.Writer, opts Options) (*slog.Logger, error) {
	level, err := ParseLevel(opts.Level)
	if err != nil {
		return nil, err
	}
	ho := &slog.HandlerOptions{Level: level, ReplaceAttr: replaceLevelNames}
	switch strings.ToLower(opts.Format) {
	case "", "text":
		return slog.New(slog.NewTextHandler(w, ho)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, ho)), nil
	}
	return nil, fmt.Errorf("unknown log format %q (want text or json)", opts.Format)
}

func replaceLevelNames(_ []string, a slog.Attr) slog.Attr {
	if a.Key != slog.LevelKey {
		return a
	}
	if l, ok := a.Value.Any().(slog.Level); ok && l < LevelVerbose {
		a.Value = slog.StringValue("DEBUG")
	} else if ok && l == LevelVerbose {
		a.Value = slog.StringValue("VERBOSE")
	}
	return a
}
