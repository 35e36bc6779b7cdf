package trainer

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trainctl/trainctl/dataset"
	"github.com/trainctl/trainctl/trainer/collective"
)

// trainRanks runs cfg on n ranks connected by a real loopback ring (a
// plain Train for n = 1), each rank adjusted by tune, and returns every
// rank's result and error.
func trainRanks(t *testing.T, v *dataset.Version, n int, cfg TrainConfig, tune func(r int, c *TrainConfig)) ([]Result, []error) {
	t.Helper()
	comms := ringOnLoopback(t, n)
	res := make([]Result, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for r := range n {
		c := cfg
		if comms != nil {
			c.Collective = comms[r]
		}
		if r != 0 {
			c.CheckpointDir = "" // rank 0 alone writes; keep the others' out of its directory
		}
		if tune != nil {
			tune(r, &c)
		}
		wg.Go(func() {
			res[r], errs[r] = Train(context.Background(), v, c)
			if comms != nil {
				comms[r].Close()
			}
		})
	}
	wg.Wait()
	return res, errs
}

// TestDataParallelExact trains the same job on 1 to 4 ranks (and on one
// process with other thread counts) and checks that the weights, the
// optimizer state, the losses and the val metrics are identical, bit for
// bit. 32 train examples in batches of 12 end every epoch with a batch of
// 8, which splits unevenly across 3 ranks.
func TestDataParallelExact(t *testing.T) {
	v, man := shapesVersion(t, 40, 2)
	base := baseConfig(man)
	base.Batch, base.Epochs, base.Threads = 12, 2, 1
	type run struct {
		name    string
		ranks   int
		threads int
	}
	runs := []run{{"1 rank", 1, 1}, {"1 rank 2 threads", 1, 2}, {"1 rank 3 threads", 1, 3}, {"2 ranks", 2, 1}, {"2 ranks 2 threads", 2, 2}, {"3 ranks", 3, 1}, {"4 ranks", 4, 1}}
	var (
		want     []byte
		wantOpt  []byte
		wantRes  Result
		wantCkpt *Checkpoint
	)
	for i, rn := range runs {
		cfg := base
		cfg.Threads = rn.threads
		cfg.CheckpointDir = t.TempDir()
		var losses []float64
		res, errs := trainRanks(t, v, rn.ranks, cfg, func(r int, c *TrainConfig) {
			if r == 0 {
				c.OnStep = func(p Progress) { losses = append(losses, p.Loss) }
			}
		})
		for r, err := range errs {
			if err != nil {
				t.Fatalf("%s: rank %d: %v", rn.name, r, err)
			}
			if !bytes.Equal(f32bytes(res[r].Weights), f32bytes(res[0].Weights)) {
				t.Fatalf("%s: rank %d's weights differ from rank 0's", rn.name, r)
			}
		}
		ck, err := ReadCheckpoint(filepath.Join(cfg.CheckpointDir, LatestCheckpoint))
		if err != nil {
			t.Fatal(err)
		}
		got := f32bytes(res[0].Weights)
		t.Logf("%s: step %d, losses %v, val mIoU %v", rn.name, res[0].Step, losses, res[0].Val.MeanIoU)
		if i == 0 {
			want, wantOpt, wantRes, wantCkpt = got, ck.Optimizer, res[0], ck
			continue
		}
		switch {
		case !bytes.Equal(got, want):
			t.Errorf("%s: final weights differ from 1 rank's", rn.name)
		case !bytes.Equal(ck.Optimizer, wantOpt) || !bytes.Equal(f32bytes(ck.Params), f32bytes(wantCkpt.Params)):
			t.Errorf("%s: checkpoint differs from 1 rank's", rn.name)
		case !reflect.DeepEqual(res[0].Val, wantRes.Val) || res[0].TrainLoss != wantRes.TrainLoss:
			t.Errorf("%s: val %+v train loss %v; 1 rank: %+v, %v", rn.name, res[0].Val, res[0].TrainLoss, wantRes.Val, wantRes.TrainLoss)
		case !equalInts(ck.GradScales64(), wantCkpt.GradScales64()):
			t.Errorf("%s: gradient scales %v, 1 rank's %v", rn.name, ck.GradScales, wantCkpt.GradScales)
		}
	}
}

// GradScales64 is the checkpoint's scales as int64s, for equalInts.
func (c *Checkpoint) GradScales64() []int64 {
	out := make([]int64, len(c.GradScales))
	for i, s := range c.GradScales {
		out[i] = int64(s)
	}
	return out
}

// TestDataParallelResume stops a 2-rank run mid-epoch and resumes it from
// rank 0's checkpoint on 1 and on 3 ranks: both end with the weights of a
// run that was never interrupted.
func TestDataParallelResume(t *testing.T) {
	v, man := shapesVersion(t, 40, 3)
	base := baseConfig(man)
	base.Batch, base.Epochs, base.Threads = 6, 2, 1
	full, errs := trainRanks(t, v, 1, base, nil)
	if errs[0] != nil {
		t.Fatal(errs[0])
	}
	stopped := base
	stopped.MaxSteps = 4
	stopped.SkipFinalEval = true
	stopped.CheckpointDir = t.TempDir()
	if _, errs := trainRanks(t, v, 2, stopped, nil); errs[0] != nil || errs[1] != nil {
		t.Fatalf("interrupted run: %v", errs)
	}
	ck, err := ReadCheckpoint(filepath.Join(stopped.CheckpointDir, LatestCheckpoint))
	if err != nil || ck.Step != 4 || len(ck.GradScales) == 0 {
		t.Fatalf("checkpoint: %v, step %v, %d scales", err, ck.Step, len(ck.GradScales))
	}
	for _, n := range []int{1, 3} {
		rc := TrainConfig{Resume: ck, Threads: 1, DatasetVersion: man.ID}
		res, errs := trainRanks(t, v, n, rc, nil)
		for r, err := range errs {
			if err != nil {
				t.Fatalf("resume on %d ranks: rank %d: %v", n, r, err)
			}
		}
		if !bytes.Equal(f32bytes(res[0].Weights), f32bytes(full[0].Weights)) {
			t.Errorf("resumed on %d ranks: weights differ from the uninterrupted run", n)
		}
	}
}

// failingCollective fails every collective.
type failingCollective struct{ rank, size int }

func (f failingCollective) Rank() int { return f.rank }
func (f failingCollective) Size() int { return f.size }
func (f failingCollective) AllReduceInt64(context.Context, collective.Tag, []int64, collective.Op) error {
	return &collective.RankError{Rank: 1, Op: "all-reduce", Err: collective.ErrTimeout}
}
func (f failingCollective) Broadcast(context.Context, collective.Tag, []byte, int) error {
	return f.AllReduceInt64(context.Background(), collective.Tag{}, nil, 0)
}
func (f failingCollective) Barrier(context.Context, collective.Tag) error {
	return f.AllReduceInt64(context.Background(), collective.Tag{}, nil, 0)
}

func TestDataParallelRejects(t *testing.T) {
	v, man := shapesVersion(t, 24, 1)
	tests := []struct {
		name string
		cfg  func(c *TrainConfig)
		want string
		is   error
	}{
		{"batch does not split", func(c *TrainConfig) { c.Batch, c.Collective = 4, failingCollective{0, 3} },
			"a batch of 4 examples does not split across 3 ranks", ErrTrainConfig},
		{"inexact with ranks", func(c *TrainConfig) { c.InexactGrads, c.Collective = true, failingCollective{0, 2} },
			"inexact gradients", ErrTrainConfig},
		{"collective fails", func(c *TrainConfig) { c.Collective = failingCollective{0, 2} },
			"rank 1", collective.ErrTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := baseConfig(man)
			tt.cfg(&cfg)
			_, err := Train(context.Background(), v, cfg)
			if !errors.Is(err, tt.is) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v; want %v mentioning %q", err, tt.is, tt.want)
			}
			var re *collective.RankError
			if tt.is == collective.ErrTimeout && (!errors.As(err, &re) || re.Rank != 1) {
				t.Fatalf("err %v does not carry the collective's *RankError", err)
			}
		})
	}
	// Ranks that build different starting states (another seed) are
	// refused, naming the digest, before any step.
	_, errs := trainRanks(t, v, 2, baseConfig(man), func(r int, c *TrainConfig) { c.Seed = uint64(10 + r) })
	if !errors.Is(errs[1], ErrTrainConfig) || !strings.Contains(errs[1].Error(), "starting state") {
		t.Fatalf("rank 1 with another seed: %v", errs[1])
	}
}

// TestDataParallelMaxTime: ranks whose clocks would stop them at different
// steps stop together, and succeed.
func TestDataParallelMaxTime(t *testing.T) {
	v, man := shapesVersion(t, 40, 4)
	cfg := baseConfig(man)
	cfg.Batch, cfg.Epochs, cfg.Threads = 4, 0, 1
	res, errs := trainRanks(t, v, 2, cfg, func(r int, c *TrainConfig) {
		c.MaxTime = time.Duration(r+1) * 300 * time.Millisecond // rank 1 would go on longer
	})
	for r, err := range errs {
		if err != nil || res[r].Stop != StopMaxTime {
			t.Fatalf("rank %d: stop %q, %v", r, res[r].Stop, err)
		}
	}
	if res[0].Step != res[1].Step || !bytes.Equal(f32bytes(res[0].Weights), f32bytes(res[1].Weights)) {
		t.Fatalf("ranks stopped at steps %d and %d", res[0].Step, res[1].Step)
	}
}
