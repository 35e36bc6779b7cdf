package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/trainctl/trainctl/dataset"
	"github.com/trainctl/trainctl/trainer"
	"github.com/trainctl/trainctl/trainer/unet"
)

// RunnerConfig configures a Runner. Zero fields take the defaults noted.
type RunnerConfig struct {
	// WorkDir holds each run's files, under
	// <WorkDir>/<job>/attempt-<n>/rank-<r>/ (required).
	WorkDir string
	// Datasets provides dataset versions (required).
	Datasets DatasetSource
	// Reporter receives metrics (required).
	Reporter Reporter
	// Checkpoints receives every checkpoint written (required).
	Checkpoints CheckpointSink
	// Grace is how long a run may take, after its context is canceled, to
	// stop, checkpoint and hand the checkpoint over (default DefaultGrace).
	Grace time.Duration
	// ReportEvery flushes metrics every that many steps (default 20);
	// ReportInterval at least that often (default 10s). Every epoch end
	// flushes too.
	ReportEvery    int
	ReportInterval time.Duration
	// MaxPendingSteps bounds the step records kept while the Reporter is
	// behind; the oldest are dropped (default 10000).
	MaxPendingSteps int
	// Ring connects the ranks of a data-parallel attempt (required to run
	// assignments of more than one rank).
	Ring RingConnector
	// Threads overrides the engine's thread count (default: the spec's
	// cpus_per_rank, capped at GOMAXPROCS).
	Threads int
	// Logger receives the run's logs (default slog.Default()).
	Logger *slog.Logger

	// For tests: model, when set, replaces the spec's model (a smaller
	// UNet than UNet-S); stepHook runs on the training goroutine after
	// every step.
	model    unet.Config
	stepHook func(trainer.Progress)
}

// Runner executes assignments on this machine: it fetches the dataset
// version, trains (resuming from a checkpoint when the assignment has one),
// reports metrics in batches and hands every checkpoint to the sink. It is
// safe for concurrent use; each Run is independent.
type Runner struct {
	cfg       RunnerConfig
	abandoned sync.WaitGroup
}

// NewRunner checks cfg, fills its defaults and returns a Runner.
func NewRunner(cfg RunnerConfig) (*Runner, error) {
	switch {
	case cfg.WorkDir == "":
		return nil, errors.New("runner: no work directory")
	case cfg.Datasets == nil || cfg.Reporter == nil || cfg.Checkpoints == nil:
		return nil, errors.New("runner: Datasets, Reporter and Checkpoints are required")
	}
	if cfg.Grace <= 0 {
		cfg.Grace = DefaultGrace
	}
	if cfg.ReportEvery <= 0 {
		cfg.ReportEvery = 20
	}
	if cfg.ReportInterval <= 0 {
		cfg.ReportInterval = 10 * time.Second
	}
	if cfg.MaxPendingSteps <= 0 {
		cfg.MaxPendingSteps = 10000
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Runner{cfg: cfg}, nil
}

// Dir is the directory Run uses for a's files.
func (r *Runner) Dir(a Assignment) string {
	return filepath.Join(r.cfg.WorkDir, a.JobID, "attempt-"+strconv.Itoa(a.Attempt), "rank-"+strconv.Itoa(a.Rank))
}

// Wait blocks until every trainer that a Run left behind at its grace
// deadline (see Run) has stopped.
func (r *Runner) Wait() { r.abandoned.Wait() }

// errGrace is the cause of a run's handoff context ending at the grace
// deadline.
var errGrace = errors.New("grace deadline")

// Run executes a and returns how it ended; it always returns an Outcome,
// errors included (Failed, with Err).
//
// Canceling ctx is a preemption notice: the trainer stops after its current
// step and writes a final checkpoint, which is handed to the sink; Run then
// returns Preempted with that checkpoint and step. Everything after the
// notice, including waiting for the sink, must fit in RunnerConfig.Grace;
// if it does not, Run returns at the deadline with Failed wrapping
// ErrGraceExpired (a trainer still stopping then finishes in the
// background; see Wait). A notice before training starts returns Preempted
// with the assignment's own resume point.
//
// On success Run waits for the sink to accept the best checkpoint and
// returns Succeeded with it and the final metrics. Metrics are reported in
// batches from a separate goroutine, so neither a slow Reporter nor a slow
// sink holds up training.
func (r *Runner) Run(ctx context.Context, a Assignment) Outcome {
	start := time.Now()
	log := r.cfg.Logger.With("job", a.JobID, "attempt", a.Attempt, "rank", a.Rank)
	fail := func(err error) Outcome {
		log.Error("run failed", "err", err)
		return Outcome{Status: Failed, Err: err, Elapsed: time.Since(start)}
	}
	if err := a.Validate(); err != nil {
		return fail(err)
	}
	cfg, err := TrainConfig(a, r.cfg.Threads)
	if err != nil {
		return fail(err)
	}

	// The handoff context outlives ctx by the grace period, so the final
	// checkpoint and metrics can still be delivered after a notice.
	hctx, hcancel := context.WithCancelCause(context.WithoutCancel(ctx))
	defer hcancel(nil)
	var (
		noticeMu sync.Mutex
		graceT   *time.Timer
	)
	stopNotice := context.AfterFunc(ctx, func() {
		log.Info("stop notice: checkpointing and handing back", "grace", r.cfg.Grace)
		noticeMu.Lock()
		defer noticeMu.Unlock()
		graceT = time.AfterFunc(r.cfg.Grace, func() { hcancel(errGrace) })
	})
	defer func() {
		stopNotice()
		noticeMu.Lock()
		if graceT != nil {
			graceT.Stop()
		}
		noticeMu.Unlock()
	}()

	var resume *trainer.Checkpoint
	if a.ResumeFrom != "" {
		if resume, err = trainer.ReadCheckpoint(a.ResumeFrom); err != nil {
			return fail(fmt.Errorf("resume: %w", err))
		}
		cfg.Resume = resume
	}
	preemptedEarly := func() Outcome {
		o := Outcome{Status: Preempted, Checkpoint: a.ResumeFrom, Elapsed: time.Since(start)}
		if resume != nil {
			o.Step, o.CheckpointStep = resume.Step, resume.Step
		}
		return o
	}

	ref := a.ref()
	v, id, err := r.cfg.Datasets.Open(ctx, ref, a.DatasetVersion)
	if err != nil {
		if ctx.Err() != nil {
			return preemptedEarly()
		}
		return fail(fmt.Errorf("dataset %s: %w", ref, err))
	}
	if a.DatasetVersion != "" && id != a.DatasetVersion {
		v.Close()
		return fail(fmt.Errorf("dataset %s: the source returned version %s, the assignment names %s",
			ref, dataset.ShortID(id), dataset.ShortID(a.DatasetVersion)))
	}
	dir := r.Dir(a)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		v.Close()
		return fail(fmt.Errorf("work directory: %w", err))
	}
	log.Info("run starting", "dataset", ref, "version", dataset.ShortID(id), "dir", dir, "resume", a.ResumeFrom)

	b := newBatcher(r.cfg.Reporter, MetricsBatch{JobID: a.JobID, Attempt: a.Attempt, Rank: a.Rank, Ranks: a.Ranks},
		r.cfg.ReportEvery, r.cfg.ReportInterval, r.cfg.MaxPendingSteps, log)
	h := newHandoff(r.cfg.Checkpoints, Checkpoint{JobID: a.JobID, Attempt: a.Attempt, Rank: a.Rank}, dir, log)
	go b.run(hctx)
	go h.run(hctx)
	if len(r.cfg.model.Widths) > 0 {
		cfg.Model = r.cfg.model
	}
	cfg.CheckpointDir = dir
	cfg.DatasetVersion = id
	cfg.Logger = log
	cfg.OnStep = b.step
	if hook := r.cfg.stepHook; hook != nil {
		cfg.OnStep = func(p trainer.Progress) { b.step(p); hook(p) }
	}
	cfg.OnEpoch = b.epoch
	cfg.OnCheckpoint = h.add
	if a.Ranks > 1 {
		ring, err := r.connect(ctx, a)
		if err != nil {
			b.finish()
			h.close()
			<-b.done
			<-h.done
			v.Close()
			if ctx.Err() != nil {
				return preemptedEarly()
			}
			return fail(err)
		}
		defer ring.Close()
		cfg.Collective = ring
	}

	type trained struct {
		res trainer.Result
		err error
	}
	done := make(chan trained, 1)
	r.abandoned.Add(1)
	go func() {
		defer r.abandoned.Done()
		res, err := trainer.Train(ctx, v, cfg)
		res.Weights = nil // the model's buffer, freed with it
		v.Close()
		done <- trained{res, err}
	}()
	var t trained
	select {
	case t = <-done:
	case <-hctx.Done():
		b.finish()
		h.close()
		<-b.done
		<-h.done
		return fail(fmt.Errorf("%w: the trainer did not stop and checkpoint within %v of the stop notice", ErrGraceExpired, r.cfg.Grace))
	}

	// Training is over: deliver what is queued (bounded by the grace
	// period once ctx is canceled).
	h.close()
	b.finish()
	<-h.done
	<-b.done
	graceExpired := context.Cause(hctx) == errGrace

	res := t.res
	out := Outcome{
		Step: res.Step, Val: res.Val, BestMeanIoU: res.BestMeanIoU, TrainLoss: res.TrainLoss,
		Epochs: len(res.Epochs), ImagesPerSec: res.ImagesPerSec, Elapsed: time.Since(start),
	}
	canceled := ctx.Err() != nil && (errors.Is(t.err, context.Canceled) || errors.Is(t.err, context.DeadlineExceeded))
	switch {
	case t.err != nil && !canceled:
		out.Status, out.Err = Failed, t.err
		out.Checkpoint, out.CheckpointStep = res.LastCheckpoint, h.latestStep()
		log.Error("run failed", "err", t.err, "step", res.Step)
		return out
	case canceled:
		out.Status = Preempted
		out.Checkpoint, out.CheckpointStep = res.LastCheckpoint, h.latestStep()
		if res.LastCheckpoint == "" { // stopped before a step: nothing new
			out.Checkpoint, out.CheckpointStep = a.ResumeFrom, 0
			if resume != nil {
				out.CheckpointStep = resume.Step
			}
		}
		if err := h.check(false); err != nil {
			out.Status, out.Err = Failed, err
			if graceExpired {
				out.Err = fmt.Errorf("%w: the final checkpoint (step %d) was not handed over within %v of the stop notice: %w",
					ErrGraceExpired, h.latestStep(), r.cfg.Grace, err)
			}
			log.Error("preempted run could not hand back its checkpoint", "err", out.Err)
			return out
		}
		log.Info("run preempted", "step", res.Step, "checkpoint", out.Checkpoint, "elapsed", out.Elapsed)
		return out
	default:
		out.Status = Succeeded
		out.Checkpoint, out.CheckpointStep = res.BestCheckpoint, h.bestStep()
		best := true
		if out.Checkpoint == "" { // no evaluation ran
			out.Checkpoint, out.CheckpointStep, best = res.LastCheckpoint, h.latestStep(), false
		}
		if err := h.check(best); err != nil {
			out.Status, out.Err = Failed, err
			if graceExpired {
				out.Err = fmt.Errorf("%w: %w", ErrGraceExpired, err)
			}
			log.Error("finished run could not hand over its checkpoint", "err", out.Err)
			return out
		}
		log.Info("run succeeded", "step", res.Step, "val_miou", res.Val.MeanIoU, "checkpoint", out.Checkpoint, "elapsed", out.Elapsed)
		return out
	}
}

// connect joins a data-parallel rank to its peers through the configured
// RingConnector.
func (r *Runner) connect(ctx context.Context, a Assignment) (Ring, error) {
	if r.cfg.Ring == nil {
		return nil, fmt.Errorf("job %s: %d ranks: %w: this runner has no ring connector", a.JobID, a.Ranks, ErrUnsupported)
	}
	return r.cfg.Ring.Connect(ctx, a)
}
