package tuning

import (
	"math"
	"slices"
)

// TrialRecord is one trial as a searcher's history is built from it: its
// number, its parameters and the results it reported so far, in the order
// it reported them (strictly increasing Budget, as schedulers require). A
// result whose Value is NaN or ±Inf is a diverged one; Result.Trial is not
// read.
type TrialRecord struct {
	// Trial is the trial number (from 0).
	Trial int
	// Params are the values the trial ran with.
	Params Params
	// Results are the trial's results in report order.
	Results []Result
}

// BestHistory values every trial by its best result at any budget, the rule
// for sweeps in which every trial runs to the maximum budget (fifo), where
// it compares like with like. Observation i is trials[i] with
//
//   - HasValue false when the trial has no result;
//   - else Value = the best finite Value among its results by mode (the
//     first of equal values);
//   - else (every result non-finite) Value = NaN, which searchers count as
//     the worst value (a diverged trial).
//
// Any mode other than Maximize minimises.
func BestHistory(mode Mode, trials []TrialRecord) []Observation {
	obs := make([]Observation, len(trials))
	for i, t := range trials {
		obs[i] = Observation{Trial: t.Trial, Params: t.Params}
		for _, r := range t.Results {
			fold(mode, &obs[i], r.Value)
		}
	}
	return obs
}

// BudgetHistory values every trial at one common budget, as BOHB does
// (Falkner et al. 2018), so that a searcher never compares the value a
// trial stopped early had after a few epochs with the value of a trial
// that ran on after many: under early stopping (asha, hyperband, median)
// the history BestHistory builds mixes budgets, and a model such as TPE
// then takes stopped trials' early values for final ones.
//
// The rule, over the trials with at least one result (finite or not):
//
//   - A trial reaches budget b when one of its results has Budget ≥ b.
//   - b is the largest budget that at least minPoints trials reach: the
//     minPoints-th largest of the trials' largest result budgets (minPoints
//     below 1 counts as 1).
//   - A trial that reaches b is valued by the results it reported up to
//     and including its first one at a budget ≥ b, as BestHistory values a
//     trial: the best finite value by mode, or NaN (the worst) when all of
//     those are non-finite. With results at every epoch, as the controller
//     and the simulator report them, that is its best value within the
//     first b epochs, a budget every valued trial has had.
//   - Every other trial, including one with no results, has HasValue
//     false: searchers skip it.
//   - When fewer than minPoints trials have a result, no budget qualifies
//     and BudgetHistory is BestHistory.
//
// So the history always holds at least min(minPoints, trials with a
// result) values. Callers that feed TPE pass its n_startup as minPoints
// (see Spec.SearchHistory), so that the budget-aware history never has too
// few values for TPE to model and send it back to random start-up points.
func BudgetHistory(mode Mode, minPoints int, trials []TrialRecord) []Observation {
	var reach []int // each reporting trial's largest result budget
	for _, t := range trials {
		if len(t.Results) == 0 {
			continue
		}
		hi := t.Results[0].Budget
		for _, r := range t.Results[1:] {
			hi = max(hi, r.Budget)
		}
		reach = append(reach, hi)
	}
	minPoints = max(minPoints, 1)
	if len(reach) < minPoints {
		return BestHistory(mode, trials)
	}
	slices.Sort(reach)
	b := reach[len(reach)-minPoints]
	obs := make([]Observation, len(trials))
	for i, t := range trials {
		obs[i] = Observation{Trial: t.Trial, Params: t.Params}
		reached := false
		for _, r := range t.Results {
			fold(mode, &obs[i], r.Value)
			if r.Budget >= b {
				reached = true
				break
			}
		}
		if !reached {
			obs[i] = Observation{Trial: t.Trial, Params: t.Params}
		}
	}
	return obs
}

// SearchHistory is the history a sweep run by s gives its searcher:
// BestHistory when its scheduler is fifo (every trial runs to the maximum
// budget, so a trial's best value at any budget already compares like with
// like, and a running trial's value so far is kept), else BudgetHistory
// with minPoints = the TPE option n_startup after defaults (10 unless set;
// random and grid search ignore the history). The objective's mode ranks
// values. The controller and the simulator both call it, and the
// controller's replay recomputes suggestions with it, so the rule is part
// of a sweep's replay contract: changing it changes what a recorded sweep
// replays to.
func (s Spec) SearchHistory(trials []TrialRecord) []Observation {
	mode := s.Objective.Mode
	switch s.Scheduler.Name {
	case "", SchedulerFIFO:
		return BestHistory(mode, trials)
	}
	return BudgetHistory(mode, s.Searcher.TPE.withDefaults().NStartup, trials)
}

// fold folds result value v into o as BestHistory values a trial: the
// first result sets the value (NaN when it is not finite), a finite one
// replaces NaN, and a finite better one by mode replaces a finite one.
func fold(mode Mode, o *Observation, v float64) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		if !o.HasValue {
			o.HasValue, o.Value = true, math.NaN()
		}
		return
	}
	if !o.HasValue || math.IsNaN(o.Value) || (mode == Maximize && v > o.Value) || (mode != Maximize && v < o.Value) {
		o.HasValue, o.Value = true, v
	}
}
