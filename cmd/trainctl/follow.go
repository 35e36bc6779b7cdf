package main

import (
	"context"
	"fmt"
	"io"
	"time"
)

// follow polls an object until done says it ended, writing the lines
// changes describes between consecutive versions (the first time with
// prev the zero T, nil for the pointers it is used with), each prefixed by
// prefix() such as a timestamp, to out. It returns the last version seen and,
// when ctx ends first, ctx's error; a fetch error ends it at once.
// `submit --wait`, `sweep --wait` and `up --demo` share it.
func follow[T any](ctx context.Context, out io.Writer, poll time.Duration, cur T,
	fetch func(context.Context) (T, error), changes func(prev, cur T) []string,
	done func(T) bool, prefix func() string) (T, error) {
	var last T
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		for _, l := range changes(last, cur) {
			fmt.Fprintf(out, "%s%s\n", prefix(), l)
		}
		last = cur
		if done(cur) {
			return cur, nil
		}
		select {
		case <-ctx.Done():
			return cur, ctx.Err()
		case <-t.C:
		}
		next, err := fetch(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return cur, ctx.Err()
			}
			return cur, err
		}
		cur = next
	}
}

// clockPrefix prefixes a progress line with the wall-clock time.
func clockPrefix() string { return time.Now().Format("15:04:05") + "  " }
