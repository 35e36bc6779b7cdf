package worker

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"math"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trainctl/trainctl/dataset"
	"github.com/trainctl/trainctl/trainer"
	"github.com/trainctl/trainctl/trainer/unet"
)

func newTestRunner(t *testing.T, ds DatasetSource, rep Reporter, sink CheckpointSink, mod func(*RunnerConfig)) *Runner {
	t.Helper()
	cfg := RunnerConfig{
		WorkDir: t.TempDir(), Datasets: ds, Reporter: rep, Checkpoints: sink,
		ReportEvery: 2, ReportInterval: time.Hour, Logger: quietLogger(),
		model: tinyModel(),
	}
	if mod != nil {
		mod(&cfg)
	}
	r, err := NewRunner(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Wait)
	return r
}

func flightSource(t *testing.T, addr string) *FlightSource {
	t.Helper()
	s, err := NewFlightSource(FlightSourceConfig{Addr: addr, CacheDir: t.TempDir(), Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func paramBits(ps []float32) []byte {
	b := make([]byte, 4*len(ps))
	for i, p := range ps {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(p))
	}
	return b
}

// checkSteps checks that the batches report steps first..last exactly once
// and in order, epochs epochs (unless negative), and end with one Final
// batch.
func checkSteps(t *testing.T, bs []MetricsBatch, first, last int64, epochs int) {
	t.Helper()
	want := first
	var gotEpochs int
	for i, b := range bs {
		if b.JobID == "" || b.Attempt == 0 {
			t.Errorf("batch %d without job identity: %+v", i, b)
		}
		if b.Final != (i == len(bs)-1) {
			t.Errorf("batch %d of %d: Final = %v", i, len(bs), b.Final)
		}
		for _, s := range b.Steps {
			if s.Step != want {
				t.Fatalf("batch %d: step %d, want %d", i, s.Step, want)
			}
			want++
		}
		gotEpochs += len(b.Epochs)
	}
	if want != last+1 {
		t.Errorf("steps reported up to %d, want %d", want-1, last)
	}
	if epochs >= 0 && gotEpochs != epochs {
		t.Errorf("%d epoch reports, want %d", gotEpochs, epochs)
	}
}

// TestRunPreemptResume runs a job over a real Flight server to the end;
// then, for several stop points, canceled mid-way (a preemption notice),
// which must return Preempted with its final checkpoint handed over, and
// resumed from that checkpoint by another Runner, which must end with
// weights, optimizer state, RNG and data position bit-identical to the
// uninterrupted run's.
func TestRunPreemptResume(t *testing.T) {
	st, man := shapesStore(t)
	addr, _ := startFlight(t, st)
	ctx := context.Background()

	// 1. Uninterrupted.
	repA := &recordingReporter{}
	sinkA := &recordingSink{t: t}
	ra := newTestRunner(t, flightSource(t, addr), repA, sinkA, nil)
	a := testAssignment("job-a", 1, man)
	outA := ra.Run(ctx, a)
	if outA.Status != Succeeded || outA.Err != nil {
		t.Fatalf("uninterrupted run: %s: %v", outA.Status, outA.Err)
	}
	if outA.Step != testSteps || outA.Epochs != 2 || outA.Val.Examples != testExamples-20 {
		t.Errorf("outcome: step %d epochs %d val examples %d", outA.Step, outA.Epochs, outA.Val.Examples)
	}
	if filepath.Base(outA.Checkpoint) != trainer.BestCheckpoint || filepath.Dir(outA.Checkpoint) != ra.Dir(a) {
		t.Errorf("outcome checkpoint %s, want %s in %s", outA.Checkpoint, trainer.BestCheckpoint, ra.Dir(a))
	}
	batches := repA.batches()
	checkSteps(t, batches, 1, testSteps, 2)
	if len(batches) < 3 {
		t.Errorf("%d metric batches for %d steps with ReportEvery 2: not batched as configured", len(batches), testSteps)
	}
	// Every checkpoint was handed over, the last latest and best included;
	// the handoff links are gone.
	var latest, best []int64
	for _, c := range sinkA.checkpoints() {
		if c.JobID != "job-a" || c.Attempt != 1 {
			t.Errorf("checkpoint identity %+v", c)
		}
		if c.Latest {
			latest = append(latest, c.Step)
		}
		if c.Best {
			best = append(best, c.Step)
		}
	}
	if len(latest) == 0 || latest[len(latest)-1] != testSteps || len(best) == 0 || best[len(best)-1] != outA.CheckpointStep {
		t.Errorf("handed over latest %v best %v; outcome best step %d", latest, best, outA.CheckpointStep)
	}
	assertNoHandoffFiles(t, ra.Dir(a))
	want, err := trainer.ReadCheckpoint(filepath.Join(ra.Dir(a), trainer.LatestCheckpoint))
	if err != nil {
		t.Fatal(err)
	}

	// 2 and 3, at several stop points: preempted at step stopAt (the
	// context canceled on the training goroutine after that step), then
	// resumed by another runner whose reporter blocks until training has
	// ended, since a slow reporter must not hold up training.
	for _, stopAt := range []int64{3, testStepsEpoch, 8} {
		t.Run("stop at "+strconv.FormatInt(stopAt, 10), func(t *testing.T) {
			job := "job-" + strconv.FormatInt(stopAt, 10)
			runCtx, cancel := context.WithCancel(ctx)
			defer cancel()
			var canceledAt time.Time
			sinkB := &recordingSink{t: t}
			repB := &recordingReporter{}
			rb := newTestRunner(t, flightSource(t, addr), repB, sinkB, func(c *RunnerConfig) {
				c.stepHook = func(p trainer.Progress) {
					if p.Step == stopAt {
						canceledAt = time.Now()
						cancel()
					}
				}
			})
			b := testAssignment(job, 1, man)
			outB := rb.Run(runCtx, b)
			if outB.Status != Preempted || outB.Err != nil {
				t.Fatalf("preempted run: %s: %v", outB.Status, outB.Err)
			}
			if took := time.Since(canceledAt); took > DefaultGrace {
				t.Errorf("preempted run returned %v after the notice, grace is %v", took, DefaultGrace)
			}
			if outB.Step != stopAt || outB.CheckpointStep != stopAt || filepath.Dir(outB.Checkpoint) != rb.Dir(b) {
				t.Fatalf("preempted at step %d with checkpoint %s of step %d, want step %d in %s",
					outB.Step, outB.Checkpoint, outB.CheckpointStep, stopAt, rb.Dir(b))
			}
			ck, err := trainer.ReadCheckpoint(outB.Checkpoint)
			if err != nil {
				t.Fatal(err)
			}
			if ck.Step != stopAt {
				t.Errorf("checkpoint step %d, want %d", ck.Step, stopAt)
			}
			handedFinal := false
			for _, c := range sinkB.checkpoints() {
				handedFinal = handedFinal || (c.Latest && c.Step == stopAt)
			}
			if !handedFinal {
				t.Errorf("checkpoints handed over %+v lack the latest of step %d", sinkB.checkpoints(), stopAt)
			}
			checkSteps(t, repB.batches(), 1, stopAt, -1)
			assertNoHandoffFiles(t, rb.Dir(b))

			trained := make(chan struct{})
			var trainedOnce sync.Once
			sinkC := &recordingSink{t: t, hook: func(_ context.Context, c Checkpoint) error {
				if c.Latest && c.Step == testSteps {
					trainedOnce.Do(func() { close(trained) })
				}
				return nil
			}}
			repC := &recordingReporter{before: func(ctx context.Context, _ MetricsBatch) error {
				select {
				case <-trained:
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			}}
			rc := newTestRunner(t, flightSource(t, addr), repC, sinkC, nil)
			c := testAssignment(job, 2, man)
			c.ResumeFrom = outB.Checkpoint
			outC := rc.Run(ctx, c)
			if outC.Status != Succeeded || outC.Err != nil {
				t.Fatalf("resumed run: %s: %v", outC.Status, outC.Err)
			}
			if outC.Step != testSteps {
				t.Errorf("resumed run ended at step %d, want %d", outC.Step, testSteps)
			}
			// Epoch ends after the stop point are evaluated and reported.
			checkSteps(t, repC.batches(), stopAt+1, testSteps, int(testSteps/testStepsEpoch-stopAt/testStepsEpoch))
			got, err := trainer.ReadCheckpoint(filepath.Join(rc.Dir(c), trainer.LatestCheckpoint))
			if err != nil {
				t.Fatal(err)
			}
			if got.Step != want.Step || !bytes.Equal(paramBits(got.Params), paramBits(want.Params)) {
				t.Fatalf("resumed run's weights (step %d) differ from the uninterrupted run's (step %d)", got.Step, want.Step)
			}
			if !bytes.Equal(got.Optimizer, want.Optimizer) || !bytes.Equal(got.RNG, want.RNG) || got.Position != want.Position {
				t.Error("resumed run's optimizer state, RNG or data position differ from the uninterrupted run's")
			}
		})
	}
}

func assertNoHandoffFiles(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".handoff-") {
			t.Errorf("handoff file left behind: %s", e.Name())
		}
	}
}

// TestRunUNetS runs one epoch of the real model, UNet-S sized to the
// 16×16 dataset, through a Flight server.
func TestRunUNetS(t *testing.T) {
	st, man := shapesStore(t)
	addr, _ := startFlight(t, st)
	sink := &recordingSink{t: t}
	rep := &recordingReporter{}
	r := newTestRunner(t, flightSource(t, addr), rep, sink, func(c *RunnerConfig) { c.model = unet.Config{} })
	a := testAssignment("job-s", 1, man)
	a.Spec.Hyperparameters.Epochs = 1
	a.Spec.CheckpointEvery = 0
	out := r.Run(context.Background(), a)
	if out.Status != Succeeded || out.Step != testStepsEpoch {
		t.Fatalf("outcome %s at step %d: %v", out.Status, out.Step, out.Err)
	}
	checkSteps(t, rep.batches(), 1, testStepsEpoch, 1)
	ck, err := trainer.ReadCheckpoint(out.Checkpoint)
	if err != nil {
		t.Fatal(err)
	}
	want := unet.DefaultConfig()
	want.Height, want.Width = testSize, testSize
	if ck.Model.Bottleneck != want.Bottleneck || len(ck.Model.Widths) != len(want.Widths) || ck.Model.Height != testSize ||
		len(ck.Params) != 1941139 || ck.Dataset != "shapes" || ck.DatasetVersion != man.ID {
		t.Errorf("checkpoint of %+v with %d parameters on %s@%s, want UNet-S %+v (1941139) on shapes@%s",
			ck.Model, len(ck.Params), ck.Dataset, dataset.ShortID(ck.DatasetVersion), want, dataset.ShortID(man.ID))
	}
	// Latest and best of step 5: one checkpoint, or two when the sink had
	// taken the latest before the trainer wrote the best.
	var latest, best bool
	for _, c := range sink.checkpoints() {
		if c.Step != testStepsEpoch {
			t.Errorf("handed over step %d", c.Step)
		}
		latest, best = latest || c.Latest, best || c.Best
	}
	if !latest || !best {
		t.Errorf("handed over %+v, want the latest and best checkpoint of step %d", sink.checkpoints(), testStepsEpoch)
	}
}

// TestRunGraceExpired preempts a run (after its first step) whose sink
// never accepts the final checkpoint: Run must give up at the grace deadline
// with ErrGraceExpired.
func TestRunGraceExpired(t *testing.T) {
	st, man := shapesStore(t)
	runCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var canceledAt time.Time
	sink := &recordingSink{t: t, hook: func(ctx context.Context, c Checkpoint) error {
		<-ctx.Done() // an upload that never finishes
		return ctx.Err()
	}}
	const grace = 300 * time.Millisecond
	ds := source(func(ctx context.Context, ref, id string) (*dataset.Version, string, error) {
		v, err := st.OpenObject(id)
		return v, id, err
	})
	r := newTestRunner(t, ds, &recordingReporter{}, sink, func(c *RunnerConfig) {
		c.Grace = grace
		c.stepHook = func(p trainer.Progress) {
			if p.Step == 1 {
				canceledAt = time.Now()
				cancel()
			}
		}
	})
	out := r.Run(runCtx, testAssignment("job-g", 1, man))
	if out.Status != Failed || !errors.Is(out.Err, ErrGraceExpired) {
		t.Fatalf("outcome %s: %v, want Failed with ErrGraceExpired", out.Status, out.Err)
	}
	if took := time.Since(canceledAt); took < grace {
		t.Errorf("returned %v after the notice, before the %v grace period ended", took, grace)
	}
	if len(sink.checkpoints()) != 0 {
		t.Errorf("the sink accepted %d checkpoints", len(sink.checkpoints()))
	}
	t.Logf("error: %v", out.Err)
}

// TestRunFailures covers runs that cannot train: the dataset cannot be had,
// the assignment or its resume checkpoint is bad, or the notice comes while
// the dataset is still being fetched.
func TestRunFailures(t *testing.T) {
	st, man := shapesStore(t)
	addr, _ := startFlight(t, st)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := lis.Addr().String()
	lis.Close()
	missing := strings.Repeat("ab", 32)
	garbage := filepath.Join(t.TempDir(), "garbage.ckpt")
	if err := os.WriteFile(garbage, []byte("not a checkpoint"), 0o644); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name       string
		ds         func(t *testing.T) DatasetSource
		assign     func(a *Assignment)
		cancel     bool // cancel the context before running
		wantStatus Status
		wantIs     error
		wantMsg    string
	}{
		{
			name:       "version not on the server",
			ds:         func(t *testing.T) DatasetSource { return flightSource(t, addr) },
			assign:     func(a *Assignment) { a.DatasetVersion = missing },
			wantStatus: Failed, wantIs: dataset.ErrNotFound, wantMsg: "dataset shapes@v1: ",
		},
		{
			name:       "unknown dataset name",
			ds:         func(t *testing.T) DatasetSource { return flightSource(t, addr) },
			assign:     func(a *Assignment) { a.DatasetRef, a.DatasetVersion = "nope@v1", "" },
			wantStatus: Failed, wantIs: dataset.ErrNotFound, wantMsg: "dataset nope@v1: ",
		},
		{
			name:       "server unreachable",
			ds:         func(t *testing.T) DatasetSource { return flightSource(t, deadAddr) },
			wantStatus: Failed, wantMsg: "dial dataset server " + deadAddr,
		},
		{
			name: "source fails",
			ds: func(t *testing.T) DatasetSource {
				return source(func(context.Context, string, string) (*dataset.Version, string, error) {
					return nil, "", os.ErrPermission
				})
			},
			wantStatus: Failed, wantIs: os.ErrPermission, wantMsg: "dataset shapes@v1: permission denied",
		},
		{
			name:       "data-parallel ranks without a ring connector",
			ds:         func(t *testing.T) DatasetSource { return flightSource(t, addr) },
			assign:     func(a *Assignment) { a.Spec.Resources.Ranks, a.Ranks = 2, 2 },
			wantStatus: Failed, wantIs: ErrUnsupported,
		},
		{
			name:       "bad job id",
			ds:         func(t *testing.T) DatasetSource { return flightSource(t, addr) },
			assign:     func(a *Assignment) { a.JobID = "../etc" },
			wantStatus: Failed, wantIs: ErrAssignment,
		},
		{
			name:       "invalid spec",
			ds:         func(t *testing.T) DatasetSource { return flightSource(t, addr) },
			assign:     func(a *Assignment) { a.Spec.Hyperparameters.LR = -1 },
			wantStatus: Failed, wantIs: ErrAssignment, wantMsg: "hyperparameters.lr: must be a positive number",
		},
		{
			name:       "corrupt resume checkpoint",
			ds:         func(t *testing.T) DatasetSource { return flightSource(t, addr) },
			assign:     func(a *Assignment) { a.ResumeFrom = garbage },
			wantStatus: Failed, wantIs: trainer.ErrCorruptCheckpoint, wantMsg: "resume: ",
		},
		{
			name: "notice while fetching",
			ds: func(t *testing.T) DatasetSource {
				return source(func(ctx context.Context, _, _ string) (*dataset.Version, string, error) {
					<-ctx.Done()
					return nil, "", ctx.Err()
				})
			},
			cancel:     true,
			wantStatus: Preempted,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink := &recordingSink{t: t}
			r := newTestRunner(t, tt.ds(t), &recordingReporter{}, sink, nil)
			a := testAssignment("job-f", 1, man)
			if tt.assign != nil {
				tt.assign(&a)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tt.cancel {
				cancel()
			}
			out := r.Run(ctx, a)
			if out.Status != tt.wantStatus {
				t.Fatalf("status %s (%v), want %s", out.Status, out.Err, tt.wantStatus)
			}
			if tt.wantStatus != Failed {
				if out.Err != nil || out.Checkpoint != "" || out.Step != 0 {
					t.Errorf("outcome %+v", out)
				}
				return
			}
			if tt.wantIs != nil && !errors.Is(out.Err, tt.wantIs) {
				t.Errorf("error %v does not wrap %v", out.Err, tt.wantIs)
			}
			if !strings.Contains(out.Err.Error(), tt.wantMsg) {
				t.Errorf("error %q does not contain %q", out.Err, tt.wantMsg)
			}
			if len(sink.checkpoints()) != 0 {
				t.Errorf("checkpoints handed over by a run that never trained")
			}
			t.Logf("error: %v", out.Err)
		})
	}
}
