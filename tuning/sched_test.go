package tuning

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

type step struct {
	r    Result
	want Decision
}

// run feeds steps to s and checks each decision; with negate it flips the
// sign of every value, for a scheduler built with the opposite direction.
func run(t *testing.T, s Scheduler, steps []step, negate bool) {
	t.Helper()
	for i, st := range steps {
		r := st.r
		if negate {
			r.Value = -r.Value
		}
		if got := s.OnResult(r); got != st.want {
			t.Fatalf("step %d %+v: got %v, want %v", i+1, r, got, st.want)
		}
	}
}

func TestFIFO(t *testing.T) {
	f, err := NewFIFO(SchedConfig{MinBudget: 1, MaxBudget: 3})
	if err != nil {
		t.Fatal(err)
	}
	run(t, f, []step{
		{Result{0, 1, 9}, DecisionContinue},
		{Result{1, 1, 0}, DecisionContinue},
		{Result{0, 2, 99}, DecisionContinue},
		{Result{0, 3, 1e9}, DecisionComplete},
		{Result{0, 4, 0}, DecisionComplete}, // terminal stays terminal
	}, false)
}

// TestASHAWorkedExample checks ASHA against a worked example.
//
// min_budget 1, max_budget 9, η = 3, minimize: rungs at 1 and 3 (9 is the
// max budget, where trials complete). A trial passes a rung iff fewer than
// keep = max(1, ⌊n/3⌋) recorded values there are strictly better than its
// own, n counting its own.
//
//	 #  trial budget value  rung: recorded after insert     n keep better → decision
//	 1  T0    1      0.50   r1: .50                          1  1    0    → promote
//	 2  T1    1      0.70   r1: .50 .70                      2  1    1    → stop
//	 3  T2    1      0.40   r1: .40 .50 .70                  3  1    0    → promote
//	 4  T3    1      0.60   r1: .40 .50 .60 .70              4  1    2    → stop
//	 5  T0    2      0.45   (no rung crossed)                           → continue
//	 6  T4    1      0.45   r1: .40 .45 .50 .60 .70          5  1    1    → stop
//	 7  T5    1      0.30   r1: .30 .40 .45 .50 .60 .70      6  2    0    → promote
//	 8  T0    3      0.42   r3: .42                          1  1    0    → promote
//	 9  T2    3      0.50   r3: .42 .50                      2  1    1    → stop
//	10  T6    1      0.41   r1: .30 .40 .41 .45 … (7)        7  2    2    → stop
//	11  T7    4      0.20   first report crosses r1 and r3:
//	                        r1: (8 values)                   8  2    0    pass
//	                        r3: .20 .42 .50                  3  1    0    → promote
//	12  T0    9      0.35   max budget                                  → complete
//	13  T1    2      0.10   T1 was stopped                              → stop
//	14  T5    1      9.00   budget not above T5's last (1), ignored     → continue
//	15  T5    3      0.60   r3: .20 .42 .50 .60              4  1    3    → stop
func TestASHAWorkedExample(t *testing.T) {
	steps := []step{
		{Result{0, 1, 0.50}, DecisionPromote},
		{Result{1, 1, 0.70}, DecisionStop},
		{Result{2, 1, 0.40}, DecisionPromote},
		{Result{3, 1, 0.60}, DecisionStop},
		{Result{0, 2, 0.45}, DecisionContinue},
		{Result{4, 1, 0.45}, DecisionStop},
		{Result{5, 1, 0.30}, DecisionPromote},
		{Result{0, 3, 0.42}, DecisionPromote},
		{Result{2, 3, 0.50}, DecisionStop},
		{Result{6, 1, 0.41}, DecisionStop},
		{Result{7, 4, 0.20}, DecisionPromote},
		{Result{0, 9, 0.35}, DecisionComplete},
		{Result{1, 2, 0.10}, DecisionStop},
		{Result{5, 1, 9.00}, DecisionContinue},
		{Result{5, 3, 0.60}, DecisionStop},
	}
	for _, maximize := range []bool{false, true} {
		a, err := NewASHA(ASHAConfig{SchedConfig: SchedConfig{Maximize: maximize, MinBudget: 1, MaxBudget: 9}, Eta: 3})
		if err != nil {
			t.Fatal(err)
		}
		if got := a.Rungs(); !slices.Equal(got, []int{1, 3}) {
			t.Fatalf("rungs %v, want [1 3]", got)
		}
		run(t, a, steps, maximize)
		if a.RungSize(0) != 8 || a.RungSize(1) != 4 {
			t.Fatalf("rung sizes %d %d, want 8 4", a.RungSize(0), a.RungSize(1))
		}
	}
}

// TestASHAGracePeriod: min 1, max 27, η 3, grace 2 → rungs 1, 3, 9 minus
// those below 2 = [3 9]; a bad value at budget 1 is not judged.
func TestASHAGracePeriod(t *testing.T) {
	a, err := NewASHA(ASHAConfig{SchedConfig: SchedConfig{MinBudget: 1, MaxBudget: 27}, Eta: 3, GracePeriod: 2})
	if err != nil {
		t.Fatal(err)
	}
	if got := a.Rungs(); !slices.Equal(got, []int{3, 9}) {
		t.Fatalf("rungs %v, want [3 9]", got)
	}
	run(t, a, []step{
		{Result{0, 1, 0.1}, DecisionContinue},
		{Result{1, 1, 5.0}, DecisionContinue}, // worse, but below the grace period
		{Result{0, 3, 0.1}, DecisionPromote},
		{Result{1, 3, 5.0}, DecisionStop},
	}, false)
}

func TestSchedulerConfigErrors(t *testing.T) {
	for _, c := range []ASHAConfig{
		{SchedConfig: SchedConfig{MinBudget: 0, MaxBudget: 9}},
		{SchedConfig: SchedConfig{MinBudget: 5, MaxBudget: 4}},
		{SchedConfig: SchedConfig{MinBudget: 1, MaxBudget: 9}, Eta: 1},
	} {
		if _, err := NewASHA(c); err == nil {
			t.Errorf("NewASHA(%+v): no error", c)
		}
		if _, err := NewHyperband(c); err == nil {
			t.Errorf("NewHyperband(%+v): no error", c)
		}
	}
	if _, err := NewMedian(MedianConfig{SchedConfig: SchedConfig{MinBudget: 1, MaxBudget: 9}, MinTrials: -1}); err == nil {
		t.Error("NewMedian with negative MinTrials: no error")
	}
}

// TestHyperbandWorkedExample: min 1, max 9, η 3 → s_max = ⌊log₃ 9⌋ = 2,
// three brackets: s=0 rungs [1 3], s=1 rungs [3], s=2 no rungs (runs every
// trial to 9). Trial i goes to bracket i mod 3.
//
//	#  trial (bracket) budget value  → decision
//	1  T0 (0)  1  0.50  b0 r1: .50         n1 keep1 better0 → promote
//	2  T3 (0)  1  0.60  b0 r1: .50 .60     n2 keep1 better1 → stop
//	3  T1 (1)  1  0.90  no rung at 1 in b1                 → continue
//	4  T1 (1)  3  0.90  b1 r3: .90         n1               → promote
//	5  T4 (1)  3  0.95  b1 r3: .90 .95     n2 keep1 better1 → stop
//	6  T2 (2)  3  10    b2 has no rungs                    → continue
//	7  T2 (2)  9  10    max budget                          → complete
//	8  T6 (0)  1  0.55  b0 r1: .50 .55 .60 n3 keep1 better1 → stop
func TestHyperbandWorkedExample(t *testing.T) {
	steps := []step{
		{Result{0, 1, 0.50}, DecisionPromote},
		{Result{3, 1, 0.60}, DecisionStop},
		{Result{1, 1, 0.90}, DecisionContinue},
		{Result{1, 3, 0.90}, DecisionPromote},
		{Result{4, 3, 0.95}, DecisionStop},
		{Result{2, 3, 10}, DecisionContinue},
		{Result{2, 9, 10}, DecisionComplete},
		{Result{6, 1, 0.55}, DecisionStop},
	}
	for _, maximize := range []bool{false, true} {
		h, err := NewHyperband(ASHAConfig{SchedConfig: SchedConfig{Maximize: maximize, MinBudget: 1, MaxBudget: 9}, Eta: 3})
		if err != nil {
			t.Fatal(err)
		}
		if h.Brackets() != 3 {
			t.Fatalf("brackets %d, want 3", h.Brackets())
		}
		for s, want := range [][]int{{1, 3}, {3}, nil} {
			if got := h.BracketRungs(s); !slices.Equal(got, want) {
				t.Fatalf("bracket %d rungs %v, want %v", s, got, want)
			}
		}
		run(t, h, steps, maximize)
	}
	// max 10: s_max = ⌊log₃ 10⌋ = 2; the last bracket has one rung at 9.
	h, err := NewHyperband(ASHAConfig{SchedConfig: SchedConfig{MinBudget: 1, MaxBudget: 10}})
	if err != nil {
		t.Fatal(err)
	}
	if h.Brackets() != 3 || !slices.Equal(h.BracketRungs(2), []int{9}) || h.Bracket(-1) != 2 {
		t.Fatalf("brackets %d, last rungs %v, bracket(-1) %d", h.Brackets(), h.BracketRungs(2), h.Bracket(-1))
	}
}

// TestMedianWorkedExample: min 1, max 4, grace 2, min trials 2, minimize.
//
//	trial  budget:value            decisions
//	T0     1:1.0 2:0.8 3:0.6 4:0.5  continue ×3 (no other trials), complete
//	T1     1:0.9 2:0.7 3:0.5 4:0.4  b1 grace; b2 only 1 other (T0) < 2; b3
//	                                only T0 again; b4 complete
//	T2     1:1.2                    grace → continue
//	T2     2:1.1   others' running averages to 2: T0 (1.0+0.8)/2 = 0.9,
//	               T1 (0.9+0.7)/2 = 0.8 → median 0.85; best 1.1 > 0.85 → stop
//	T3     1:1.0                    grace → continue
//	T3     2:0.86  others to 2: T0 0.9, T1 0.8, T2 (1.2+1.1)/2 = 1.15 (a
//	               stopped trial still counts) → median 0.9; 0.86 ≤ 0.9 → continue
//	T3     3:0.7   others reaching 3: T0 (1.0+0.8+0.6)/3 = 0.8,
//	               T1 (0.9+0.7+0.5)/3 = 0.7 → median 0.75; best 0.7 → continue
//	T3     4:0.9   max budget → complete
//	T4     2:0.95  (first report at 2) others: T0 .9 T1 .8 T2 1.15 T3 .93
//	               → median (0.9+0.93)/2 = 0.915; 0.95 > 0.915 → stop
func TestMedianWorkedExample(t *testing.T) {
	steps := []step{
		{Result{0, 1, 1.0}, DecisionContinue},
		{Result{0, 2, 0.8}, DecisionContinue},
		{Result{0, 3, 0.6}, DecisionContinue},
		{Result{0, 4, 0.5}, DecisionComplete},
		{Result{1, 1, 0.9}, DecisionContinue},
		{Result{1, 2, 0.7}, DecisionContinue},
		{Result{1, 3, 0.5}, DecisionContinue},
		{Result{1, 4, 0.4}, DecisionComplete},
		{Result{2, 1, 1.2}, DecisionContinue},
		{Result{2, 2, 1.1}, DecisionStop},
		{Result{3, 1, 1.0}, DecisionContinue},
		{Result{3, 2, 0.86}, DecisionContinue},
		{Result{3, 3, 0.7}, DecisionContinue},
		{Result{3, 4, 0.9}, DecisionComplete},
		{Result{4, 2, 0.95}, DecisionStop},
		{Result{2, 3, 0.0}, DecisionStop}, // terminal stays terminal
	}
	for _, maximize := range []bool{false, true} {
		m, err := NewMedian(MedianConfig{SchedConfig: SchedConfig{Maximize: maximize, MinBudget: 1, MaxBudget: 4}, GracePeriod: 2, MinTrials: 2})
		if err != nil {
			t.Fatal(err)
		}
		run(t, m, steps, maximize)
	}
}

func TestMedianOf(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{
		{[]float64{3}, 3},
		{[]float64{3, 1}, 2},
		{[]float64{5, 1, 4, 2, 3}, 3},
		{[]float64{2, 2, 2, 1, 9, 9}, 2},
		{[]float64{6, 5, 4, 3, 2, 1, 0, 7}, 3.5},
	} {
		if got := median(slices.Clone(c.in)); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

// randomResults returns a plausible interleaving of reports from n trials.
func randomResults(seed uint64, n, maxBudget int) []Result {
	rng := rand.New(rand.NewPCG(seed, 1))
	next := make([]int, n)
	var out []Result
	for len(out) < n*maxBudget/2 {
		tr := rng.IntN(n)
		next[tr] += 1 + rng.IntN(2)
		if next[tr] > maxBudget {
			continue
		}
		out = append(out, Result{Trial: tr, Budget: next[tr], Value: rng.Float64() / float64(next[tr])})
	}
	return out
}

func newSchedulers(t testing.TB, maximize bool) map[string]func() Scheduler {
	sc := SchedConfig{Maximize: maximize, MinBudget: 1, MaxBudget: 27}
	mk := func(s Scheduler, err error) Scheduler {
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	return map[string]func() Scheduler{
		"fifo":      func() Scheduler { return mk(NewFIFO(sc)) },
		"asha":      func() Scheduler { return mk(NewASHA(ASHAConfig{SchedConfig: sc})) },
		"hyperband": func() Scheduler { return mk(NewHyperband(ASHAConfig{SchedConfig: sc})) },
		"median":    func() Scheduler { return mk(NewMedian(MedianConfig{SchedConfig: sc})) },
	}
}

// TestSchedulerReplay: a scheduler rebuilt from the log after a failover
// in the middle of a sweep repeats every decision and continues identically.
func TestSchedulerReplay(t *testing.T) {
	log := randomResults(7, 60, 27)
	for _, maximize := range []bool{false, true} {
		for name, mk := range newSchedulers(t, maximize) {
			want := Replay(mk(), log)
			stops := 0
			for _, d := range want {
				if d == DecisionStop {
					stops++
				}
			}
			if name != "fifo" && stops == 0 {
				t.Errorf("%s: no stop in %d results; the test exercises nothing", name, len(log))
			}
			cut := len(log) / 2
			old := mk()
			first := Replay(old, log[:cut])
			rebuilt := mk()
			again := Replay(rebuilt, log[:cut])
			rest := Replay(rebuilt, log[cut:])
			got := append(first, rest...)
			if !slices.Equal(got, want) || !slices.Equal(again, first) {
				t.Errorf("%s maximize=%v: replay after failover diverged", name, maximize)
			}
		}
	}
}

// BenchmarkSchedulerDecision measures one decision with 10,000 trials that
// have already reported (controller overhead; target < 1 ms).
func BenchmarkSchedulerDecision(b *testing.B) {
	const trials = 10000
	warm := randomResults(3, trials, 27)
	for _, name := range []string{"fifo", "asha", "hyperband", "median"} {
		b.Run(name, func(b *testing.B) {
			s := newSchedulers(b, false)[name]()
			Replay(s, warm)
			rng := rand.New(rand.NewPCG(9, 9))
			budget := 28
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				// fresh trials reporting at budgets that cross rungs.
				s.OnResult(Result{Trial: trials + i, Budget: 1 + rng.IntN(budget-1), Value: rng.Float64()})
			}
		})
	}
}

func TestNewScheduler(t *testing.T) {
	base := Spec{Objective: Objective{Metric: "val_loss", Mode: Minimize}, Budget: Budget{Min: 1, Max: 9}}
	for _, c := range []struct {
		name string
		want string
	}{{"", "*tuning.FIFO"}, {"fifo", "*tuning.FIFO"}, {"asha", "*tuning.ASHA"}, {"hyperband", "*tuning.Hyperband"}, {"median", "*tuning.Median"}} {
		s := base
		s.Scheduler.Name = c.name
		got, err := NewScheduler(s)
		if err != nil {
			t.Fatalf("%q: %v", c.name, err)
		}
		if typ := fmt.Sprintf("%T", got); typ != c.want {
			t.Errorf("%q: got %s, want %s", c.name, typ, c.want)
		}
	}
	s := base
	s.Scheduler.Name = "bohb"
	if _, err := NewScheduler(s); err == nil {
		t.Error("unknown scheduler: no error")
	}
	// Hyperband honours a grace period above a bracket's first rung.
	s.Scheduler = SchedulerSpec{Name: SchedulerHyperband, GracePeriod: 2}
	h, err := NewScheduler(s)
	if err != nil {
		t.Fatal(err)
	}
	if got := h.(*Hyperband).BracketRungs(0); !slices.Equal(got, []int{3}) {
		t.Errorf("bracket 0 rungs with grace 2: %v, want [3]", got)
	}
	// max mode: the better value continues.
	s.Objective.Mode, s.Scheduler = Maximize, SchedulerSpec{Name: SchedulerASHA}
	a, err := NewScheduler(s)
	if err != nil {
		t.Fatal(err)
	}
	run(t, a, []step{{Result{0, 1, 0.5}, DecisionPromote}, {Result{1, 1, 0.9}, DecisionPromote}, {Result{2, 1, 0.1}, DecisionStop}}, false)
}
