package coordinator

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"slices"

	"github.com/hashicorp/go-hclog"
)

// hclogAdapter hands the logs of hashicorp/raft (an hclog.Logger) to slog,
// keeping their key-value pairs. Raft's Info level is chatty about routine
// elections and pipelines, so it becomes slog Debug, except for the messages
// at Warn and above.
type hclogAdapter struct {
	base *slog.Logger // without the component and implied args
	log  *slog.Logger
	name string
	args []any
}

func newHCLogAdapter(l *slog.Logger, name string) hclog.Logger {
	return &hclogAdapter{base: l, log: l.With("component", name), name: name}
}

func slogLevel(l hclog.Level) slog.Level {
	switch l {
	case hclog.Trace, hclog.Debug, hclog.Info:
		return slog.LevelDebug
	case hclog.Warn:
		return slog.LevelWarn
	case hclog.Error:
		return slog.LevelError
	}
	return slog.LevelInfo
}

// The methods below implement hclog.Logger.

func (a *hclogAdapter) Log(level hclog.Level, msg string, args ...any) {
	for i, v := range args {
		if f, ok := v.(hclog.Format); ok && len(f) > 0 {
			if format, ok := f[0].(string); ok {
				args = slices.Clone(args) // the caller's slice stays as it was
				args[i] = fmt.Sprintf(format, f[1:]...)
			}
		}
	}
	a.log.Log(context.Background(), slogLevel(level), msg, args...)
}
func (a *hclogAdapter) Trace(msg string, args ...any) { a.Log(hclog.Trace, msg, args...) }
func (a *hclogAdapter) Debug(msg string, args ...any) { a.Log(hclog.Debug, msg, args...) }
func (a *hclogAdapter) Info(msg string, args ...any)  { a.Log(hclog.Info, msg, args...) }
func (a *hclogAdapter) Warn(msg string, args ...any)  { a.Log(hclog.Warn, msg, args...) }
func (a *hclogAdapter) Error(msg string, args ...any) { a.Log(hclog.Error, msg, args...) }

func (a *hclogAdapter) enabled(l hclog.Level) bool {
	return a.log.Enabled(context.Background(), slogLevel(l))
}
func (a *hclogAdapter) IsTrace() bool        { return a.enabled(hclog.Trace) }
func (a *hclogAdapter) IsDebug() bool        { return a.enabled(hclog.Debug) }
func (a *hclogAdapter) IsInfo() bool         { return a.enabled(hclog.Info) }
func (a *hclogAdapter) IsWarn() bool         { return a.enabled(hclog.Warn) }
func (a *hclogAdapter) IsError() bool        { return a.enabled(hclog.Error) }
func (a *hclogAdapter) ImpliedArgs() []any   { return a.args }
func (a *hclogAdapter) Name() string         { return a.name }
func (a *hclogAdapter) SetLevel(hclog.Level) {}
func (a *hclogAdapter) GetLevel() hclog.Level {
	return hclog.Info
}

func (a *hclogAdapter) With(args ...any) hclog.Logger {
	return &hclogAdapter{base: a.base, log: a.log.With(args...), name: a.name, args: append(append([]any(nil), a.args...), args...)}
}

func (a *hclogAdapter) Named(name string) hclog.Logger {
	if a.name != "" {
		name = a.name + "." + name
	}
	return a.ResetNamed(name)
}

func (a *hclogAdapter) ResetNamed(name string) hclog.Logger {
	return &hclogAdapter{base: a.base, log: a.base.With("component", name).With(a.args...), name: name, args: a.args}
}

func (a *hclogAdapter) StandardLogger(*hclog.StandardLoggerOptions) *log.Logger {
	return slog.NewLogLogger(a.log.Handler(), slog.LevelInfo)
}

func (a *hclogAdapter) StandardWriter(*hclog.StandardLoggerOptions) io.Writer {
	return a.StandardLogger(nil).Writer()
}
