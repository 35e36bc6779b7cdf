package tuning

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
)

// TestParseLimits feeds sweep specs whose sizes and counts are far past
// the limits and checks the exact error, which names the field, its limit
// and the value. Before the limits some of these spun a core or exhausted
// memory (grid_points: 1000000000 made NewGrid list a billion values); a
// limit checked after the work it bounds would hang here and the test
// binary's timeout would fail it.
func TestParseLimits(t *testing.T) {
	const head = "name: s\n" + baseJob + "objective: {metric: m, mode: min}\n" // 5 lines
	const lr = "search_space: {lr: {type: uniform, low: 0.1, high: 0.2}}\n"
	long := strings.Repeat("x", 10_000)
	manyValues := "[" + strings.TrimSuffix(strings.Repeat("1,", 100_000), ",") + "]"
	tests := []struct {
		name string
		yaml string // after head
		want string
	}{
		{"grid_points uniform", "searcher: {name: grid}\nsearch_space:\n  lr: {type: uniform, low: 0.001, high: 0.1, grid_points: 1000000000}\n",
			"sweep.yaml:8: search_space.lr: grid_points must be in 0..10000, got 1000000000"},
		{"grid_points int", "searcher: {name: grid}\nsearch_space:\n  batch: {type: int, low: 1, high: 8, grid_points: 2000000000}\n",
			"sweep.yaml:8: search_space.batch: grid_points must be in 0..10000, got 2000000000"},
		{"grid_points past int64", "search_space:\n  lr: {type: uniform, low: 0.001, high: 0.1, grid_points: 99999999999999999999}\n",
			"sweep.yaml:7: search_space.lr.grid_points: 99999999999999999999 is not an integer"},
		{"grid_points with random search", "search_space:\n  lr: {type: uniform, low: 0.001, high: 0.1, grid_points: 1000000000}\n",
			"sweep.yaml:7: search_space.lr: grid_points must be in 0..10000, got 1000000000"},
		{"grid product", "searcher: {name: grid}\nsearch_space:\n" +
			"  lr: {type: uniform, low: 0.001, high: 0.1, grid_points: 10000}\n" +
			"  momentum: {type: uniform, low: 0.1, high: 0.9, grid_points: 10000}\n" +
			"  weight_decay: {type: uniform, low: 0, high: 0.1, grid_points: 10000}\n",
			"sweep.yaml:7: search_space: grid search: the grid has 1000000000000 points (lr 10000 × momentum 10000 × weight_decay 10000), the limit is 1048576; use fewer values or random search"},
		{"int range on a grid", "searcher: {name: grid}\nsearch_space:\n  seed: {type: int, low: 0, high: 9007199254740992}\n",
			"sweep.yaml:8: search_space.seed: 0..9007199254740992 has more than 10000 integers for a grid; set grid_points"},
		{"choice list", "search_space:\n  seed: {type: choice, values: " + manyValues + "}\n",
			"sweep.yaml:7: search_space.seed.values: has 100000 values, the limit is 1000"},
		{"choice string", "search_space:\n  optimizer: {type: choice, values: [adam, " + long + "]}\n",
			"sweep.yaml:7: search_space.optimizer: value 2 is 10000 bytes, the limit is 128"},
		{"max_trials", "search_space: {lr: {type: uniform, low: 0.1, high: 0.2}}\nmax_trials: 1000000000000\n",
			"sweep.yaml:7: max_trials: must be in 1..100000, got 1000000000000"},
		{"max_concurrent", "search_space: {lr: {type: uniform, low: 0.1, high: 0.2}}\nmax_concurrent: 1000000000000\n",
			"sweep.yaml:7: max_concurrent: must be in 1..max_trials (20), got 1000000000000"},
		{"tpe work", "search_space: {lr: {type: uniform, low: 0.1, high: 0.2}}\nsearcher: {name: tpe, n_candidates: 10000}\nmax_trials: 100000\n",
			"sweep.yaml:8: max_trials: with searcher tpe, max_trials × n_candidates must be at most 262144 (each suggestion scores every candidate against every trial), got 100000 × 10000; use at most 26 trials or fewer candidates"},
		{"tpe default candidates", "search_space: {lr: {type: uniform, low: 0.1, high: 0.2}}\nsearcher: {name: tpe}\nmax_trials: 20000\n",
			"sweep.yaml:8: max_trials: with searcher tpe, max_trials × n_candidates must be at most 262144 (each suggestion scores every candidate against every trial), got 20000 × 24; use at most 10922 trials or fewer candidates"},
		{"n_candidates", "search_space: {lr: {type: uniform, low: 0.1, high: 0.2}}\nsearcher: {name: tpe, n_candidates: 1000000000}\n",
			"sweep.yaml:7: searcher.n_candidates: must be in 1..10000, got 1000000000"},
		{"n_startup", "search_space: {lr: {type: uniform, low: 0.1, high: 0.2}}\nsearcher: {name: tpe, n_startup: 1000000000}\n",
			"sweep.yaml:7: searcher.n_startup: must be in 2..100000, got 1000000000"},
		{"reduction_factor", "search_space: {lr: {type: uniform, low: 0.1, high: 0.2}}\nscheduler: {name: hyperband, reduction_factor: 1000000000}\n",
			"sweep.yaml:7: scheduler.reduction_factor: must be in 2..100, got 1000000000"},
		{"min_trials", "search_space: {lr: {type: uniform, low: 0.1, high: 0.2}}\nscheduler: {name: median, min_trials: 1000000000000}\n",
			"sweep.yaml:7: scheduler.min_trials: must be in 0..100000, got 1000000000000"},
		{"budget epochs", "search_space: {lr: {type: uniform, low: 0.1, high: 0.2}}\nscheduler: {name: hyperband, reduction_factor: 2}\nbudget: {max: 1000000000}\n",
			"sweep.yaml:8: budget.max: must be at most 100000 with unit epochs (it sets the job's epochs), got 1000000000"},
		{"budget steps", "search_space: {lr: {type: uniform, low: 0.1, high: 0.2}}\nscheduler: {name: asha, reduction_factor: 2}\nbudget: {unit: steps, max: 9223372036854775807}\n",
			"sweep.yaml:8: budget.max: must be at most 1000000000, got 9223372036854775807"},
		{"budget min", "search_space: {lr: {type: uniform, low: 0.1, high: 0.2}}\nbudget: {unit: steps, min: 9223372036854775807, max: 9223372036854775807}\n",
			"sweep.yaml:7: budget.min: must be in 1..1000000000, got 9223372036854775807\nsweep.yaml:7: budget.max: must be at most 1000000000, got 9223372036854775807"},
		{"job epochs", "#\nname: s\nobjective: {metric: m, mode: min}\n" + lr + "job: {name: t, dataset: shapes@v1, hyperparameters: {epochs: 1000000000000}}\n",
			"sweep.yaml:5: job.hyperparameters.epochs: must be in 1..100000, got 1000000000000"},
		{"job ranks", "#\nname: s\nobjective: {metric: m, mode: min}\n" + lr + "job: {name: t, dataset: shapes@v1, resources: {ranks: 1000000000000}}\n",
			"sweep.yaml:5: job.resources.ranks: must be in 1..1024, got 1000000000000"},
		{"metric", "#\nname: s\n" + baseJob + lr + "objective: {metric: " + long + ", mode: min}\n",
			"sweep.yaml:7: objective.metric: is 10000 bytes, the limit is 128"},
		{"name", "#\n" + baseJob + lr + "objective: {metric: m, mode: min}\nname: " + long + "\n",
			"sweep.yaml:7: name: is 10000 bytes, the limit is 128 (a finished sweep registers its best checkpoint as a model of this name)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := head + tt.yaml
			if strings.HasPrefix(tt.yaml, "#") { // the whole spec
				src = tt.yaml
			}
			_, err := Parse([]byte(src), "sweep.yaml")
			if err == nil || err.Error() != tt.want {
				t.Errorf("Parse:\n%v\nwant:\n%s", err, tt.want)
			}
		})
	}
}

// TestConstructorLimits calls the searchers and schedulers directly with
// configurations no validated spec has, as a caller that skipped
// validation would, and checks that each refuses them (or, for the
// schedulers' rung loops, stays small) rather than spinning or allocating
// in proportion to the numbers. Before, a budget.max of MaxInt64 made
// NewHyperband loop forever and NewASHA overflow into an endless loop.
func TestConstructorLimits(t *testing.T) {
	lr := Param{Name: "lr", Type: Uniform, Low: 0.1, High: 0.2}
	sp := func(ps ...Param) Space { return Space{Params: ps} }
	many := make([]Param, MaxParams+1)
	for i := range many {
		many[i] = Param{Name: fmt.Sprintf("p%03d", i), Type: Int, Low: 0, High: 9}
	}
	choices := make([]Value, MaxChoices+1)
	for i := range choices {
		choices[i] = IntValue(int64(i))
	}
	grid := []struct {
		name  string
		space Space
		want  string
	}{
		{"grid_points", sp(Param{Name: "lr", Type: Uniform, Low: 0.1, High: 0.2, GridPoints: math.MaxInt}),
			"invalid search space: lr: grid_points must be in 0..10000, got 9223372036854775807"},
		{"int range", sp(Param{Name: "seed", Type: Int, Low: -1 << 53, High: 1 << 53}),
			"invalid search space: seed: -9007199254740992..9007199254740992 has more than 10000 integers for a grid; set grid_points"},
		{"product", sp(Param{Name: "a", Type: Int, High: 9999}, Param{Name: "b", Type: Int, High: 9999}, Param{Name: "c", Type: Int, High: 9999}),
			"invalid search space: the grid has more than 1048576 points (the product of every parameter's grid values); use fewer values or random search"},
		{"params", Space{Params: many}, "invalid search space: 65 parameters, the limit is 64"},
		{"choices", sp(Param{Name: "c", Type: Choice, Values: choices}), "invalid search space: c: choice has 1001 values, the limit is 1000"},
		{"range overflows", sp(Param{Name: "x", Type: Uniform, Low: -math.MaxFloat64, High: math.MaxFloat64}),
			"invalid search space: x: high - low must be a finite number, got 1.7976931348623157e+308 - -1.7976931348623157e+308"},
	}
	for _, tt := range grid {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewGrid(tt.space)
			if err == nil || err.Error() != tt.want {
				t.Errorf("NewGrid: %v\nwant %s", err, tt.want)
			}
			if !errors.Is(err, ErrInvalidSpace) {
				t.Errorf("error does not wrap ErrInvalidSpace")
			}
		})
	}

	// Schedulers: budgets and η past the limits are refused; within them
	// the rung loops end (at most 63 rungs) whatever the values.
	sched := []struct {
		name string
		cfg  ASHAConfig
		want string
	}{
		{"budget", ASHAConfig{SchedConfig: SchedConfig{MinBudget: 1, MaxBudget: math.MaxInt}, Eta: 2},
			"scheduler: max_budget 9223372036854775807 is above the limit 1000000000"},
		{"eta", ASHAConfig{SchedConfig: SchedConfig{MinBudget: 1, MaxBudget: 9}, Eta: math.MaxInt},
			"scheduler: reduction factor 9223372036854775807 must be in 2..100"},
	}
	for _, tt := range sched {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewASHA(tt.cfg); err == nil || err.Error() != tt.want {
				t.Errorf("NewASHA: %v, want %s", err, tt.want)
			}
			if _, err := NewHyperband(tt.cfg); err == nil || err.Error() != tt.want {
				t.Errorf("NewHyperband: %v, want %s", err, tt.want)
			}
		})
	}
	h, err := NewHyperband(ASHAConfig{SchedConfig: SchedConfig{MinBudget: 1, MaxBudget: MaxBudgetLimit}, Eta: 2})
	if err != nil {
		t.Fatal(err)
	}
	if h.Brackets() != 30 || len(h.BracketRungs(0)) != 30 {
		t.Errorf("hyperband to %d with η 2: %d brackets, %d rungs in the first; want 30 and 30", MaxBudgetLimit, h.Brackets(), len(h.BracketRungs(0)))
	}
	for _, c := range []struct{ lo, hi, eta int }{{1, math.MaxInt, 2}, {3, math.MaxInt, math.MaxInt / 2}, {math.MaxInt, math.MaxInt, 2}} {
		if g := geometric(c.lo, c.hi, c.eta, false); len(g) > 63 || g[len(g)-1] > c.hi || g[0] != c.lo {
			t.Errorf("geometric(%d, %d, %d) = %d values, last %d", c.lo, c.hi, c.eta, len(g), g[len(g)-1])
		}
	}

	// A spec that arrives as JSON skips Parse: Validate must refuse it
	// before NewScheduler or NewSearcher runs.
	js := `{"name": "s", "job": {"name": "t", "dataset": "shapes@v1", "model": "unet-s",
		"hyperparameters": {"epochs": 1, "batch": 8, "lr": 0.001, "optimizer": "adam", "momentum": 0.9},
		"resources": {"ranks": 1, "cpus_per_rank": 1}, "priority": 50},
		"search_space": {"params": [{"name": "lr", "type": "uniform", "low": 0.1, "high": 0.2, "grid_points": 1000000000000}]},
		"objective": {"metric": "m", "mode": "min"}, "searcher": {"name": "grid"},
		"scheduler": {"name": "hyperband", "reduction_factor": 2},
		"max_trials": 1000000000000, "max_concurrent": 1, "budget": {"unit": "steps", "min": 1, "max": 9223372036854775807}, "seed": 1}`
	var s Spec
	if err := json.Unmarshal([]byte(js), &s); err != nil {
		t.Fatal(err)
	}
	want := "search_space.lr: grid_points must be in 0..10000, got 1000000000000\n" +
		"max_trials: must be in 1..100000, got 1000000000000\n" +
		"budget.max: must be at most 1000000000, got 9223372036854775807"
	if err := s.Validate(); err == nil || err.Error() != want {
		t.Errorf("Validate:\n%v\nwant:\n%s", err, want)
	}
	if _, err := NewScheduler(s); err == nil {
		t.Errorf("NewScheduler accepted budget.max %d", s.Budget.Max)
	}
	if _, err := s.NewSearcher(); err == nil {
		t.Errorf("NewSearcher accepted grid_points %d", s.SearchSpace.Params[0].GridPoints)
	}

	// TPE refuses a history larger than MaxTPEWork allows instead of
	// scoring every candidate against it.
	tpe, err := NewTPE(sp(lr), 1, Minimize, TPEConfig{NCandidates: MaxTPECandidates})
	if err != nil {
		t.Fatal(err)
	}
	hist := make([]Observation, MaxTPEWork/MaxTPECandidates+1)
	for i := range hist {
		hist[i] = Observation{Trial: i, Params: Params{"lr": Float(0.15)}, Value: float64(i), HasValue: true}
	}
	if _, err := tpe.Suggest(len(hist), hist); err == nil || !strings.Contains(err.Error(), "27 trials × 10000 candidates") {
		t.Errorf("TPE.Suggest with %d trials: %v", len(hist), err)
	}
}
