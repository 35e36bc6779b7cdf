package sweeper

import (
	"context"
	"errors"
	"fmt"
	"maps"

	"github.com/trainctl/trainctl/api"

	"github.com/trainctl/trainctl/coordinator/structs"
	"github.com/trainctl/trainctl/tuning"
)

// Report is the outcome of Replay, as GET /v1/sweeps/{id}/replay serves it.
type Report = api.SweepReplay

// Replay recomputes every recorded decision and suggestion of a sweep from
// its spec and its log alone, as a new leader would: it feeds sw.Results in
// order to a fresh scheduler built from sw.Spec and compares each decision
// with the recorded one, and recomputes each trial n's parameters with a
// fresh searcher from the history of trials 0..n-1 as of the first
// Trials[n].ResultsSeen results (see history) and compares them exactly.
// That history's rule, tuning.Spec.SearchHistory, is part of the replay
// contract: a sweep recorded under another rule (before histories became
// budget-aware under early stopping) replays with mismatches.
// It errs only when the spec builds no scheduler or searcher, or when ctx
// ends (a large TPE sweep takes a while: the API's caller may go away);
// differences go into the report.
func Replay(ctx context.Context, sw *structs.Sweep) (*Report, error) {
	if sw == nil {
		return nil, errors.New("sweeper: replay: no sweep")
	}
	spec := sw.Spec.User()
	sched, err := tuning.NewScheduler(spec)
	if err != nil {
		return nil, fmt.Errorf("sweeper: replay sweep %s: %w", sw.ID, err)
	}
	searcher, err := spec.NewSearcher()
	if err != nil {
		return nil, fmt.Errorf("sweeper: replay sweep %s: %w", sw.ID, err)
	}
	rep := &Report{}
	for i, r := range sw.Results {
		d := sched.OnResult(tuning.Result{Trial: r.Trial, Budget: r.Budget, Value: resultValue(r)})
		rep.Results++
		if d.String() != r.Decision {
			rep.Mismatches = append(rep.Mismatches, fmt.Sprintf("results[%d]: recorded %s, replay %s", i, r.Decision, d))
		}
	}

	hist := newHistory(spec, sw.Trials)
	added := 0 // results folded into hist
	for n := range sw.Trials {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("sweeper: replay sweep %s: stopped at trial %d: %w", sw.ID, n, err)
		}
		t := &sw.Trials[n]
		if t.Number != n {
			rep.Mismatches = append(rep.Mismatches, fmt.Sprintf("trials[%d]: recorded number %d", n, t.Number))
		}
		seen := t.ResultsSeen
		if seen < 0 || seen > len(sw.Results) {
			rep.Mismatches = append(rep.Mismatches, fmt.Sprintf("trials[%d]: results_seen %d is outside 0..%d", n, seen, len(sw.Results)))
			continue
		}
		if seen < added { // never in a log the controller wrote
			hist, added = newHistory(spec, sw.Trials), 0
		}
		hist.add(sw.Results[added:seen]...)
		added = seen
		params, err := searcher.Suggest(n, hist.before(n))
		rep.Suggestions++
		switch {
		case err != nil:
			rep.Mismatches = append(rep.Mismatches, fmt.Sprintf("trials[%d]: recorded %s, replay error: %v", n, t.Params, err))
		case !maps.Equal(params, t.Params):
			rep.Mismatches = append(rep.Mismatches, fmt.Sprintf("trials[%d]: recorded %s, replay %s", n, t.Params, params))
		}
	}
	return rep, nil
}
