package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/trainctl/trainctl/api"
)

// followWait is how long one blocking query of a CLI wait waits for a
// change before it is sent again: as the worker's, short enough that a
// coordinator cut off from the cluster (which answers no change) holds a
// wait for at most that long before it asks again, possibly elsewhere.
const followWait = 30 * time.Second

// follow watches an object until done says it ended, writing the lines
// changes describes between consecutive versions (the first time with
// prev the zero T, nil for the pointers it is used with), each prefixed by
// prefix() such as a timestamp, to out. fetch is a blocking query
// (api.Client's *Query methods): a change wakes it at once, and between
// two fetches at least poll passes, so a busy cluster costs at most one
// question per poll and an idle one a question per followWait; against a
// coordinator without blocking queries it polls every poll. It returns the
// last version seen and, when ctx ends first, ctx's error; a fetch error
// ends it at once. `submit --wait`, `sweep --wait` and `up --demo` share
// it.
//
// created is the index the object was created at (its CreateIndex; 0 when
// unknown). The first fetch waits until the coordinator asked has applied
// it: a follower that forwarded the submission to the leader may not have
// yet. A "not found" from a coordinator whose index is still below it is
// that coordinator lagging, not the object gone, and is asked again.
func follow[T any](ctx context.Context, out io.Writer, poll time.Duration, cur T, created uint64,
	fetch func(context.Context, *api.QueryOptions) (T, api.QueryMeta, error), changes func(prev, cur T) []string,
	done func(T) bool, prefix func() string) (T, error) {
	var last T
	w := &api.Watch{Wait: followWait, MinBackoff: poll, MaxBackoff: poll}
	if created > 0 {
		w.SetIndex(created - 1)
	}
	var (
		pause   time.Duration
		fetched time.Time
	)
	for {
		for _, l := range changes(last, cur) {
			fmt.Fprintf(out, "%s%s\n", prefix(), l)
		}
		last = cur
		if done(cur) {
			return cur, nil
		}
		if err := w.Pause(ctx, max(pause, time.Until(fetched.Add(poll)))); err != nil {
			return cur, err
		}
		fetched = time.Now()
		next, meta, err := fetch(ctx, w.Options())
		_, pause = w.Done(meta, err)
		switch {
		case err == nil:
			cur = next
		case ctx.Err() != nil:
			return cur, ctx.Err()
		case errors.Is(err, api.ErrNotFound) && meta.LastIndex > 0 && meta.LastIndex < created:
			// A lagging coordinator (a follower catching up, or one
			// the client failed over to): ask again.
		default:
			return cur, err
		}
	}
}

// clockPrefix prefixes a progress line with the wall-clock time.
func clockPrefix() string { return time.Now().Format("15:04:05") + "  " }
