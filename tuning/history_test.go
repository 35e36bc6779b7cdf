package tuning

import (
	"math"
	"testing"
)

// rec builds a trial record from (budget, value) pairs.
func rec(trial int, bv ...float64) TrialRecord {
	r := TrialRecord{Trial: trial, Params: Params{"x": IntValue(int64(trial))}}
	for i := 0; i+1 < len(bv); i += 2 {
		r.Results = append(r.Results, Result{Trial: trial, Budget: int(bv[i]), Value: bv[i+1]})
	}
	return r
}

// val is a wanted observation: has a value v (NaN: diverged) or not.
type val struct {
	has bool
	v   float64
}

func none() val        { return val{} }
func is(v float64) val { return val{has: true, v: v} }
func checkHistory(t *testing.T, got []Observation, trials []TrialRecord, want []val) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d observations, want %d", len(got), len(want))
	}
	for i, o := range got {
		if o.Trial != trials[i].Trial || o.Params["x"] != trials[i].Params["x"] {
			t.Errorf("observation %d is of trial %d %v, want %d %v", i, o.Trial, o.Params, trials[i].Trial, trials[i].Params)
		}
		w := want[i]
		switch {
		case o.HasValue != w.has:
			t.Errorf("trial %d: HasValue %v, want %v", i, o.HasValue, w.has)
		case !w.has && o.Value != 0:
			t.Errorf("trial %d: no value but Value %v", i, o.Value)
		case w.has && !(o.Value == w.v || math.IsNaN(o.Value) && math.IsNaN(w.v)):
			t.Errorf("trial %d: Value %v, want %v", i, o.Value, w.v)
		}
	}
}

func TestBestHistory(t *testing.T) {
	nan, inf := math.NaN(), math.Inf(1)
	tests := []struct {
		name   string
		mode   Mode
		trials []TrialRecord
		want   []val
	}{
		{name: "empty", mode: Minimize},
		{name: "min", mode: Minimize,
			trials: []TrialRecord{rec(0), rec(1, 1, 0.5, 2, 0.3, 3, 0.4), rec(2, 1, 0.9)},
			want:   []val{none(), is(0.3), is(0.9)}},
		{name: "max", mode: Maximize,
			trials: []TrialRecord{rec(0, 1, 0.5, 2, 0.3, 3, 0.4), rec(1, 1, 0.2, 9, 0.6)},
			want:   []val{is(0.5), is(0.6)}},
		{name: "non-finite", mode: Minimize,
			trials: []TrialRecord{rec(0, 1, nan, 2, inf), rec(1, 1, nan, 2, 0.7, 3, nan), rec(2, 1, -inf)},
			want:   []val{is(nan), is(0.7), is(nan)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkHistory(t, BestHistory(tt.mode, tt.trials), tt.trials, tt.want)
		})
	}
}

func TestBudgetHistory(t *testing.T) {
	nan := math.NaN()
	// asha-like: trials 0 and 3 stopped at rung 1 with the best rung-1
	// values; 1 and 2 ran to budget 9; 4 runs at budget 2; 5 has no result.
	asha := []TrialRecord{
		rec(0, 1, 0.10),
		rec(1, 1, 0.50, 3, 0.40, 9, 0.30),
		rec(2, 1, 0.60, 3, 0.35, 9, 0.25),
		rec(3, 1, 0.15),
		rec(4, 1, 0.45, 2, 0.42),
		rec(5),
	}
	tests := []struct {
		name      string
		mode      Mode
		minPoints int
		trials    []TrialRecord
		want      []val
	}{
		{name: "two reached 9: stopped trials left out", mode: Minimize, minPoints: 2, trials: asha,
			want: []val{none(), is(0.30), is(0.25), none(), none(), none()}},
		{name: "three reached 2: valued within budget 3", mode: Minimize, minPoints: 3, trials: asha,
			want: []val{none(), is(0.40), is(0.35), none(), is(0.42), none()}},
		{name: "five reached 1: valued at rung 1", mode: Minimize, minPoints: 5, trials: asha,
			want: []val{is(0.10), is(0.50), is(0.60), is(0.15), is(0.45), none()}},
		{name: "too few reported: best at any budget", mode: Minimize, minPoints: 6, trials: asha,
			want: []val{is(0.10), is(0.30), is(0.25), is(0.15), is(0.42), none()}},
		{name: "min points below 1 counts as 1", mode: Minimize, minPoints: 0, trials: asha,
			want: []val{none(), is(0.30), is(0.25), none(), none(), none()}},
		{name: "max keeps the best within the budget", mode: Maximize, minPoints: 3, trials: asha,
			want: []val{none(), is(0.50), is(0.60), none(), is(0.45), none()}},
		{name: "unaligned budgets: first result at or past b", mode: Minimize, minPoints: 2,
			trials: []TrialRecord{rec(0, 100, 0.5, 250, 0.4, 400, 0.1), rec(1, 120, 0.6, 240, 0.3), rec(2, 90, 0.05)},
			want:   []val{is(0.4), is(0.3), none()}},
		{name: "diverged before b is worst", mode: Minimize, minPoints: 2,
			trials: []TrialRecord{rec(0, 1, nan, 3, nan), rec(1, 1, 0.5, 3, 0.4), rec(2, 1, 0.01)},
			want:   []val{is(nan), is(0.4), none()}},
		{name: "empty", mode: Minimize, minPoints: 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkHistory(t, BudgetHistory(tt.mode, tt.minPoints, tt.trials), tt.trials, tt.want)
		})
	}
}

// TestSearchHistory: fifo keeps the best value at any budget; an
// early-stopping scheduler values trials at a common budget reached by
// n_startup trials (default 10).
func TestSearchHistory(t *testing.T) {
	var trials []TrialRecord
	for i := range 12 { // 0..9 stopped at rung 1 with low values; 10, 11 ran to 9
		trials = append(trials, rec(i, 1, 0.01*float64(i+1)))
	}
	trials[10] = rec(10, 1, 0.5, 3, 0.4, 9, 0.3)
	trials[11] = rec(11, 1, 0.6, 3, 0.45, 9, 0.35)
	rung1 := make([]val, 12)
	for i := range 10 {
		rung1[i] = is(0.01 * float64(i+1))
	}
	rung1[10], rung1[11] = is(0.5), is(0.6)
	best := append(append([]val(nil), rung1[:10]...), is(0.3), is(0.35))
	top := make([]val, 12)
	top[10], top[11] = is(0.3), is(0.35)
	tests := []struct {
		name      string
		scheduler string
		tpe       TPEConfig
		want      []val
	}{
		{name: "fifo", scheduler: SchedulerFIFO, want: best},
		{name: "default scheduler", scheduler: "", want: best},
		{name: "asha, n_startup 10", scheduler: SchedulerASHA, want: rung1},
		{name: "asha, n_startup 2", scheduler: SchedulerASHA, tpe: TPEConfig{NStartup: 2}, want: top},
		{name: "median, n_startup 2", scheduler: SchedulerMedian, tpe: TPEConfig{NStartup: 2}, want: top},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Spec{Objective: Objective{Metric: "loss", Mode: Minimize},
				Searcher:  SearcherSpec{Name: SearcherTPE, TPE: tt.tpe},
				Scheduler: SchedulerSpec{Name: tt.scheduler}}
			checkHistory(t, s.SearchHistory(trials), trials, tt.want)
		})
	}
}
