package tuning

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/trainctl/trainctl/jobspec"
)

// FuzzParseSweepSpec feeds arbitrary bytes to Parse. It must never panic,
// and its errors wrap jobspec.ErrInvalid. A spec it accepts must pass
// Validate, build its searcher and scheduler, and give a few suggestions,
// each of which makes a valid trial job (TrialJob), with a history long
// enough for TPE to model; the scheduler then judges a few results. That
// work must end within a generous deadline and allocate far less than the
// limits allow a spec to ask for: a spin or a large allocation is a limit
// missing. The seeds run with go test; `make fuzz` explores.
func FuzzParseSweepSpec(f *testing.F) {
	seeds := []string{
		minimal,
		"base: &b {name: t, dataset: shapes@v1}\nname: s\njob: *b\nsearch_space: {lr: null, batch: {type: int, low: 1, high: 8}, optimizer: {type: choice, values: [{a: 1}, [1]]}}\nobjective: {metric: m, mode: max}\n",
		"name: s\njob: [1]\nsearch_space: [lr]\nobjective: x\nsearcher: 3\nscheduler: {name: median, min_trials: x}\nbudget: {unit: steps, max: 99999999999}\n",
		"name: s\n" + baseJob + "searcher: {name: grid}\nsearch_space:\n  lr: {type: uniform, low: 0.001, high: 0.1, grid_points: 1000000000}\nobjective: {metric: m, mode: min}\n",
		"name: s\n" + baseJob + "searcher: {name: grid}\nsearch_space:\n  batch: {type: int, low: 1, high: 4096, log: true, grid_points: 10000}\n  seed: {type: int, low: 0, high: 100}\n  optimizer: {type: choice, values: [adam, sgd]}\nobjective: {metric: m, mode: min}\nmax_trials: 100000\n",
		"name: s\n" + baseJob + "searcher: {name: tpe, n_startup: 2, n_candidates: 10000, gamma: 0.9}\nsearch_space:\n  lr: {type: loguniform, low: 1e-300, high: 1e300}\n  batch: {type: int, low: 1, high: 4096, log: true}\n  flip: {type: choice, values: [true, false]}\n  weight_decay: {type: uniform, low: 0, high: 1e308}\nobjective: {metric: m, mode: max}\nmax_trials: 26\n",
		"name: s\n" + baseJob + "scheduler: {name: hyperband, reduction_factor: 2, grace_period: 1}\nsearch_space: {momentum: {type: uniform, low: 0.1, high: 0.9}}\nobjective: {metric: m, mode: min}\nbudget: {unit: steps, min: 1, max: 1000000000}\n",
		"name: s\n" + baseJob + "scheduler: {name: asha, reduction_factor: 100}\nsearch_space: {seed: {type: int, low: 0, high: 9007199254740992}}\nobjective: {metric: m, mode: min}\nbudget: {max: 100000}\n",
		"name: s\n" + baseJob + "scheduler: {name: median, min_trials: 100000}\nsearch_space: {epochs: {type: int, low: 1, high: 100000}}\nobjective: {metric: m, mode: min}\nbudget: {unit: steps, max: 7}\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	if data, err := os.ReadFile(filepath.Join("..", "deploy", "examples", "sweep.yaml")); err == nil {
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse(data, "f.yaml")
		if err != nil {
			if !errors.Is(err, jobspec.ErrInvalid) {
				t.Fatalf("Parse error %v does not wrap jobspec.ErrInvalid", err)
			}
			return
		}
		if err := s.Validate(); err != nil {
			t.Fatalf("Parse accepted a spec that Validate rejects: %v", err)
		}
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		done := make(chan struct{})
		go func() {
			defer close(done)
			exercise(t, s)
		}()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Fatalf("searcher and scheduler of an accepted spec still busy after 20s:\n%s", data)
		}
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		if a := after.TotalAlloc - before.TotalAlloc; a > 256<<20 {
			t.Fatalf("searcher and scheduler of an accepted spec allocated %d MiB:\n%s", a>>20, data)
		}
	})
}

// exercise builds s's searcher and scheduler and drives them a little, as
// the sweep controller would, reporting what goes wrong with t.Error.
func exercise(t *testing.T, s Spec) {
	searcher, err := s.NewSearcher()
	if err != nil {
		t.Errorf("NewSearcher of an accepted spec: %v", err)
		return
	}
	sched, err := NewScheduler(s)
	if err != nil {
		t.Errorf("NewScheduler of an accepted spec: %v", err)
		return
	}
	// Enough history for TPE to model it, within what max_trials allows.
	nHist := min(s.Searcher.TPE.withDefaults().NStartup+1, s.MaxTrials-1, 40)
	var hist []Observation
	for n := 0; n < s.MaxTrials && n < nHist+3; n++ {
		p, err := searcher.Suggest(n, hist)
		if errors.Is(err, ErrExhausted) {
			break
		}
		if err != nil {
			t.Errorf("Suggest(%d) with %d observations: %v", n, len(hist), err)
			return
		}
		if err := s.SearchSpace.check(p); err != nil {
			t.Errorf("Suggest(%d) = %s: %v", n, p, err)
			return
		}
		if _, err := s.TrialJob(p); err != nil {
			t.Errorf("Suggest(%d) = %s makes an invalid trial job: %v", n, p, err)
			return
		}
		v := math.Sin(float64(n)) // deterministic, varied objectives
		if n < nHist {
			hist = append(hist, Observation{Trial: n, Params: p, Value: v, HasValue: true})
		}
		for b := s.Budget.Min; b <= s.Budget.Max && b < s.Budget.Min+5; b++ {
			if d := sched.OnResult(Result{Trial: n, Budget: b, Value: v}); !d.Running() {
				break
			}
		}
		sched.OnResult(Result{Trial: n, Budget: s.Budget.Max, Value: v})
	}
}
