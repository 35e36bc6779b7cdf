package sweeper

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/trainctl/trainctl/coordinator/structs"
	"github.com/trainctl/trainctl/tuning"
)

// runSweep drives a sweep to its end through Step and the test applier,
// with simulated workers that train every running trial one epoch per pass:
// trial 3's first attempt is preempted at epoch 2 and its second repeats
// epoch 1 (when it gets that far); trial 5's job fails for good; trial 7
// diverges.
func runSweep(t *testing.T, spec tuning.Spec) *world {
	t.Helper()
	w := newWorld(t, spec)
	c := New(nil)
	epochs := spec.Budget.Max // epochs a trial trains
	if spec.Budget.Unit == tuning.UnitSteps {
		epochs = spec.Budget.Max / 10
	}
	next := map[int]int{}    // trial → next 0-based epoch
	attempt := map[int]int{} // trial → current attempt
	for i := 0; w.sw.State == structs.SweepRunning; i++ {
		if i > 300 {
			t.Fatal("sweep does not end")
		}
		for n := range w.sw.Trials {
			tr := &w.sw.Trials[n]
			j := w.job(n)
			if tr.State != structs.TrialRunning || j.State.Terminal() {
				continue
			}
			if attempt[n] == 0 {
				attempt[n] = 1
			}
			j.State = structs.JobRunning
			e := next[n]
			switch {
			case n == 3 && e == 2 && attempt[n] == 1:
				attempt[n], next[n] = 2, 1 // preempted; resumes from epoch 0's checkpoint
				j.State = structs.JobPending
				continue
			case n == 5 && e == 1:
				j.State, j.Error = structs.JobFailed, "oom"
				continue
			}
			v := curve(tr.Params["lr"].Float(), e) + 0.2*float64(n%4)
			if n == 7 {
				v = math.Inf(1)
			}
			w.report(n, attempt[n], e, v)
			next[n] = e + 1
			if e+1 >= epochs {
				j.State = structs.JobSucceeded
			}
		}
		w.apply(w.step(c, i))
	}
	return w
}

// cloneSweep copies sw through JSON, as the Raft log and snapshots do.
func cloneSweep(t *testing.T, sw *structs.Sweep) *structs.Sweep {
	t.Helper()
	var out structs.Sweep
	if err := json.Unmarshal([]byte(mustJSON(t, sw)), &out); err != nil {
		t.Fatal(err)
	}
	return &out
}

func TestReplay(t *testing.T) {
	specs := []struct {
		name      string
		body      string
		trials    int
		exhausted bool
	}{
		{"tpe asha epochs", lrSpace + "searcher: {name: tpe, n_startup: 3}\nscheduler: {name: asha}\nmax_trials: 14\nmax_concurrent: 3\nbudget: {max: 9}\nseed: 3\n", 14, false},
		{"random hyperband steps", lrSpace + "scheduler: {name: hyperband}\nmax_trials: 10\nmax_concurrent: 4\nbudget: {unit: steps, min: 10, max: 90}\n", 10, false},
		{"grid median", "search_space:\n  lr: {type: loguniform, low: 0.0001, high: 0.1, grid_points: 9}\nobjective: {metric: val_loss, mode: min}\n" +
			"searcher: {name: grid}\nscheduler: {name: median, min_trials: 2}\nmax_trials: 20\nmax_concurrent: 2\nbudget: {max: 4}\n", 9, true},
	}
	for _, sp := range specs {
		t.Run(sp.name, func(t *testing.T) {
			w := runSweep(t, parseSpec(t, sp.body))
			sw := cloneSweep(t, w.sw)
			if sw.State != structs.SweepCompleted || sw.Best == nil || len(sw.Trials) != sp.trials || sw.Exhausted != sp.exhausted {
				t.Fatalf("sweep %s %q, best %+v, %d trials, exhausted %v", sw.State, sw.Error, sw.Best, len(sw.Trials), sw.Exhausted)
			}
			if !slices.ContainsFunc(sw.Results, func(r structs.SweepResult) bool { return r.NonFinite }) {
				t.Fatal("no non-finite result in the log")
			}
			if sw.Trials[5].State != structs.TrialFailed || sw.Trials[5].Error != "oom" {
				t.Fatalf("trial 5: %+v", sw.Trials[5])
			}
			rep, err := Replay(context.Background(), sw)
			if err != nil {
				t.Fatal(err)
			}
			if !rep.OK() || rep.Results != len(sw.Results) || rep.Suggestions != len(sw.Trials) {
				t.Fatalf("replay %+v of %d results, %d trials", rep, len(sw.Results), len(sw.Trials))
			}
		})
	}

	// Tampering with the log of the TPE sweep.
	orig := runSweep(t, parseSpec(t, specs[0].body)).sw
	stop := slices.IndexFunc(orig.Results, func(r structs.SweepResult) bool { return r.Decision == "stop" })
	last := len(orig.Trials) - 1
	if stop < 0 || last < 4 || orig.Trials[last].ResultsSeen == 0 {
		t.Fatalf("log lacks a stop or late trials: %d trials", len(orig.Trials))
	}
	tests := []struct {
		name   string
		tamper func(sw *structs.Sweep)
		want   string
	}{
		{"decision", func(sw *structs.Sweep) { sw.Results[stop].Decision = "continue" },
			"results[" + strconv.Itoa(stop) + "]: recorded continue, replay stop"},
		{"params", func(sw *structs.Sweep) { sw.Trials[last].Params = tuning.Params{"lr": tuning.Float(0.05)} },
			"trials[" + strconv.Itoa(last) + "]: recorded lr=0.05, replay lr="},
		{"results seen", func(sw *structs.Sweep) { sw.Trials[last].ResultsSeen = 0 },
			"trials[" + strconv.Itoa(last) + "]: recorded lr="},
		{"results seen out of range", func(sw *structs.Sweep) { sw.Trials[last].ResultsSeen = len(sw.Results) + 1 },
			"trials[" + strconv.Itoa(last) + "]: results_seen"},
	}
	for _, tt := range tests {
		t.Run("tampered "+tt.name, func(t *testing.T) {
			sw := cloneSweep(t, orig)
			tt.tamper(sw)
			rep, err := Replay(context.Background(), sw)
			if err != nil {
				t.Fatal(err)
			}
			if rep.OK() || len(rep.Mismatches) != 1 || !strings.HasPrefix(rep.Mismatches[0], tt.want) {
				t.Fatalf("mismatches %q, want one starting %q", rep.Mismatches, tt.want)
			}
		})
	}

	bad := cloneSweep(t, orig)
	bad.Spec.Searcher.Name = "nope"
	if _, err := Replay(context.Background(), bad); err == nil || !strings.Contains(err.Error(), `unknown searcher "nope"`) {
		t.Fatalf("replay with a bad spec: %v", err)
	}
}

// TestStepBudgetAwareHistory: under asha, once n_startup (2) trials have
// completed at the full budget, a trial stopped at rung 1 is left out of
// the searcher's history instead of being ranked by its rung-1 value
// against their full-budget values; Step suggests from that history and
// Replay reproduces it.
func TestStepBudgetAwareHistory(t *testing.T) {
	spec := parseSpec(t, lrSpace+"searcher: {name: tpe, n_startup: 2}\nscheduler: {name: asha}\nmax_trials: 4\nmax_concurrent: 3\nbudget: {max: 9}\nseed: 7\n")
	w := newWorld(t, spec)
	c := New(nil)
	w.apply(w.step(c, 0))
	if len(w.sw.Trials) != 3 {
		t.Fatalf("%d trials after the first step, want 3", len(w.sw.Trials))
	}
	for n := range 3 {
		w.job(n).State = structs.JobRunning
	}
	// Trials 1 and 2 train epochs 0..7 (trial 2 always better); trial 0
	// has not reported yet.
	loss := func(n, e int) float64 { return 1/float64(e+1) + 0.1*float64(3-n) }
	for e := range 8 {
		w.report(1, 1, e, loss(1, e))
		w.report(2, 1, e, loss(2, e))
		w.apply(w.step(c, 1+e))
	}
	// One pass: trial 0 reports a poor rung-1 value and is stopped; 1 and 2
	// finish epoch 8 and complete.
	w.report(0, 1, 0, 5)
	w.report(1, 1, 8, loss(1, 8))
	w.report(2, 1, 8, loss(2, 8))
	w.job(1).State, w.job(2).State = structs.JobSucceeded, structs.JobSucceeded
	req := w.step(c, 9)
	if got, want := decisions(req), []string{"0:1:stop", "1:9:complete", "2:9:complete"}; !slices.Equal(got, want) {
		t.Fatalf("decisions %q, want %q", got, want)
	}
	if req == nil || len(req.NewTrials) != 1 || req.NewTrials[0].Number != 3 {
		t.Fatalf("step: %+v, want trial 3 suggested", req)
	}
	searcher, err := spec.NewSearcher()
	if err != nil {
		t.Fatal(err)
	}
	p := func(n int) tuning.Params { return w.sw.Trials[n].Params }
	budgetAware := []tuning.Observation{
		{Trial: 0, Params: p(0)},
		{Trial: 1, Params: p(1), Value: loss(1, 8), HasValue: true},
		{Trial: 2, Params: p(2), Value: loss(2, 8), HasValue: true},
	}
	want, err := searcher.Suggest(3, budgetAware)
	if err != nil {
		t.Fatal(err)
	}
	if got := req.NewTrials[0].Params; !maps.Equal(got, want) {
		t.Fatalf("trial 3: %s, want %s (TPE on the budget-aware history)", got, want)
	}
	anyBudget := slices.Clone(budgetAware)
	anyBudget[0].Value, anyBudget[0].HasValue = 5, true
	mixed, err := searcher.Suggest(3, anyBudget)
	if err != nil {
		t.Fatal(err)
	}
	if maps.Equal(mixed, want) {
		t.Fatalf("trial 3: the any-budget history suggests the same %s; the test shows nothing", want)
	}
	w.apply(req)
	rep, err := Replay(context.Background(), cloneSweep(t, w.sw))
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.Suggestions != 4 {
		t.Fatalf("replay: %+v", rep)
	}
}

// TestReplayStopsWithItsContext checks that a replay whose caller went
// away stops instead of recomputing every suggestion.
func TestReplayStopsWithItsContext(t *testing.T) {
	w := runSweep(t, parseSpec(t, lrSpace+"searcher: {name: tpe, n_startup: 3}\nmax_trials: 6\nmax_concurrent: 2\nbudget: {max: 2}\n"))
	if len(w.sw.Trials) == 0 {
		t.Fatal("no trials to replay; the test shows nothing")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Replay(ctx, cloneSweep(t, w.sw)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Replay with an ended context: %v, want context.Canceled", err)
	}
}
