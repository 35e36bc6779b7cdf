package api

import (
	"context"
	"time"
)

// Default pauses of a Watch.
const (
	// DefaultWatchMinBackoff is the first pause after a failed query or an
	// early answer without a change.
	DefaultWatchMinBackoff = 100 * time.Millisecond
	// DefaultWatchMaxBackoff bounds the pause; it doubles up to it.
	DefaultWatchMaxBackoff = 5 * time.Second
)

// Watch paces a loop of blocking queries on one resource, as Consul's and
// Nomad's watchers do: it keeps the index to wait past and, after each
// answer, says whether the state moved and how long to pause before the
// next query. A change is answered by the next query at once; a query that
// waited its full wait is re-issued at once; a failed query, or one
// answered early without a change (a server shutting down, one without
// blocking queries), is followed by a pause that doubles from MinBackoff
// to MaxBackoff, so that the loop never spins.
//
// An index lower than the last one (the query moved to a coordinator that
// lags behind the one that answered before, and timed out there) is taken
// as it is: the answer is that coordinator's state, and the next query
// waits past its index, as it would after a reset to 0 and the at-once
// answer that follows.
//
// A Watch is used by one loop at a time:
//
//	w := &api.Watch{Wait: time.Minute}
//	for {
//		job, meta, err := c.JobQuery(ctx, id, w.Options())
//		changed, pause := w.Done(meta, err)
//		... // use job when err == nil (and changed, if only changes matter)
//		if err := w.Pause(ctx, pause); err != nil {
//			return err
//		}
//	}
type Watch struct {
	// Wait is each query's wait (DefaultBlockingWait when zero, at most
	// MaxBlockingWait); a loop may change it between queries.
	Wait time.Duration
	// MinBackoff and MaxBackoff bound the pauses (DefaultWatchMinBackoff
	// and DefaultWatchMaxBackoff when zero).
	MinBackoff, MaxBackoff time.Duration

	index   uint64
	sent    time.Time
	asked   QueryOptions
	backoff time.Duration
}

// Index returns the index the next query waits past; 0 (the start, or
// after Reset) answers at once.
func (w *Watch) Index() uint64 { return w.index }

// Reset makes the next query answer at once.
func (w *Watch) Reset() { w.index = 0 }

// SetIndex makes the next query wait past index i. A loop that knows the
// state its first answer must include starts there rather than at 0: to
// follow an object created at index n, SetIndex(n-1) makes a coordinator
// that has not applied the create yet (a follower that forwarded it to
// the leader) wait until it has, rather than answer that the object does
// not exist.
func (w *Watch) SetIndex(i uint64) { w.index = i }

// Options returns the QueryOptions of the next query and notes when it was
// sent; pass its answer to Done.
func (w *Watch) Options() *QueryOptions {
	w.asked = QueryOptions{WaitIndex: w.index, WaitTime: w.Wait}
	w.sent = time.Now()
	q := w.asked
	return &q
}

// Done records the answer of the query Options started, meta and err as
// the query returned them, and returns whether the state may have changed
// (the index moved; always after a query without an index) and how long
// to pause before the next query.
func (w *Watch) Done(meta QueryMeta, err error) (changed bool, pause time.Duration) {
	switch {
	case err != nil:
		return false, w.nextBackoff()
	case meta.LastIndex == 0:
		// No index to wait on: this is polling; pace it.
		w.index = 0
		return true, w.nextBackoff()
	case meta.LastIndex != w.index:
		w.index = meta.LastIndex
		w.backoff = 0
		return true, 0
	case time.Since(w.sent) >= w.asked.wait():
		// The full wait passed without a change.
		w.backoff = 0
		return false, 0
	}
	// Answered early with the same index: nothing to wait on now.
	return false, w.nextBackoff()
}

func (w *Watch) nextBackoff() time.Duration {
	lo, hi := w.MinBackoff, w.MaxBackoff
	if lo <= 0 {
		lo = DefaultWatchMinBackoff
	}
	if hi <= 0 {
		hi = DefaultWatchMaxBackoff
	}
	w.backoff = min(max(2*w.backoff, lo), max(hi, lo))
	return w.backoff
}

// Pause waits d (returning at once when d is 0), or until ctx ends, and
// returns ctx's error then.
func (w *Watch) Pause(ctx context.Context, d time.Duration) error { return Pause(ctx, d) }

// Pause waits d (returning at once when d is 0), or until ctx ends, and
// returns ctx's error then: the pause of a follow loop between questions.
func Pause(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
