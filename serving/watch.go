package serving

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/trainctl/trainctl/api"
)

// targetQuery is one blocking query Follow keeps on what its target
// resolves from: a version of the answer (a string that changes when the
// target may resolve differently) and the index of the newest answer
// taken, so that an older one is not.
type targetQuery struct {
	w   *api.Watch
	ask func(ctx context.Context, q *api.QueryOptions) (version string, meta api.QueryMeta, err error)

	version string
	index   uint64
}

// targetQueries returns the queries on what cfg.Target resolves from: the
// sweep, the model's versions, or the job and its checkpoints (a
// checkpoint taken after a restart from an earlier one, at a lower step
// than the job's latest, does not change the job).
func targetQueries(cfg FollowConfig) []*targetQuery {
	query := func(ask func(context.Context, *api.QueryOptions) (string, api.QueryMeta, error)) *targetQuery {
		return &targetQuery{w: &api.Watch{MinBackoff: cfg.Interval, MaxBackoff: cfg.Interval}, ask: ask}
	}
	switch t := cfg.Target; {
	case t.SweepID != "":
		return []*targetQuery{query(func(ctx context.Context, q *api.QueryOptions) (string, api.QueryMeta, error) {
			sw, meta, err := cfg.API.SweepQuery(ctx, t.SweepID, q)
			if err != nil {
				return "", meta, err
			}
			return strconv.FormatUint(sw.ModifyIndex, 10), meta, nil
		})}
	case t.Model != "":
		return []*targetQuery{query(func(ctx context.Context, q *api.QueryOptions) (string, api.QueryMeta, error) {
			vs, meta, err := cfg.API.ModelsQuery(ctx, t.Model, q)
			switch {
			case errors.Is(err, api.ErrNotFound) && meta.LastIndex > 0:
				return "", meta, nil // no version yet: wait for the first one
			case err != nil:
				return "", meta, err
			case len(vs) == 0:
				return "", meta, nil
			}
			v := vs[len(vs)-1]
			return strconv.Itoa(v.Version) + "@" + v.Checkpoint, meta, nil
		})}
	}
	return []*targetQuery{
		// A job's metrics change the job (its progress) too.
		query(func(ctx context.Context, q *api.QueryOptions) (string, api.QueryMeta, error) {
			j, meta, err := cfg.API.JobQuery(ctx, cfg.Target.JobID, q)
			if err != nil {
				return "", meta, err
			}
			return strconv.FormatUint(j.ModifyIndex, 10), meta, nil
		}),
		query(func(ctx context.Context, q *api.QueryOptions) (string, api.QueryMeta, error) {
			cs, meta, err := cfg.API.CheckpointsQuery(ctx, cfg.Target.JobID, q)
			if err != nil {
				return "", meta, err
			}
			var newest uint64
			for _, c := range cs {
				newest = max(newest, c.CreateIndex)
			}
			return strconv.Itoa(len(cs)) + "@" + strconv.FormatUint(newest, 10), meta, nil
		}),
	}
}

// next sends the query once, blocking as its Watch says with wait, and
// reports whether the version moved, and the pause before the next query.
// An answer whose index is lower than one taken before (the client failed
// over to a coordinator that lags behind) is not: its state is older than
// the one served, and the query keeps following until that coordinator
// catches up. When ctx ends, next returns its error and records nothing.
func (t *targetQuery) next(ctx context.Context, cfg FollowConfig, wait time.Duration) (changed bool, pause time.Duration, err error) {
	t.w.Wait = wait
	q := t.w.Options()
	// The first question (no index) is bounded like a resolution; a
	// blocking one by its wait and then as long again for its retries.
	qctx, cancel := context.WithTimeout(ctx, q.RequestTimeout()+cfg.AskTimeout)
	version, meta, err := t.ask(qctx, q)
	cancel()
	if ctx.Err() != nil {
		return false, 0, ctx.Err()
	}
	_, pause = t.w.Done(meta, err)
	switch {
	case err != nil:
		return false, pause, err
	case meta.LastIndex > 0 && meta.LastIndex < t.index:
		return false, pause, nil
	}
	t.index = max(t.index, meta.LastIndex)
	if version == t.version {
		return false, pause, nil
	}
	t.version = version
	return true, pause, nil
}

// run sends the query again and again, each blocking with cfg.Wait, until
// ctx ends, and reports each change (nil) and each error to changes. A
// report waits while changes is full: a change already reported covers
// it, as Follow resolves the whole target again.
func (t *targetQuery) run(ctx context.Context, cfg FollowConfig, changes chan<- error) {
	for {
		changed, pause, err := t.next(ctx, cfg, cfg.Wait)
		if ctx.Err() != nil {
			return
		}
		if changed || err != nil {
			select {
			case changes <- err:
			case <-ctx.Done():
				return
			}
		}
		if api.Pause(ctx, pause) != nil {
			return
		}
	}
}
