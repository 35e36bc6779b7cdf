package sim

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trainctl/trainctl/tuning"
)

// Benchmark settings: 81 epochs max, 8 workers, a common budget of 100 full
// trials per sweep, and a cap of 20 times that (2 times for TPE, whose
// suggestions cost time quadratic in the trials) for measuring the budget a
// method needs to reach a quality it did not reach within the common one.
const (
	benchMaxBudget = 81
	benchWorkers   = 8
	benchBudget    = 100 * benchMaxBudget
	benchCap       = 20 * benchBudget
	benchCapTPE    = 2 * benchBudget
)

// method names a searcher + scheduler pair.
type method struct {
	name  string
	tpe   bool
	sched string // "fifo", "asha", "hyperband" or "promotion" (runPromotion)
	// anyBudget gives the searcher tuning.BestHistory (every trial's best
	// value at any budget) instead of the controller's rule for the
	// scheduler, tuning.Spec.SearchHistory: the controller's rule before
	// it became budget-aware under early stopping, kept for comparison.
	anyBudget bool
	eta       int // reduction factor (0: the scheduler's default, 3)
	grace     int // grace period (0: min budget)
}

var methods = []method{
	{name: "random", sched: "fifo"},
	{name: "tpe", tpe: true, sched: "fifo"},
	{name: "asha(random)", sched: "asha"},
	{name: "asha(tpe)", tpe: true, sched: "asha"},
	{name: "asha(tpe,any budget)", tpe: true, anyBudget: true, sched: "asha"},
	{name: "hyperband(random)", sched: "hyperband"},
	{name: "asha-promotion(random)", sched: "promotion"},
}

// cap is the budget up to which m's need is measured.
func (m method) cap() int {
	if m.tpe {
		return benchCapTPE
	}
	return benchCap
}

func (m method) scheduler() (tuning.Scheduler, error) {
	cfg := tuning.ASHAConfig{SchedConfig: tuning.SchedConfig{MinBudget: 1, MaxBudget: benchMaxBudget}, Eta: m.eta, GracePeriod: m.grace}
	switch m.sched {
	case "fifo":
		return nil, nil
	case "asha":
		return tuning.NewASHA(cfg)
	case "hyperband":
		return tuning.NewHyperband(cfg)
	}
	return nil, fmt.Errorf("unknown scheduler %q", m.sched)
}

// history is the searcher's history rule for m: the controller's
// (tuning.Spec.SearchHistory of a spec with m's searcher and scheduler and
// default TPE options), or tuning.BestHistory with anyBudget.
func (m method) history() func([]tuning.TrialRecord) []tuning.Observation {
	if m.anyBudget {
		return func(trials []tuning.TrialRecord) []tuning.Observation {
			return tuning.BestHistory(tuning.Minimize, trials)
		}
	}
	spec := tuning.Spec{
		Objective: tuning.Objective{Metric: "error", Mode: tuning.Minimize},
		Searcher:  tuning.SearcherSpec{Name: tuning.SearcherRandom},
		Scheduler: tuning.SchedulerSpec{Name: m.sched},
	}
	if m.tpe {
		spec.Searcher.Name = tuning.SearcherTPE
	}
	return spec.SearchHistory
}

// runMethod runs m on model (whose seed also seeds the searcher) with the given total budget; target > 0 ends the
// sweep once a report's noise-free error is at or below it.
func runMethod(t testing.TB, m method, model Model, budget int, target float64) *Trace {
	space := Space()
	var s tuning.Searcher
	var err error
	if m.tpe {
		s, err = tuning.NewTPE(space, model.Seed, tuning.Minimize, tuning.TPEConfig{})
	} else {
		s, err = tuning.NewRandom(space, model.Seed)
	}
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Model: model, Searcher: s, MaxConcurrent: benchWorkers,
		MaxBudget: benchMaxBudget, TotalBudget: budget, Target: target, History: m.history()}
	var tr *Trace
	if m.sched == "promotion" {
		tr, err = runPromotion(cfg, max(m.eta, 3))
	} else {
		cfg.Scheduler, err = m.scheduler()
		if err != nil {
			t.Fatal(err)
		}
		tr, err = Run(cfg)
	}
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// summary is one method's result over seeds.
type summary struct {
	name     string
	trials   float64   // mean trials started within the common budget
	regretAt []float64 // mean regret at regretTimes
	// need[s] is the epochs the method ran, on seed s, until a report came
	// within 1% of the best any method found on s with the common budget
	// (its cap when it did not get there; reached counts the others).
	need    []int
	reached int
	cap     int
	// inBudget counts the seeds on which it got there within the common
	// budget.
	inBudget int
	// toOwnRand is the earlier, biased measure: mean epochs to come within
	// 1% of random search's final best, charged the whole common budget
	// when not reached.
	toOwnRand    float64
	decisions    int
	decisionTime time.Duration
}

func (s summary) meanNeed() float64 {
	sum := 0
	for _, n := range s.need {
		sum += n
	}
	return float64(sum) / float64(len(s.need))
}

func (s summary) medianNeed() float64 {
	v := slices.Clone(s.need)
	slices.Sort(v)
	n := len(v)
	return float64(v[(n-1)/2]+v[n/2]) / 2
}

var regretTimes = []time.Duration{time.Hour, 2 * time.Hour, 4 * time.Hour, 8 * time.Hour, 16 * time.Hour}

// parallel runs f(s, i) for every seed s and method i, two at a time.
func parallel(seeds, methods int, f func(s, i int)) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 2)
	for s := range seeds {
		for i := range methods {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sem <- struct{}{}
				defer func() { <-sem }()
				f(s, i)
			}()
		}
	}
	wg.Wait()
}

// compare runs every method on seeds 1..seeds of the model with the given
// noise multiplier, ms[0] being random search.
//
// On each seed every method first runs with the common budget; the target
// is 1% above the lowest noise-free error any of the methods reached (the
// issue's "within 1% of the best found"). Then each method's need is the
// epochs it consumed until its first report at or below the target, in a
// run of the same method on the same seed with the budget raised to
// benchCap, so that a method that did not get there within the common
// budget is charged what it really needs rather than the common budget (a
// lower bound that flatters whoever misses most). Runs are deterministic
// and a raised budget changes nothing before the common budget is nearly
// used, so a need found in the first run with a margin of benchWorkers
// epochs is kept without rerunning.
func compare(t testing.TB, ms []method, seeds int, noise float64) []summary {
	traces := make([][]*Trace, seeds)
	for s := range traces {
		traces[s] = make([]*Trace, len(ms))
	}
	parallel(seeds, len(ms), func(s, i int) {
		traces[s][i] = runMethod(t, ms[i], Model{Seed: uint64(s + 1), Noise: noise}, benchBudget, 0)
	})
	targets := make([]float64, seeds)
	for s := range seeds {
		best := math.Inf(1)
		for _, tr := range traces[s] {
			best = math.Min(best, tr.Best())
		}
		targets[s] = best * 1.01
	}
	need := make([][]int, seeds)
	for s := range need {
		need[s] = make([]int, len(ms))
	}
	parallel(seeds, len(ms), func(s, i int) {
		if used, ok := traces[s][i].BudgetToReach(targets[s]); ok && used <= benchBudget-benchWorkers {
			need[s][i] = used
			return
		}
		tr := runMethod(t, ms[i], Model{Seed: uint64(s + 1), Noise: noise}, ms[i].cap(), targets[s])
		used, ok := tr.BudgetToReach(targets[s])
		if !ok {
			used = ms[i].cap()
		}
		need[s][i] = used
	})
	opt := Optimum(benchMaxBudget)
	out := make([]summary, len(ms))
	for i, m := range ms {
		out[i] = summary{name: m.name, cap: m.cap(), regretAt: make([]float64, len(regretTimes)), need: make([]int, seeds)}
	}
	for s := range seeds {
		for i, tr := range traces[s] {
			sm := &out[i]
			for k, at := range regretTimes {
				sm.regretAt[k] += (tr.BestAt(at) - opt) / float64(seeds)
			}
			sm.need[s] = need[s][i]
			if need[s][i] < ms[i].cap() {
				sm.reached++
			}
			if need[s][i] <= benchBudget {
				sm.inBudget++
			}
			used, ok := tr.BudgetToReach(traces[s][0].Best() * 1.01)
			if !ok {
				used = benchBudget
			}
			sm.toOwnRand += float64(used) / float64(seeds)
			sm.trials += float64(len(tr.Trials)) / float64(seeds)
			sm.decisions += tr.Decisions
			sm.decisionTime += tr.DecisionTime
		}
	}
	return out
}

func table(sums []summary, seeds int, noise float64) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\nparametric curve model (not published data), noise ×%g; seeds 1..%d; common budget %d epochs (100 × %d), cap %d (TPE %d); %d workers\n",
		max(noise, 1), seeds, benchBudget, benchMaxBudget, benchCap, benchCapTPE, benchWorkers)
	fmt.Fprintf(&b, "%-22s %6s", "method", "trials")
	for _, at := range regretTimes {
		fmt.Fprintf(&b, " %8s", "reg@"+strings.TrimSuffix(at.String(), "0m0s"))
	}
	fmt.Fprintf(&b, " %6s %9s %9s %7s %7s %9s %6s\n", "in B", "need", "median", "÷rand", "÷med", "old÷rand", "µs/dec")
	base, baseMed, baseOld := sums[0].meanNeed(), sums[0].medianNeed(), sums[0].toOwnRand
	for _, s := range sums {
		fmt.Fprintf(&b, "%-22s %6.0f", s.name, s.trials)
		for _, r := range s.regretAt {
			fmt.Fprintf(&b, " %8.4f", r)
		}
		fmt.Fprintf(&b, " %3d/%-2d %9.0f %9.0f %7.3f %7.3f %9.3f %6.2f\n", s.inBudget, seeds,
			s.meanNeed(), s.medianNeed(), s.meanNeed()/base, s.medianNeed()/baseMed, s.toOwnRand/baseOld,
			float64(s.decisionTime.Microseconds())/float64(max(1, s.decisions)))
		if s.reached < seeds {
			fmt.Fprintf(&b, "%-22s   (%d of %d seeds not reached within the cap of %d; charged the cap: a lower bound)\n", "", seeds-s.reached, seeds, s.cap)
		}
	}
	return b.String()
}

// BenchmarkSearchEfficiency prints the model's early-rank correlations and
// the comparison tables (b.Logf; -v keeps the log from being cut): every
// method on 20 seeds, then random search and both ASHA variants with the
// model's noise tripled. One iteration takes minutes, mostly TPE.
//
//	go test -run '^$' -bench SearchEfficiency -benchtime 1x -v ./tuning/sim/
func BenchmarkSearchEfficiency(b *testing.B) {
	const seeds = 20
	for b.Loop() {
		for _, noise := range []float64{1, 3} {
			b.Logf("Spearman rank correlation of the value at epochs 1, 3, 9, 27 with the final noise-free error, 3000 random configurations: %.3f",
				rankCorrelation(noise, 3000, []int{1, 3, 9, 27}))
		}
		sums := compare(b, methods, seeds, 1)
		b.Logf("%s", table(sums, seeds, 1))
		noisy := []method{methods[0], methods[2], methods[6]}
		sums = compare(b, noisy, seeds, 3)
		b.Logf("%s", table(sums, seeds, 3))
	}
}

// BenchmarkASHAVariants compares ASHA(random) configurations (η 2, 3, 4;
// grace period 3), Hyperband and the promotion-based ASHA of runPromotion
// with random search, on the default model and with noise ×3 (one iteration;
// random searchers only, so it is quick). The target of each table is set
// by the methods in it.
//
//	go test -run '^$' -bench ASHAVariants -benchtime 1x -v ./tuning/sim/
func BenchmarkASHAVariants(b *testing.B) {
	const seeds = 20
	ms := []method{
		methods[0],
		{name: "asha η=3 (default)", sched: "asha"},
		{name: "asha η=2", sched: "asha", eta: 2},
		{name: "asha η=4", sched: "asha", eta: 4},
		{name: "asha η=3 grace 3", sched: "asha", grace: 3},
		{name: "hyperband η=3", sched: "hyperband"},
		{name: "asha-promotion η=3", sched: "promotion"},
		{name: "asha-promotion η=4", sched: "promotion", eta: 4},
	}
	for b.Loop() {
		for _, noise := range []float64{1, 3} {
			sums := compare(b, ms, seeds, noise)
			b.Logf("%s", table(sums, seeds, noise))
		}
	}
}

// rankCorrelation returns, for each epoch, Spearman's rank correlation
// between the values n random configurations report there and their
// noise-free error at benchMaxBudget: how well early results rank
// configurations under the model.
func rankCorrelation(noise float64, n int, epochs []int) []float64 {
	r, err := tuning.NewRandom(Space(), 1)
	if err != nil {
		panic(err) // a valid constant space
	}
	m := Model{Seed: 1, Noise: noise}
	at := make([][]float64, len(epochs))
	final := make([]float64, n)
	for i := range n {
		p, err := r.Suggest(i, nil)
		if err != nil {
			panic(err)
		}
		cv := m.newCurve(i, p)
		k := 0
		for e := 1; k < len(epochs); e++ {
			v := cv.observe(e)
			if e == epochs[k] {
				at[k] = append(at[k], v)
				k++
			}
		}
		final[i] = cv.clean(benchMaxBudget)
	}
	out := make([]float64, len(epochs))
	fr := ranks(final)
	for k := range epochs {
		er := ranks(at[k])
		var d2 float64
		for i := range fr {
			d2 += (er[i] - fr[i]) * (er[i] - fr[i])
		}
		nf := float64(n)
		out[k] = 1 - 6*d2/(nf*(nf*nf-1))
	}
	return out
}

// ranks returns the rank (0 = smallest) of each value.
func ranks(v []float64) []float64 {
	idx := make([]int, len(v))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(v[a], v[b]) })
	r := make([]float64, len(v))
	for k, i := range idx {
		r[i] = float64(k)
	}
	return r
}

// TestSearchEfficiency asserts the target on random search and
// ASHA(random) (TPE is left to the benchmark: it is too slow for the race
// detector): over 20 seeds, ASHA(random) comes within 1% of the best either
// found with the common budget using at most 1/5 of the epochs random
// search needs for it, by mean and by median, and has lower regret after
// 4 simulated hours. The benchmark reports the actual ratios.
func TestSearchEfficiency(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	const seeds = 20
	sums := compare(t, []method{methods[0], methods[2]}, seeds, 1)
	t.Log(table(sums, seeds, 1))
	rnd, asha := sums[0], sums[1]
	if asha.meanNeed() > rnd.meanNeed()/5 {
		t.Errorf("mean epochs to the target: asha(random) %.0f, random %.0f: more than 1/5", asha.meanNeed(), rnd.meanNeed())
	}
	if asha.medianNeed() > rnd.medianNeed()/5 {
		t.Errorf("median epochs to the target: asha(random) %.0f, random %.0f: more than 1/5", asha.medianNeed(), rnd.medianNeed())
	}
	if asha.regretAt[2] >= rnd.regretAt[2] {
		t.Errorf("regret at 4h: asha(random) %.4f, random %.4f", asha.regretAt[2], rnd.regretAt[2])
	}
}

// BenchmarkControllerOverhead runs an ASHA(random) sweep of 10,000 trials
// and reports the scheduler's real time per decision and the whole
// simulator's time per reported epoch (searcher, scheduler, event queue).
func BenchmarkControllerOverhead(b *testing.B) {
	for b.Loop() {
		s, err := tuning.NewRandom(Space(), 1)
		if err != nil {
			b.Fatal(err)
		}
		a, err := tuning.NewASHA(tuning.ASHAConfig{SchedConfig: tuning.SchedConfig{MinBudget: 1, MaxBudget: benchMaxBudget}, Eta: 3})
		if err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		tr, err := Run(Config{Model: Model{Seed: 1}, Searcher: s, Scheduler: a, MaxConcurrent: 64, MaxBudget: benchMaxBudget, MaxTrials: 10000})
		if err != nil {
			b.Fatal(err)
		}
		wall := time.Since(t0)
		b.ReportMetric(float64(tr.DecisionTime.Nanoseconds())/float64(tr.Decisions)/1e3, "µs/decision")
		b.Logf("10,000 trials, %d decisions: scheduler %.2f µs/decision (%.0f decisions/s); whole simulator %.2f µs/epoch, %v real for %v simulated",
			tr.Decisions, float64(tr.DecisionTime.Nanoseconds())/float64(tr.Decisions)/1e3,
			float64(tr.Decisions)/tr.DecisionTime.Seconds(),
			float64(wall.Nanoseconds())/float64(tr.Decisions)/1e3, wall.Round(time.Millisecond), tr.Reports[len(tr.Reports)-1].Time.Round(time.Minute))
	}
}
