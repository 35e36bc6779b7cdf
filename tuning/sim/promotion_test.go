package sim

import (
	"container/heap"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/trainctl/trainctl/tuning"
)

// runPromotion simulates the promotion-based ASHA of Li et al. 2020
// (Algorithm 2), which the coordinator cannot run (a trial it stops is
// cancelled; it has no pause) and which is therefore not a
// tuning.Scheduler: it is here only to measure what that variant would gain
// over the stopping variant tuning.ASHA implements.
//
// Rungs are at η^k below MaxBudget, and MaxBudget. A trial trains to the
// next rung and pauses there, freeing its worker. A free worker looks for a
// promotable trial, from the second-highest rung down: one among the top
// ⌊n/η⌋ of the n recorded at rung k that has not been promoted yet (the
// best such first); it resumes that trial from its checkpoint up to rung
// k+1. If there is none it starts a new trial and trains it to the first
// rung. A trial that reaches MaxBudget completes. cfg.Scheduler and
// cfg.History are ignored (the searcher sees each trial's latest value); every other field means what it means
// for Run.
func runPromotion(cfg Config, eta int) (*Trace, error) {
	if cfg.Searcher == nil || cfg.TotalBudget <= 0 || cfg.MaxConcurrent <= 0 || cfg.MaxBudget <= 0 || eta < 2 {
		return nil, errors.New("sim: runPromotion needs a searcher, a total budget, workers, a max budget and η ≥ 2")
	}
	var rungs []int
	for r := 1; r < cfg.MaxBudget; r *= eta {
		rungs = append(rungs, r)
	}
	rungs = append(rungs, cfg.MaxBudget)
	type entry struct {
		score    float64
		trial    int
		promoted bool
	}
	at := make([][]entry, len(rungs)) // per rung, ascending score
	tr := &Trace{}
	var q events
	trials := map[int]*running{} // live or paused
	goal := map[int]int{}        // rung index a live trial trains to
	used, reserved := 0, 0
	schedule := func(now time.Duration, id int) {
		reserved++
		heap.Push(&q, event{at: now + secs(trials[id].curve.epochSecs), trial: id})
	}
	job := func(now time.Duration) error {
		if reserved >= cfg.TotalBudget {
			return nil
		}
		for k := len(rungs) - 2; k >= 0; k-- {
			keep := len(at[k]) / eta
			for j := range keep {
				if !at[k][j].promoted {
					at[k][j].promoted = true
					id := at[k][j].trial
					goal[id] = k + 1
					schedule(now, id)
					return nil
				}
			}
		}
		if cfg.MaxTrials > 0 && len(tr.Trials) >= cfg.MaxTrials {
			return nil
		}
		n := len(tr.Trials)
		p, err := cfg.Searcher.Suggest(n, tr.Trials)
		if err != nil {
			return fmt.Errorf("sim: suggest trial %d: %w", n, err)
		}
		tr.Trials = append(tr.Trials, tuning.Observation{Trial: n, Params: p})
		trials[n] = &running{curve: cfg.Model.newCurve(n, p)}
		goal[n] = 0
		schedule(now, n)
		return nil
	}
	for range cfg.MaxConcurrent {
		if err := job(0); err != nil {
			return nil, err
		}
	}
	for q.Len() > 0 {
		ev := heap.Pop(&q).(event)
		rt := trials[ev.trial]
		rt.epoch++
		used++
		v := rt.curve.observe(rt.epoch)
		clean := rt.curve.clean(rt.epoch)
		d := tuning.DecisionContinue
		k := goal[ev.trial]
		if rt.epoch == rungs[k] {
			d = tuning.DecisionStop // paused, or completed at the top rung
			if k == len(rungs)-1 {
				d = tuning.DecisionComplete
			} else {
				e := entry{score: v, trial: ev.trial}
				i, _ := slices.BinarySearchFunc(at[k], e, func(a, b entry) int {
					if a.score < b.score {
						return -1
					}
					return 1 // equal scores: the earlier one stays ahead
				})
				at[k] = slices.Insert(at[k], i, e)
			}
		}
		tr.Reports = append(tr.Reports, Report{Time: ev.at, Used: used, Result: tuning.Result{Trial: ev.trial, Budget: rt.epoch, Value: v}, Clean: clean, Decision: d})
		tr.Trials[ev.trial].Value, tr.Trials[ev.trial].HasValue = v, true
		if cfg.Target > 0 && clean <= cfg.Target {
			return tr, nil
		}
		if d == tuning.DecisionContinue {
			if reserved < cfg.TotalBudget {
				schedule(ev.at, ev.trial)
			}
			continue
		}
		if err := job(ev.at); err != nil {
			return nil, err
		}
	}
	return tr, nil
}

// TestRunPromotion checks the promotion-based simulation on a small sweep:
// trials report consecutive budgets and pause only at rungs, a trial
// resumes past rung k only if its value there was among the top ⌊n/η⌋ of
// the n recorded at k by then, some trials complete, and the budget is
// used exactly.
func TestRunPromotion(t *testing.T) {
	s, err := tuning.NewRandom(Space(), 3)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := runPromotion(Config{Model: Model{Seed: 3}, Searcher: s, MaxConcurrent: 4, MaxBudget: 9, TotalBudget: 400}, 3)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(tr.Reports); n != 400 || tr.Reports[n-1].Used != 400 {
		t.Fatalf("%d reports, last used %d; want 400", n, tr.Reports[n-1].Used)
	}
	last := map[int]int{}
	value := map[[2]int]float64{} // (trial, rung) → value there
	type rec struct {
		at time.Duration
		v  float64
	}
	atRung := map[int][]rec{}          // rung → values recorded so far
	resumed := map[int]int{1: 0, 3: 0} // rung → trials resumed past it
	completed := 0
	for i, r := range tr.Reports {
		if r.Budget != last[r.Trial]+1 {
			t.Fatalf("report %d: trial %d budget %d after %d", i, r.Trial, r.Budget, last[r.Trial])
		}
		last[r.Trial] = r.Budget
		if rung := r.Budget - 1; rung == 1 || rung == 3 { // first epoch after a pause
			// It was promoted one epoch earlier, against what the rung held then.
			resumed[rung]++
			promotedAt := r.Time - secs(Model{Seed: 3}.newCurve(r.Trial, tr.Trials[r.Trial].Params).epochSecs)
			n, better := 0, 0
			for _, e := range atRung[rung] {
				if e.at <= promotedAt {
					n++
					if e.v < value[[2]int{r.Trial, rung}] {
						better++
					}
				}
			}
			if better >= n/3 {
				t.Fatalf("report %d: trial %d resumed past rung %d with %d of %d better", i, r.Trial, rung, better, n)
			}
		}
		switch r.Budget {
		case 1, 3:
			if r.Decision != tuning.DecisionStop {
				t.Fatalf("report %d at rung %d: %v, want a pause", i, r.Budget, r.Decision)
			}
			atRung[r.Budget] = append(atRung[r.Budget], rec{r.Time, r.Value})
			value[[2]int{r.Trial, r.Budget}] = r.Value
		case 9:
			completed++
			if r.Decision != tuning.DecisionComplete {
				t.Fatalf("report %d at max budget: %v", i, r.Decision)
			}
		default:
			if r.Decision != tuning.DecisionContinue {
				t.Fatalf("report %d at budget %d: %v", i, r.Budget, r.Decision)
			}
		}
	}
	if resumed[1] == 0 || resumed[3] == 0 || completed == 0 {
		t.Errorf("resumed past 1: %d, past 3: %d, completed %d", resumed[1], resumed[3], completed)
	}
}
