package sweeper

import (
	"github.com/trainctl/trainctl/coordinator/structs"
	"github.com/trainctl/trainctl/tuning"
)

// history is the searcher's view of a sweep's trials, built from a prefix
// of its results. It defines the Observations of Step and Replay alike:
// the history of trial n is spec.SearchHistory of trials 0..n-1 with the
// results added so far (a non-finite result as NaN), that is
//
//   - with the fifo scheduler, tuning.BestHistory: each trial valued by its
//     best finite result by the objective's mode (NaN when it has only
//     non-finite ones, HasValue false without results), which is the
//     trial's BestValue after those results except that a non-finite
//     result is never best;
//   - with an early-stopping scheduler (asha, hyperband, median),
//     tuning.BudgetHistory with TPE's n_startup: every trial valued at the
//     largest budget that n_startup trials reached, those that did not
//     reach it left out, so that a trial stopped at its first rung is not
//     compared with completed trials' values at the full budget.
//
// The rule is part of the replay contract: Replay recomputes each
// suggestion with it, so a sweep recorded under another rule replays with
// mismatches.
type history struct {
	spec    tuning.Spec
	records []tuning.TrialRecord
}

// newHistory returns the history of trials with no results added.
func newHistory(spec tuning.Spec, trials []structs.Trial) *history {
	h := &history{spec: spec, records: make([]tuning.TrialRecord, len(trials), len(trials)+1)}
	for i := range trials {
		h.records[i] = tuning.TrialRecord{Trial: i, Params: trials[i].Params}
	}
	return h
}

// add appends results, in log order, to their trials' records; results of
// trials h does not hold are ignored.
func (h *history) add(results ...structs.SweepResult) {
	for _, r := range results {
		if r.Trial < 0 || r.Trial >= len(h.records) {
			continue
		}
		rec := &h.records[r.Trial]
		rec.Results = append(rec.Results, tuning.Result{Trial: r.Trial, Budget: r.Budget, Value: resultValue(r)})
	}
}

// propose appends trial k, proposed with params and without results.
func (h *history) propose(k int, params tuning.Params) {
	h.records = append(h.records, tuning.TrialRecord{Trial: k, Params: params})
}

// before returns the searcher's history for trial n: the observations of
// trials 0..n-1.
func (h *history) before(n int) []tuning.Observation {
	return h.spec.SearchHistory(h.records[:n:n])
}

// best returns every trial valued by its best finite result at any budget
// (tuning.BestHistory), which is what a sweep's finish asks of a trial.
func (h *history) best() []tuning.Observation {
	return tuning.BestHistory(h.spec.Objective.Mode, h.records)
}
