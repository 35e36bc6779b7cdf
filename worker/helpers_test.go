package worker

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/trainctl/trainctl/dataset"
	"github.com/trainctl/trainctl/dataset/stream"
	"github.com/trainctl/trainctl/jobspec"
	"github.com/trainctl/trainctl/trainer/unet"
)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// Test dataset: 25 generated 16×16 shapes, 5 of them val, so batch 4 gives
// 5 steps per epoch and the 2-epoch spec below 10 steps.
const (
	testExamples   = 25
	testSize       = 16
	testSteps      = 10
	testStepsEpoch = 5
)

// shapesStore is a store holding "shapes" v1.
func shapesStore(t testing.TB) (*dataset.Store, dataset.Manifest) {
	t.Helper()
	st, err := dataset.OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg := dataset.ShapesConfig{N: testExamples, Size: testSize, Seed: 7, Workers: 1}
	ctx := context.Background()
	m, _, err := st.Register(ctx, "shapes", cfg.Meta(), func(yield func(dataset.Example) error) (dataset.Provenance, error) {
		return dataset.Provenance{Source: cfg.Source()}, dataset.GenerateShapes(ctx, cfg, yield)
	})
	if err != nil {
		t.Fatal(err)
	}
	return st, m
}

// startFlight serves st over Arrow Flight on a random loopback port until
// the test ends (or stop is called) and returns its address.
func startFlight(t testing.TB, st *dataset.Store) (addr string, stop func()) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := stream.NewServer(st, stream.ServerConfig{Logger: quietLogger()})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			srv.Close()
			if err := <-done; err != nil {
				t.Errorf("Serve: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return lis.Addr().String(), stop
}

// tinyModel is a two-level UNet that trains in milliseconds; tests run it
// instead of UNet-S (whose 23 MiB checkpoints and 1.9M-parameter optimizer
// steps take seconds under the race detector) except where said.
func tinyModel() unet.Config {
	return unet.Config{InChannels: 3, Classes: 3, Height: testSize, Width: testSize, Widths: []int{4, 8}, Bottleneck: 8}
}

// testSpec is a small valid job: 2 epochs of batch 4, a checkpoint every 2
// steps.
func testSpec() jobspec.Spec {
	s := jobspec.Defaults()
	s.Name, s.Dataset = "test", "shapes@v1"
	s.Hyperparameters.Epochs = 2
	s.Hyperparameters.Batch = 4
	s.Hyperparameters.LR = 1e-2
	s.Hyperparameters.Seed = 3
	s.Hyperparameters.Flip = true
	s.Resources.CPUsPerRank = 2
	s.CheckpointEvery = 2
	return s
}

func testAssignment(job string, attempt int, m dataset.Manifest) Assignment {
	return Assignment{JobID: job, Attempt: attempt, Rank: 0, Ranks: 1, Spec: testSpec(), DatasetRef: m.Ref(), DatasetVersion: m.ID}
}

// recordingReporter keeps every batch; before, when set, runs first and
// may block (it must honour ctx).
type recordingReporter struct {
	before func(ctx context.Context, b MetricsBatch) error
	mu     sync.Mutex
	got    []MetricsBatch
}

func (r *recordingReporter) Report(ctx context.Context, b MetricsBatch) error {
	if r.before != nil {
		if err := r.before(ctx, b); err != nil {
			return err
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	b.Steps = slices.Clone(b.Steps)
	b.Epochs = slices.Clone(b.Epochs)
	r.got = append(r.got, b)
	return nil
}

func (r *recordingReporter) batches() []MetricsBatch {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

// recordingSink keeps every checkpoint it accepts, after checking that its
// file is there; hook, when set, runs first and may block or fail (it must
// honour ctx).
type recordingSink struct {
	t    testing.TB
	hook func(ctx context.Context, c Checkpoint) error
	mu   sync.Mutex
	got  []Checkpoint
}

func (s *recordingSink) Put(ctx context.Context, c Checkpoint) error {
	if st, err := os.Stat(c.Path); err != nil || st.Size() == 0 {
		s.t.Errorf("Put(step %d): checkpoint file: %v", c.Step, err)
	}
	if s.hook != nil {
		if err := s.hook(ctx, c); err != nil {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, c)
	return nil
}

func (s *recordingSink) checkpoints() []Checkpoint {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.got)
}

// source is a DatasetSource made of a function.
type source func(ctx context.Context, ref, id string) (*dataset.Version, string, error)

func (f source) Open(ctx context.Context, ref, id string) (*dataset.Version, string, error) {
	return f(ctx, ref, id)
}

// waitFor polls cond until it holds or 30 s pass.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
