package tuning

import (
	"maps"
	"math"
	"reflect"
	"slices"
	"testing"
)

// TestNormalizedBehavesAlike checks that a sweep built from a normalized
// spec suggests and decides exactly as one built from the spec as written,
// that normalizing writes the defaults out, and that it is idempotent.
func TestNormalizedBehavesAlike(t *testing.T) {
	specs := map[string]string{
		"tpe asha":         "searcher: {name: tpe}\nscheduler: {name: asha}\nbudget: {max: 27}\nmax_trials: 30\n",
		"random hyperband": "searcher: {name: random}\nscheduler: {name: hyperband}\nbudget: {min: 2, max: 18}\nmax_trials: 30\n",
		"grid median":      "search_space:\n  lr: {type: loguniform, low: 0.0001, high: 0.1, grid_points: 8}\nsearcher: {name: grid}\nscheduler: {name: median}\nbudget: {max: 9}\nmax_trials: 8\n",
		"fifo":             "budget: {max: 4}\nmax_trials: 10\n",
	}
	for name, body := range specs {
		t.Run(name, func(t *testing.T) {
			src := "name: s\n" + baseJob + "objective: {metric: val_loss, mode: min}\n" + body
			if !slices.Contains([]string{"grid median"}, name) {
				src += "search_space:\n  lr: {type: loguniform, low: 0.0001, high: 0.1}\n  momentum: {type: uniform, low: 0.5, high: 0.99}\n"
			}
			s, err := Parse([]byte(src), "sweep.yaml")
			if err != nil {
				t.Fatal(err)
			}
			n := s.Normalized()
			if err := n.Validate(); err != nil {
				t.Fatalf("normalized spec does not validate: %v", err)
			}
			if again := n.Normalized(); !reflect.DeepEqual(again, n) {
				t.Fatalf("Normalized is not idempotent:\n%+v\n%+v", n, again)
			}
			if n.Scheduler.Name == "" {
				t.Fatal("scheduler name left empty")
			}
			if n.Scheduler.Name != SchedulerFIFO && n.Scheduler.GracePeriod == 0 {
				t.Fatal("grace period left at its zero default")
			}
			if n.Searcher.Name == SearcherTPE && (n.Searcher.TPE.NStartup == 0 || n.Searcher.TPE.NCandidates == 0 || n.Searcher.TPE.Gamma == 0) {
				t.Fatalf("tpe defaults left at zero: %+v", n.Searcher.TPE)
			}
			sameSuggestions(t, s, n)
			sameDecisions(t, s, n)
		})
	}
}

// sameSuggestions runs both specs' searchers over the same history.
func sameSuggestions(t *testing.T, a, b Spec) {
	t.Helper()
	sa, err := a.NewSearcher()
	if err != nil {
		t.Fatal(err)
	}
	sb, err := b.NewSearcher()
	if err != nil {
		t.Fatal(err)
	}
	var hist []Observation
	for i := range min(a.MaxTrials, 12) {
		pa, errA := sa.Suggest(i, hist)
		pb, errB := sb.Suggest(i, hist)
		if (errA == nil) != (errB == nil) || !maps.Equal(pa, pb) {
			t.Fatalf("trial %d: %v (%v) vs normalized %v (%v)", i, pa, errA, pb, errB)
		}
		if errA != nil {
			return
		}
		hist = append(hist, Observation{Trial: i, Params: pa, Value: math.Sin(float64(i)), HasValue: true})
	}
}

// sameDecisions feeds both specs' schedulers the same results.
func sameDecisions(t *testing.T, a, b Spec) {
	t.Helper()
	ma, err := NewScheduler(a)
	if err != nil {
		t.Fatal(err)
	}
	mb, err := NewScheduler(b)
	if err != nil {
		t.Fatal(err)
	}
	var results []Result
	for trial := range 9 {
		for budget := 1; budget <= a.Budget.Max; budget++ {
			results = append(results, Result{Trial: trial, Budget: budget, Value: float64((trial*7)%5) + 1/float64(budget)})
		}
	}
	if da, db := Replay(ma, results), Replay(mb, results); !slices.Equal(da, db) {
		t.Fatalf("decisions differ:\n%v\n%v", da, db)
	}
}
