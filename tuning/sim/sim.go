package sim

import (
	"container/heap"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/trainctl/trainctl/tuning"
)

// Config configures one simulated sweep.
type Config struct {
	// Model generates the curves (its Seed picks the noise).
	Model Model
	// Searcher suggests the parameters of trial n over Space().
	Searcher tuning.Searcher
	// Scheduler judges every reported epoch; nil means FIFO.
	Scheduler tuning.Scheduler
	// MaxConcurrent is the number of simulated workers (default 8).
	MaxConcurrent int
	// MaxBudget is the epochs at which a trial completes (default 81).
	MaxBudget int
	// MaxTrials bounds the trials started (0: no bound).
	MaxTrials int
	// TotalBudget bounds the epochs run by all trials together; no trial is
	// started once it is used up, and running trials stop at it (0: no
	// bound; then MaxTrials must be set).
	TotalBudget int
	// History builds the searcher's history from the trials started so far
	// (their reports in order) when a trial is suggested; nil means
	// tuning.BestHistory minimising, what the controller does with fifo.
	// Pass a tuning.Spec's SearchHistory to run the controller's rule for
	// that spec (tuning.BudgetHistory under early stopping).
	History func([]tuning.TrialRecord) []tuning.Observation
	// Target, when > 0, ends the sweep at the first report whose
	// noise-free error is at or below it: the budget a method needs to
	// reach a quality can then be measured under a generous TotalBudget
	// without simulating the rest of it. The reports before that point are
	// the same as without Target.
	Target float64
}

// Report is one epoch result as the controller saw it.
type Report struct {
	// Time is the simulated wall-clock time of the report.
	Time time.Duration
	// Used is the epochs run by all trials up to and including this one.
	Used int
	tuning.Result
	// Clean is the noise-free error behind the noisy Result.Value.
	Clean    float64
	Decision tuning.Decision
}

// Trace is what a simulated sweep did.
type Trace struct {
	Reports []Report
	// Trials has one Observation per trial started, with its latest value
	// (not the searcher's history, which Config.History builds).
	Trials []tuning.Observation
	// Decisions counts scheduler calls; DecisionTime is their total real
	// (not simulated) time, for controller overhead.
	Decisions    int
	DecisionTime time.Duration
}

// event is a worker finishing an epoch.
type event struct {
	at    time.Duration
	trial int
}

type events []event

func (e events) Len() int { return len(e) }
func (e events) Less(i, j int) bool {
	if e[i].at != e[j].at {
		return e[i].at < e[j].at
	}
	return e[i].trial < e[j].trial
}
func (e events) Swap(i, j int) { e[i], e[j] = e[j], e[i] }
func (e *events) Push(x any)   { *e = append(*e, x.(event)) }
func (e *events) Pop() any {
	old := *e
	x := old[len(old)-1]
	*e = old[:len(old)-1]
	return x
}

type running struct {
	curve *curve
	epoch int // epochs finished
}

// Run simulates the sweep: MaxConcurrent workers each train one trial at a
// time; every finished epoch is reported to the Scheduler, and a trial that
// is stopped or completes frees its worker, which asks the Searcher for the
// next trial's parameters given cfg.History of the trials started so far.
// Events at the same simulated time are processed in trial order, so the
// trace is a function of the config alone.
func Run(cfg Config) (*Trace, error) {
	if cfg.MaxConcurrent == 0 {
		cfg.MaxConcurrent = 8
	}
	if cfg.MaxBudget == 0 {
		cfg.MaxBudget = 81
	}
	if cfg.Searcher == nil {
		return nil, errors.New("sim: no searcher")
	}
	if cfg.MaxTrials <= 0 && cfg.TotalBudget <= 0 {
		return nil, errors.New("sim: neither max trials nor total budget bounds the sweep")
	}
	if cfg.Scheduler == nil {
		f, err := tuning.NewFIFO(tuning.SchedConfig{MinBudget: 1, MaxBudget: cfg.MaxBudget})
		if err != nil {
			return nil, err
		}
		cfg.Scheduler = f
	}
	if cfg.History == nil {
		cfg.History = func(trials []tuning.TrialRecord) []tuning.Observation {
			return tuning.BestHistory(tuning.Minimize, trials)
		}
	}
	tr := &Trace{}
	var q events
	var records []tuning.TrialRecord // what the searcher's history is built from
	live := map[int]*running{}
	used, reserved := 0, 0 // epochs finished; epochs started (incl. running)
	canStart := func() bool {
		return (cfg.MaxTrials <= 0 || len(tr.Trials) < cfg.MaxTrials) &&
			(cfg.TotalBudget <= 0 || reserved < cfg.TotalBudget)
	}
	start := func(now time.Duration) error {
		n := len(tr.Trials)
		p, err := cfg.Searcher.Suggest(n, cfg.History(records[:n:n]))
		if err != nil {
			return fmt.Errorf("sim: suggest trial %d: %w", n, err)
		}
		tr.Trials = append(tr.Trials, tuning.Observation{Trial: n, Params: p})
		records = append(records, tuning.TrialRecord{Trial: n, Params: p})
		cv := cfg.Model.newCurve(n, p)
		live[n] = &running{curve: cv}
		reserved++
		heap.Push(&q, event{at: now + secs(cv.epochSecs), trial: n})
		return nil
	}
	for i := 0; i < cfg.MaxConcurrent && canStart(); i++ {
		if err := start(0); err != nil {
			return nil, err
		}
	}
	for q.Len() > 0 {
		ev := heap.Pop(&q).(event)
		rt := live[ev.trial]
		rt.epoch++
		used++
		r := tuning.Result{Trial: ev.trial, Budget: rt.epoch, Value: rt.curve.observe(rt.epoch)}
		t0 := time.Now()
		d := cfg.Scheduler.OnResult(r)
		tr.DecisionTime += time.Since(t0)
		tr.Decisions++
		if d.Running() && rt.epoch >= cfg.MaxBudget {
			d = tuning.DecisionComplete // a scheduler that would run past max
		}
		clean := rt.curve.clean(rt.epoch)
		tr.Reports = append(tr.Reports, Report{Time: ev.at, Used: used, Result: r, Clean: clean, Decision: d})
		if cfg.Target > 0 && clean <= cfg.Target {
			return tr, nil
		}
		o := &tr.Trials[ev.trial]
		o.Value, o.HasValue = r.Value, true
		records[ev.trial].Results = append(records[ev.trial].Results, r)
		if d.Running() && (cfg.TotalBudget <= 0 || reserved < cfg.TotalBudget) {
			reserved++
			heap.Push(&q, event{at: ev.at + secs(rt.curve.epochSecs), trial: ev.trial})
			continue
		}
		delete(live, ev.trial)
		if canStart() {
			if err := start(ev.at); err != nil {
				return nil, err
			}
		}
	}
	return tr, nil
}

func secs(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// BestAt returns the best (lowest) noise-free error of any report made by
// simulated time t, or +Inf.
func (tr *Trace) BestAt(t time.Duration) float64 {
	best := math.Inf(1)
	for _, r := range tr.Reports {
		if r.Time > t {
			break
		}
		best = math.Min(best, r.Clean)
	}
	return best
}

// Best returns the lowest noise-free error of any report.
func (tr *Trace) Best() float64 { return tr.BestAt(math.MaxInt64) }

// BudgetToReach returns the epochs run by all trials when a report first
// had a noise-free error ≤ target, and false if none did.
func (tr *Trace) BudgetToReach(target float64) (int, bool) {
	for _, r := range tr.Reports {
		if r.Clean <= target {
			return r.Used, true
		}
	}
	return 0, false
}
