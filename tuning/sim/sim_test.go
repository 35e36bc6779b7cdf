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

func TestRunBudgetAwareHistory(t *testing.T) {
	s, err := tuning.NewRandom(Space(), 2)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{Searcher: s}
	tr, err := Run(Config{Model: Model{Seed: 2}, Searcher: rec, MaxConcurrent: 2, MaxBudget: 3, MaxTrials: 12, HistoryBudgets: []int{1, 3}, HistoryMin: 3})
	if err != nil {
		t.Fatal(err)
	}
	at := map[[2]int]float64{} // (trial, budget) → value
	for _, r := range tr.Reports {
		at[[2]int{r.Trial, r.Budget}] = r.Value
	}
	// A history is either the plain one (every trial started so far) or
	// holds ≥ HistoryMin trials, all with their value at one budget.
	atAll := func(h []tuning.Observation, budget int) bool {
		for _, o := range h {
			if v, ok := at[[2]int{o.Trial, budget}]; !ok || v != o.Value || !o.HasValue {
				return false
			}
		}
		return true
	}
	sawRung3 := false
	for i, h := range rec.seen {
		switch {
		case len(h) == rec.ns[i]:
		case len(h) >= 3 && atAll(h, 3):
			sawRung3 = true
		case len(h) >= 3 && atAll(h, 1):
		default:
			t.Fatalf("suggestion %d: history %+v is neither plain nor at one budget", rec.ns[i], h)
		}
	}
	if !sawRung3 {
		t.Error("history never moved to budget 3")
	}
}
