package worker

import (
	"errors"
	"fmt"
	"regexp"
	"runtime"
	"time"

	"github.com/trainctl/trainctl/dataset"
	"github.com/trainctl/trainctl/jobspec"
	"github.com/trainctl/trainctl/trainer"
	"github.com/trainctl/trainctl/trainer/optim"
)

// Errors callers branch on.
var (
	// ErrAssignment: an assignment that cannot run (bad ids, rank out of
	// range, an invalid spec).
	ErrAssignment = errors.New("invalid assignment")
	// ErrUnsupported: the spec asks for something this worker does not do
	// (another model, or ranks > 1 without a RingConnector).
	ErrUnsupported = errors.New("not supported")
	// ErrGraceExpired: after a preemption notice the run could not stop
	// and hand over its final checkpoint within the grace period.
	ErrGraceExpired = errors.New("grace period expired")
	// ErrHandoff: the checkpoint an outcome names was not accepted by the
	// CheckpointSink.
	ErrHandoff = errors.New("checkpoint not handed over")
)

// Assignment is one rank of one attempt of a job, placed on this worker by
// the coordinator's scheduler.
type Assignment struct {
	// JobID names the job (it becomes a directory name: letters, digits,
	// '.', '_' and '-', at most 128).
	JobID string `json:"job_id"`
	// Attempt numbers the attempts of the job, from 1.
	Attempt int `json:"attempt"`
	// Rank is this process's rank, of Ranks (Spec.Resources.Ranks).
	Rank  int `json:"rank"`
	Ranks int `json:"ranks"`
	// Spec is the job's specification.
	Spec jobspec.Spec `json:"spec"`
	// DatasetRef is the reference the version was resolved from (NAME@vN;
	// default Spec.Dataset), for logs and checkpoints.
	DatasetRef string `json:"dataset_ref,omitempty"`
	// DatasetVersion is the content id (64 hex digits) the coordinator
	// resolved at submission, so every attempt trains on the same data;
	// empty means resolve DatasetRef now.
	DatasetVersion string `json:"dataset_version,omitempty"`
	// ResumeFrom is a local checkpoint file to resume from; empty starts
	// afresh.
	ResumeFrom string `json:"resume_from,omitempty"`
}

var jobIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// ref is the dataset reference the assignment reads.
func (a Assignment) ref() string {
	if a.DatasetRef != "" {
		return a.DatasetRef
	}
	return a.Spec.Dataset
}

// Validate reports, wrapping ErrAssignment, why a cannot run.
func (a Assignment) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: job %q attempt %d: %s", ErrAssignment, a.JobID, a.Attempt, fmt.Sprintf(format, args...))
	}
	switch {
	case !jobIDPattern.MatchString(a.JobID):
		return bad("job id must be 1-128 characters of A-Z a-z 0-9 . _ - starting with a letter or digit")
	case a.Attempt < 1:
		return bad("attempt must be at least 1")
	case a.Ranks != a.Spec.Resources.Ranks:
		return bad("%d ranks assigned, the spec asks for %d", a.Ranks, a.Spec.Resources.Ranks)
	case a.Rank < 0 || a.Rank >= a.Ranks:
		return bad("rank %d out of range 0..%d", a.Rank, a.Ranks-1)
	case a.DatasetVersion != "" && !dataset.ValidID(a.DatasetVersion):
		return bad("dataset version %q is not a 64-hex-digit id", a.DatasetVersion)
	}
	if err := a.Spec.Validate(); err != nil {
		return bad("spec: %v", err)
	}
	if _, err := dataset.ParseRef(a.ref()); err != nil {
		return bad("%v", err)
	}
	return nil
}

// TrainConfig maps an assignment onto the trainer's configuration:
// optimizer and hyperparameters from the spec (momentum is SGD's momentum
// or Adam's β1), the model sized to the dataset (ModelUNetS), the
// checkpoint period, max time and the dataset name.
// threads is the engine's thread count; 0 means the spec's cpus_per_rank,
// capped at GOMAXPROCS (results are bit-identical for any count). Run adds
// the checkpoint directory, the resume checkpoint, the dataset version and
// the callbacks (and, for ranks > 1, the collective).
func TrainConfig(a Assignment, threads int) (trainer.TrainConfig, error) {
	s := a.Spec
	h := s.Hyperparameters
	if s.Model != jobspec.ModelUNetS {
		return trainer.TrainConfig{}, fmt.Errorf("job %s: model %q: %w", a.JobID, s.Model, ErrUnsupported)
	}
	var opt optim.Config
	switch h.Optimizer {
	case jobspec.OptimizerAdam:
		d := optim.DefaultConfig()
		opt = optim.Config{Kind: optim.Adam, LR: h.LR, Beta1: h.Momentum, Beta2: d.Beta2, Eps: d.Eps, WeightDecay: h.WeightDecay}
	case jobspec.OptimizerSGD:
		opt = optim.Config{Kind: optim.SGD, LR: h.LR, Momentum: h.Momentum, WeightDecay: h.WeightDecay}
	default:
		return trainer.TrainConfig{}, fmt.Errorf("job %s: optimizer %q: %w", a.JobID, h.Optimizer, ErrUnsupported)
	}
	if threads <= 0 {
		threads = min(max(s.Resources.CPUsPerRank, 1), runtime.GOMAXPROCS(0))
	}
	name := ""
	if r, err := dataset.ParseRef(a.ref()); err == nil {
		name = r.Name
	}
	return trainer.TrainConfig{
		// The zero Model is UNet-S sized to the dataset (or, resuming, the
		// checkpoint's model).
		Optimizer:       opt,
		Batch:           h.Batch,
		Epochs:          h.Epochs,
		Seed:            h.Seed,
		Flip:            h.Flip,
		Threads:         threads,
		CheckpointEvery: s.CheckpointEvery,
		MaxTime:         time.Duration(s.MaxTime),
		Dataset:         name,
		DatasetVersion:  a.DatasetVersion,
	}, nil
}

// Status is how a run ended.
type Status string

// The statuses of an Outcome.
const (
	// Succeeded: training finished; Outcome.Checkpoint is the best
	// checkpoint.
	Succeeded Status = "succeeded"
	// Failed: Outcome.Err says why; Outcome.Checkpoint, if set, is the last
	// checkpoint written (a retry may resume from it).
	Failed Status = "failed"
	// Preempted: the run was stopped (its context canceled, as a preemption
	// notice does) and checkpointed; Outcome.Checkpoint is where the next
	// attempt resumes.
	Preempted Status = "preempted"
)

// Outcome is the result of running an assignment.
type Outcome struct {
	// Status is Succeeded, Failed or Preempted.
	Status Status `json:"status"`
	// Err is why a run failed (nil otherwise).
	Err error `json:"-"`
	// Step is the global step count reached.
	Step int64 `json:"step"`
	// Checkpoint is the local checkpoint file the outcome names (see
	// Status), empty when there is none; CheckpointStep its step. It lives
	// in the run's work directory (or is the assignment's ResumeFrom when
	// a preempted run took no step); the agent removes the directory once
	// the coordinator holds the checkpoint.
	Checkpoint     string `json:"checkpoint,omitempty"`
	CheckpointStep int64  `json:"checkpoint_step,omitempty"`
	// Val is the last validation evaluation, BestMeanIoU the best val mean
	// IoU so far, TrainLoss the mean loss of the last (partial) epoch,
	// Epochs the epochs completed in this attempt.
	Val         trainer.Metrics `json:"val"`
	BestMeanIoU float64         `json:"best_mean_iou"`
	TrainLoss   float64         `json:"train_loss"`
	Epochs      int             `json:"epochs"`
	// ImagesPerSec is the training throughput and Elapsed the wall time of
	// the run.
	ImagesPerSec float64       `json:"images_per_sec"`
	Elapsed      time.Duration `json:"elapsed_ns"`
}
