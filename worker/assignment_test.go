package worker

import (
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/trainctl/trainctl/jobspec"
	"github.com/trainctl/trainctl/trainer/optim"
)

func TestTrainConfig(t *testing.T) {
	id := strings.Repeat("0a", 32)
	base := func() Assignment {
		return Assignment{JobID: "j", Attempt: 1, Ranks: 1, Spec: testSpec(), DatasetRef: "shapes@v1", DatasetVersion: id}
	}
	tests := []struct {
		name    string
		modify  func(a *Assignment)
		threads int
		check   func(t *testing.T, a Assignment, err error)
	}{
		{
			name: "adam: momentum is beta1",
			modify: func(a *Assignment) {
				a.Spec.Hyperparameters.Momentum = 0.8
				a.Spec.Hyperparameters.WeightDecay = 0.01
				a.Spec.MaxTime = jobspec.Duration(time.Minute)
			},
			threads: 1,
		},
		{
			name: "sgd",
			modify: func(a *Assignment) {
				a.Spec.Hyperparameters.Optimizer = jobspec.OptimizerSGD
				a.Spec.Hyperparameters.Momentum = 0
			},
		},
		{
			// The runner adds the collective; the rest maps as for one rank.
			name:   "ranks > 1",
			modify: func(a *Assignment) { a.Spec.Resources.Ranks, a.Ranks, a.Rank = 2, 2, 1 },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := base()
			tt.modify(&a)
			cfg, err := TrainConfig(a, tt.threads)
			if tt.check != nil {
				tt.check(t, a, err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			h := a.Spec.Hyperparameters
			var want optim.Config
			if h.Optimizer == jobspec.OptimizerAdam {
				want = optim.Config{Kind: optim.Adam, LR: h.LR, Beta1: h.Momentum, Beta2: 0.999, Eps: 1e-8, WeightDecay: h.WeightDecay}
			} else {
				want = optim.Config{Kind: optim.SGD, LR: h.LR, Momentum: h.Momentum, WeightDecay: h.WeightDecay}
			}
			if cfg.Optimizer != want {
				t.Errorf("optimizer %+v, want %+v", cfg.Optimizer, want)
			}
			if err := cfg.Optimizer.Validate(); err != nil {
				t.Error(err)
			}
			threads := tt.threads
			if threads == 0 {
				threads = min(a.Spec.Resources.CPUsPerRank, runtime.GOMAXPROCS(0))
			}
			if cfg.Batch != h.Batch || cfg.Epochs != h.Epochs || cfg.Seed != h.Seed || cfg.Flip != h.Flip ||
				cfg.Threads != threads || cfg.CheckpointEvery != a.Spec.CheckpointEvery ||
				cfg.MaxTime != time.Duration(a.Spec.MaxTime) || cfg.Dataset != "shapes" || cfg.DatasetVersion != id ||
				cfg.Collective != nil {
				t.Errorf("config %+v does not match the assignment %+v", cfg, a)
			}
		})
	}
}
