package tuning

import (
	"fmt"
	"math"
	"sort"
)

// Result is one intermediate or final metric a trial reported: the value of
// the sweep objective after Budget units (epochs or steps) of training.
// Results of one trial must arrive with strictly increasing Budget.
type Result struct {
	Trial  int
	Budget int
	Value  float64
}

// Decision is what a Scheduler says a trial should do after a result.
type Decision int

const (
	// DecisionContinue lets the trial train on to its next report.
	DecisionContinue Decision = iota
	// DecisionPromote lets the trial train on past a rung it has just passed
	// (ASHA, Hyperband). The controller treats it like DecisionContinue;
	// it is kept apart so that logs and the leaderboard can show promotions.
	DecisionPromote
	// DecisionStop ends the trial early.
	DecisionStop
	// DecisionComplete ends the trial because it reached the maximum budget.
	DecisionComplete
)

// String returns the decision's lower-case name.
func (d Decision) String() string {
	switch d {
	case DecisionContinue:
		return "continue"
	case DecisionPromote:
		return "promote"
	case DecisionStop:
		return "stop"
	case DecisionComplete:
		return "complete"
	}
	return fmt.Sprintf("Decision(%d)", int(d))
}

// Running reports whether the trial keeps training after the decision.
func (d Decision) Running() bool { return d == DecisionContinue || d == DecisionPromote }

// Scheduler decides, result by result, whether trials keep training.
//
// A Scheduler is a deterministic state machine: its decisions are a pure
// function of its configuration and of the ordered sequence of results given
// to OnResult. The coordinator records every decision in the Raft log; a new
// leader rebuilds the scheduler by replaying the committed results in log
// order and obtains the same decisions. Schedulers are not safe for
// concurrent use; the controller calls them from one goroutine.
//
// Results for a trial the scheduler has already stopped or completed are
// ignored and answered with the same terminal decision. A result whose
// Budget does not exceed the trial's previous one is ignored and answered
// DecisionContinue (a resumed trial may repeat its last report). A NaN
// value counts as the worst possible value.
type Scheduler interface {
	OnResult(r Result) Decision
}

// SchedConfig holds what every scheduler needs to know about the sweep.
type SchedConfig struct {
	// Maximize is true when larger objective values are better.
	Maximize bool
	// MinBudget is the smallest budget at which a trial may be judged
	// (ASHA's first rung, Hyperband's smallest bracket). Must be ≥ 1.
	MinBudget int
	// MaxBudget is the budget at which a trial completes. Must be ≥
	// MinBudget and at most MaxBudgetLimit.
	MaxBudget int
}

func (c SchedConfig) validate() error {
	if c.MinBudget < 1 {
		return fmt.Errorf("scheduler: min_budget %d must be at least 1", c.MinBudget)
	}
	if c.MaxBudget < c.MinBudget {
		return fmt.Errorf("scheduler: max_budget %d is below min_budget %d", c.MaxBudget, c.MinBudget)
	}
	if c.MaxBudget > MaxBudgetLimit {
		return fmt.Errorf("scheduler: max_budget %d is above the limit %d", c.MaxBudget, MaxBudgetLimit)
	}
	return nil
}

// geometric returns lo, lo·eta, lo·eta², … while at most hi (below hi when
// open), for lo ≥ 1 and eta ≥ 2: at most 63 values, and no product that
// overflows, whatever lo, hi and eta are.
func geometric(lo, hi, eta int, open bool) []int {
	var out []int
	for r := lo; r < hi || (!open && r == hi); r *= eta {
		out = append(out, r)
		if r > hi/eta { // r·eta > hi, or would overflow
			break
		}
	}
	return out
}

// score maps a value so that smaller is always better and NaN is worst.
func score(maximize bool, v float64) float64 {
	if math.IsNaN(v) {
		return math.Inf(1)
	}
	if maximize {
		return -v
	}
	return v
}

// trialLog is the per-trial bookkeeping shared by the schedulers.
type trialLog struct {
	last     int // last accepted budget, 0 before the first report
	prev     int // the budget accepted before last
	terminal Decision
	done     bool
}

// admit applies the rules common to every scheduler: terminal trials stay
// terminal, non-increasing budgets are ignored. It returns the trial's log
// and ok=false with the answer when the result must not be processed.
func admit(trials map[int]*trialLog, r Result) (*trialLog, Decision, bool) {
	t := trials[r.Trial]
	if t == nil {
		t = &trialLog{}
		trials[r.Trial] = t
	}
	if t.done {
		return t, t.terminal, false
	}
	if r.Budget <= t.last {
		return t, DecisionContinue, false
	}
	t.prev, t.last = t.last, r.Budget
	return t, DecisionContinue, true
}

func finish(t *trialLog, d Decision) Decision {
	if d == DecisionStop || d == DecisionComplete {
		t.done, t.terminal = true, d
	}
	return d
}

// FIFO is the scheduler that never stops a trial early: every trial trains
// to MaxBudget.
type FIFO struct {
	cfg    SchedConfig
	trials map[int]*trialLog
}

// NewFIFO returns a FIFO scheduler.
func NewFIFO(cfg SchedConfig) (*FIFO, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &FIFO{cfg: cfg, trials: map[int]*trialLog{}}, nil
}

// OnResult answers DecisionComplete at MaxBudget and DecisionContinue before.
func (f *FIFO) OnResult(r Result) Decision {
	t, d, ok := admit(f.trials, r)
	if !ok {
		return d
	}
	if r.Budget >= f.cfg.MaxBudget {
		return finish(t, DecisionComplete)
	}
	return DecisionContinue
}

// Replay feeds results to s in order and returns its decisions. Replaying
// the same ordered results into a freshly built scheduler with the same
// configuration yields the same decisions.
func Replay(s Scheduler, results []Result) []Decision {
	out := make([]Decision, len(results))
	for i, r := range results {
		out[i] = s.OnResult(r)
	}
	return out
}

// sortedScores is an ascending slice of scores (smaller is better).
type sortedScores []float64

// insert adds v and returns the number of entries strictly better than v.
func (s *sortedScores) insert(v float64) int {
	i := sort.SearchFloat64s(*s, v) // first index with (*s)[i] >= v
	*s = append(*s, 0)
	copy((*s)[i+1:], (*s)[i:])
	(*s)[i] = v
	return i
}

// NewScheduler builds the scheduler a sweep spec names (fifo when empty)
// from its objective, budget and scheduler options. The spec is assumed to
// have passed validation; a bad option still comes back as an error.
func NewScheduler(s Spec) (Scheduler, error) {
	sc := SchedConfig{Maximize: s.Objective.Mode == Maximize, MinBudget: s.Budget.Min, MaxBudget: s.Budget.Max}
	if sc.MinBudget == 0 {
		sc.MinBudget = 1
	}
	ac := ASHAConfig{SchedConfig: sc, Eta: s.Scheduler.ReductionFactor, GracePeriod: s.Scheduler.GracePeriod}
	switch s.Scheduler.Name {
	case "", SchedulerFIFO:
		return NewFIFO(sc)
	case SchedulerASHA:
		return NewASHA(ac)
	case SchedulerHyperband:
		return NewHyperband(ac)
	case SchedulerMedian:
		return NewMedian(MedianConfig{SchedConfig: sc, GracePeriod: s.Scheduler.GracePeriod, MinTrials: s.Scheduler.MinTrials})
	}
	return nil, fmt.Errorf("scheduler: unknown scheduler %q", s.Scheduler.Name)
}
