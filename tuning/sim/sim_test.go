package sim

import (
	"math"
	"reflect"
	"testing"

	"github.com/trainctl/trainctl/tuning"
)

func TestRunDeterministicAndBounded(t *testing.T) {
	mk := func() *Trace {
		s, err := tuning.NewRandom(Space(), 5)
		if err != nil {
			t.Fatal(err)
		}
		a, err := tuning.NewASHA(tuning.ASHAConfig{SchedConfig: tuning.SchedConfig{MinBudget: 1, MaxBudget: 27}})
		if err != nil {
			t.Fatal(err)
		}
		tr, err := Run(Config{Model: Model{Seed: 5}, Searcher: s, Scheduler: a, MaxConcurrent: 4, MaxBudget: 27, TotalBudget: 500})
		if err != nil {
			t.Fatal(err)
		}
		return tr
	}
	a, b := mk(), mk()
	if !reflect.DeepEqual(a.Reports, b.Reports) || !reflect.DeepEqual(a.Trials, b.Trials) {
		t.Fatal("two runs with the same config differ")
	}
	if n := len(a.Reports); n != 500 || a.Reports[n-1].Used != 500 {
		t.Fatalf("%d reports, last used %d; want 500 epochs exactly", n, a.Reports[n-1].Used)
	}
	next := map[int]int{}
	stopped := map[int]bool{}
	for i, r := range a.Reports {
		if i > 0 && r.Time < a.Reports[i-1].Time {
			t.Fatalf("report %d goes back in time", i)
		}
		if stopped[r.Trial] {
			t.Fatalf("trial %d reports after being stopped", r.Trial)
		}
		next[r.Trial]++
		if r.Budget != next[r.Trial] || r.Budget > 27 {
			t.Fatalf("trial %d reports budget %d, want %d", r.Trial, r.Budget, next[r.Trial])
		}
		if !r.Decision.Running() {
			stopped[r.Trial] = true
		}
	}
	if len(stopped) < len(a.Trials)/2 {
		t.Errorf("ASHA ended only %d of %d trials", len(stopped), len(a.Trials))
	}
}

func TestModel(t *testing.T) {
	good := tuning.Params{"lr": tuning.Float(0.01), "momentum": tuning.Float(0), "batch": tuning.IntValue(64), "dropout": tuning.Float(0.2)}
	bad := tuning.Params{"lr": tuning.Float(1e-5), "momentum": tuning.Float(0), "batch": tuning.IntValue(64), "dropout": tuning.Float(0.6)}
	for _, ep := range []int{1, 9, 81} {
		if Clean(bad, ep) <= Clean(good, ep) {
			t.Errorf("epoch %d: bad config %.4f not worse than good %.4f", ep, Clean(bad, ep), Clean(good, ep))
		}
	}
	if !(Clean(good, 81) < Clean(good, 9) && Clean(good, 9) < Clean(good, 1)) {
		t.Error("curve does not decrease")
	}
	opt := Optimum(81)
	if opt > Clean(good, 81)+1e-12 || opt < 0.05 || math.IsNaN(opt) {
		t.Errorf("Optimum(81) = %v, Clean(good, 81) = %v", opt, Clean(good, 81))
	}
	// curves cross: 10× too large a step looks better at epoch 1, worse at 81.
	big := tuning.Params{"lr": tuning.Float(0.1), "momentum": tuning.Float(0), "batch": tuning.IntValue(64), "dropout": tuning.Float(0.2)}
	if !(Clean(big, 1) < Clean(good, 1) && Clean(big, 81) > Clean(good, 81)) {
		t.Errorf("no crossing: big %.4f→%.4f, good %.4f→%.4f", Clean(big, 1), Clean(big, 81), Clean(good, 1), Clean(good, 81))
	}
}

func TestRunErrors(t *testing.T) {
	s, err := tuning.NewRandom(Space(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Run(Config{Searcher: s}); err == nil {
		t.Error("unbounded sweep: no error")
	}
	if _, err := Run(Config{MaxTrials: 3}); err == nil {
		t.Error("no searcher: no error")
	}
}

// recorder is a Searcher that remembers the histories it was given.
type recorder struct {
	tuning.Searcher
	seen [][]tuning.Observation
	ns   []int
}

func (r *recorder) Suggest(n int, h []tuning.Observation) (tuning.Params, error) {
	r.seen = append(r.seen, append([]tuning.Observation(nil), h...))
	r.ns = append(r.ns, n)
	return r.Searcher.Suggest(n, h)
}

// TestRunHistory: the searcher of trial n gets cfg.History of trials
// 0..n-1 with exactly the reports made before it was suggested, and the
// default history is tuning.BestHistory.
func TestRunHistory(t *testing.T) {
	best := func(tr []tuning.TrialRecord) []tuning.Observation { return tuning.BestHistory(tuning.Minimize, tr) }
	budget3 := func(tr []tuning.TrialRecord) []tuning.Observation {
		return tuning.BudgetHistory(tuning.Minimize, 3, tr)
	}
	tests := []struct {
		name    string
		history func([]tuning.TrialRecord) []tuning.Observation
		want    func([]tuning.TrialRecord) []tuning.Observation
	}{
		{name: "default", want: best},
		{name: "budget-aware", history: budget3, want: budget3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := tuning.NewRandom(Space(), 2)
			if err != nil {
				t.Fatal(err)
			}
			a, err := tuning.NewASHA(tuning.ASHAConfig{SchedConfig: tuning.SchedConfig{MinBudget: 1, MaxBudget: 9}})
			if err != nil {
				t.Fatal(err)
			}
			rec := &recorder{Searcher: s}
			tr, err := Run(Config{Model: Model{Seed: 2}, Searcher: rec, Scheduler: a, MaxConcurrent: 2, MaxBudget: 9, MaxTrials: 12, History: tt.history})
			if err != nil {
				t.Fatal(err)
			}
			if len(rec.seen) != 12 {
				t.Fatalf("%d suggestions, want 12", len(rec.seen))
			}
			// Rebuild each trial's records from the reports made before
			// its suggestion: a trial is suggested when a worker frees,
			// right after the report that freed it.
			starts := []int{0, 0} // reports before each suggestion
			for i, r := range tr.Reports {
				if !r.Decision.Running() {
					starts = append(starts, i+1)
				}
			}
			budgetAware := false
			for n, h := range rec.seen {
				records := make([]tuning.TrialRecord, n)
				for k := range records {
					records[k] = tuning.TrialRecord{Trial: k, Params: tr.Trials[k].Params}
				}
				for _, r := range tr.Reports[:starts[n]] {
					records[r.Trial].Results = append(records[r.Trial].Results, r.Result)
				}
				want := tt.want(records)
				if !sameHistory(h, want) {
					t.Fatalf("trial %d: history %+v, want %+v", n, h, want)
				}
				if !sameHistory(h, tuning.BestHistory(tuning.Minimize, records)) {
					budgetAware = true
				}
			}
			if budgetAware != (tt.history != nil) {
				t.Errorf("history differs from BestHistory: %v, want %v", budgetAware, tt.history != nil)
			}
		})
	}
}

// sameHistory reports whether two histories are equal, nil and empty alike.
func sameHistory(a, b []tuning.Observation) bool {
	return len(a) == len(b) && (len(a) == 0 || reflect.DeepEqual(a, b))
}

// TestRunTarget: a sweep with a Target ends at the first report at or below
// it, and reports exactly what the sweep without a Target reported up to
// there.
func TestRunTarget(t *testing.T) {
	mk := func(target float64) *Trace {
		s, err := tuning.NewRandom(Space(), 4)
		if err != nil {
			t.Fatal(err)
		}
		a, err := tuning.NewASHA(tuning.ASHAConfig{SchedConfig: tuning.SchedConfig{MinBudget: 1, MaxBudget: 27}})
		if err != nil {
			t.Fatal(err)
		}
		tr, err := Run(Config{Model: Model{Seed: 4}, Searcher: s, Scheduler: a, MaxConcurrent: 4, MaxBudget: 27, TotalBudget: 2000, Target: target})
		if err != nil {
			t.Fatal(err)
		}
		return tr
	}
	full := mk(0)
	target := full.BestAt(full.Reports[len(full.Reports)/2].Time)
	used, ok := full.BudgetToReach(target)
	if !ok || used >= 2000 {
		t.Fatalf("target %v reached at %d (%v)", target, used, ok)
	}
	cut := mk(target)
	n := len(cut.Reports)
	if cut.Reports[n-1].Used != used || cut.Reports[n-1].Clean > target {
		t.Fatalf("stopped at %d epochs (clean %v), want %d (target %v)", cut.Reports[n-1].Used, cut.Reports[n-1].Clean, used, target)
	}
	if !reflect.DeepEqual(cut.Reports, full.Reports[:n]) {
		t.Fatal("reports before the target differ from the untargeted sweep's")
	}
}
