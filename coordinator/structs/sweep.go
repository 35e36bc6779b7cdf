package structs

import (
	"slices"
	"time"

	"github.com/trainctl/trainctl/tuning"
)

// SweepState is the life-cycle state of a sweep.
type SweepState string

// Sweep states. A sweep runs until every trial it will ever start has ended
// (completed), the user cancels it (cancelled), or it cannot go on
// (failed: for example every trial failed, or its searcher errs).
const (
	SweepRunning   SweepState = "running"
	SweepCompleted SweepState = "completed"
	SweepCancelled SweepState = "cancelled"
	SweepFailed    SweepState = "failed"
)

// Terminal reports whether a sweep in state s starts no more trials.
func (s SweepState) Terminal() bool { return s != SweepRunning }

// TrialState is the state of one trial of a sweep.
type TrialState string

// Trial states. A trial is running from its suggestion until its job ends
// (the job may be pending, running, or requeued after a preemption or a
// failure with restarts left: a resumed trial is still the same trial). It
// ends stopped (the scheduler stopped it early; its job is cancelled),
// completed (its job succeeded), failed (its job failed for good; never
// counted as a result) or cancelled (the sweep or its job was cancelled).
const (
	TrialRunning   TrialState = "running"
	TrialStopped   TrialState = "stopped"
	TrialCompleted TrialState = "completed"
	TrialFailed    TrialState = "failed"
	TrialCancelled TrialState = "cancelled"
)

// Terminal reports whether a trial in state s has ended.
func (s TrialState) Terminal() bool { return s != TrialRunning }

// HasFinite reports whether the trial has a finite result, so that
// BestValue means something: a trial whose results all diverged (NaN or
// ±Inf, recorded as non-finite) has HasValue but not HasFinite, and ranks
// below every trial that has one. Budgets start at 1, so BestBudget 0
// means none.
func (t *Trial) HasFinite() bool { return t.BestBudget > 0 }

// Trial is one point of a sweep's search space and the job that trains it.
type Trial struct {
	// Number counts a sweep's trials from 0, in suggestion order.
	Number int `json:"number"`
	// Params are the values the searcher suggested.
	Params tuning.Params `json:"params"`
	// JobID is the trial's job.
	JobID string `json:"job_id"`
	// ResultsSeen is how many of the sweep's results (a prefix of
	// Sweep.Results) the searcher's history held when it suggested this
	// trial; replay recomputes the suggestion from exactly that history.
	ResultsSeen int        `json:"results_seen"`
	State       TrialState `json:"state"`
	// Budget is the budget (epochs or steps) of the trial's latest result:
	// what it has used so far. 0 before its first result.
	Budget int `json:"budget"`
	// HasValue is false until the trial reports its first result.
	HasValue bool `json:"has_value"`
	// LastValue is the objective of the trial's latest result.
	LastValue float64 `json:"last_value"`
	// BestValue is the best objective among its finite results, reached
	// at BestBudget; BestBudget is 0 while it has none (see HasFinite).
	BestValue  float64 `json:"best_value"`
	BestBudget int     `json:"best_budget"`
	// Decision is the scheduler's decision on the latest result
	// (tuning.Decision's name), empty before the first.
	Decision string `json:"decision,omitempty"`
	// BestCheckpoint is the digest of the trial's checkpoint with the best
	// objective, once one is registered, and Checkpoint Value its value.
	BestCheckpoint      string    `json:"best_checkpoint,omitempty"`
	BestCheckpointValue float64   `json:"best_checkpoint_value,omitempty"`
	Error               string    `json:"error,omitempty"`
	StartTime           time.Time `json:"start_time"`
	EndTime             time.Time `json:"end_time,omitzero"`
}

// SweepResult is one result the sweep's scheduler judged, in the order the
// controller committed them: replaying Sweep.Results into a fresh scheduler
// built from the spec gives the same decisions.
type SweepResult struct {
	Trial  int `json:"trial"`
	Budget int `json:"budget"`
	// Value is the objective; a non-finite value (a diverged trial) is
	// recorded as 0 with NonFinite set, and counts as the worst value.
	Value     float64 `json:"value"`
	NonFinite bool    `json:"non_finite,omitempty"`
	// Decision is the scheduler's answer (tuning.Decision's name).
	Decision string    `json:"decision"`
	Time     time.Time `json:"time"`
}

// SweepBest is the best checkpoint a sweep has produced so far: what
// `trainctl serve --sweep` serves.
type SweepBest struct {
	Trial      int     `json:"trial"`
	JobID      string  `json:"job_id"`
	Checkpoint string  `json:"checkpoint"`
	Value      float64 `json:"value"`
}

// Sweep is a hyperparameter sweep. Objects returned by the state store are
// read-only; use Copy before changing one.
type Sweep struct {
	ID string `json:"id"`
	// RequestID is the client's idempotency key, as for jobs.
	RequestID string    `json:"request_id"`
	Spec      SweepSpec `json:"spec"`
	// DatasetVersionID is the version spec.job.dataset resolved to at
	// submission; every trial trains on it.
	DatasetVersionID string     `json:"dataset_version_id,omitempty"`
	State            SweepState `json:"state"`
	// Trials are indexed by number.
	Trials  []Trial       `json:"trials,omitempty"`
	Results []SweepResult `json:"results,omitempty"`
	// Best is nil until a trial has a checkpoint with an objective value.
	Best *SweepBest `json:"best,omitempty"`
	// Exhausted is set once the searcher has no more suggestions (grid).
	Exhausted   bool      `json:"exhausted,omitempty"`
	Error       string    `json:"error,omitempty"`
	SubmitTime  time.Time `json:"submit_time"`
	ModifyTime  time.Time `json:"modify_time"`
	EndTime     time.Time `json:"end_time,omitzero"`
	CreateIndex uint64    `json:"create_index"`
	ModifyIndex uint64    `json:"modify_index"`
}

// Copy returns a copy of s that shares only the (immutable) spec, params
// and best.
func (s *Sweep) Copy() *Sweep {
	c := *s
	c.Trials = slices.Clone(s.Trials)
	c.Results = slices.Clone(s.Results)
	return &c
}

// RunningTrials counts the trials that have not ended.
func (s *Sweep) RunningTrials() int {
	n := 0
	for i := range s.Trials {
		if s.Trials[i].State == TrialRunning {
			n++
		}
	}
	return n
}

// ModelVersion is one version of a named model in the model registry: a
// checkpoint that `trainctl serve --model NAME` serves (the newest version).
type ModelVersion struct {
	Name string `json:"name"`
	// Version numbers a name's versions from 1.
	Version    int    `json:"version"`
	Checkpoint string `json:"checkpoint"`
	JobID      string `json:"job_id,omitempty"`
	SweepID    string `json:"sweep_id,omitempty"`
	// Metric and Value are the objective the checkpoint was chosen by.
	Metric      string    `json:"metric,omitempty"`
	Value       float64   `json:"value,omitempty"`
	CreateTime  time.Time `json:"create_time"`
	CreateIndex uint64    `json:"create_index"`
}

// Command types of sweeps and models (see commands.go for the others and
// for the versioning rule).
const (
	// SweepSubmitV1RequestType and SweepStepV1RequestType are v1's: their
	// job specs are jobspec.Spec's JSON, decoded on top of v1's defaults.
	SweepSubmitV1RequestType MessageType = 13
	SweepStepV1RequestType   MessageType = 14
	SweepCancelRequestType   MessageType = 15
	ModelRegisterRequestType MessageType = 16
	// SweepSubmitRequestType and SweepStepRequestType (v2) carry the
	// normalized SweepSpec and JobSpec, decoded plainly.
	SweepSubmitRequestType MessageType = 18
	SweepStepRequestType   MessageType = 19
)

// SweepSubmitRequest creates a sweep in state running with no trials. The
// leader stamps SweepID and SubmitTime; a repeated RequestID returns the
// existing sweep.
type SweepSubmitRequest struct {
	SweepID          string    `json:"sweep_id"`
	RequestID        string    `json:"request_id"`
	Spec             SweepSpec `json:"spec"`
	DatasetVersionID string    `json:"dataset_version_id,omitempty"`
	SubmitTime       time.Time `json:"submit_time"`
}

// SweepStepRequest is one pass of the sweep controller over one running
// sweep, applied atomically and in this order: Results (appended to the
// sweep's results; each updates its trial, and a stop decision stops the
// trial and cancels its job), Ends (trials whose jobs ended), Checkpoints
// (trials' best checkpoints), NewTrials (each creates its trial and its
// pending job), Best, then Finish. Any invalid part rejects the whole
// request. The response is the updated *Sweep.
type SweepStepRequest struct {
	SweepID     string            `json:"sweep_id"`
	Results     []SweepResult     `json:"results,omitempty"`
	Ends        []TrialEnd        `json:"ends,omitempty"`
	Checkpoints []TrialCheckpoint `json:"checkpoints,omitempty"`
	NewTrials   []NewTrial        `json:"new_trials,omitempty"`
	Best        *SweepBest        `json:"best,omitempty"`
	// Exhausted records that the searcher has no more suggestions.
	Exhausted bool `json:"exhausted,omitempty"`
	// Finish ends the sweep; it needs every trial ended (after Ends).
	Finish *SweepFinish `json:"finish,omitempty"`
	Time   time.Time    `json:"time"`
}

// TrialEnd ends a running trial whose job ended: State is completed, failed
// or cancelled.
type TrialEnd struct {
	Trial int        `json:"trial"`
	State TrialState `json:"state"`
	Error string     `json:"error,omitempty"`
}

// TrialCheckpoint sets a trial's best checkpoint.
type TrialCheckpoint struct {
	Trial      int     `json:"trial"`
	Checkpoint string  `json:"checkpoint"`
	Value      float64 `json:"value"`
}

// NewTrial starts trial Number (the next number) with the searcher's
// Params: the FSM creates the trial and its job (pending, with spec Job,
// the sweep's dataset version, and Sweep/Trial set) in the same entry.
type NewTrial struct {
	Number      int           `json:"number"`
	Params      tuning.Params `json:"params"`
	ResultsSeen int           `json:"results_seen"`
	JobID       string        `json:"job_id"`
	Job         JobSpec       `json:"job"`
}

// SweepFinish ends a sweep: State is completed or failed. A completed sweep
// with a best checkpoint also registers that checkpoint as the next version
// of the model named after the sweep (spec.name).
type SweepFinish struct {
	State SweepState `json:"state"`
	Error string     `json:"error,omitempty"`
}

// SweepCancelRequest cancels a sweep: its running trials end cancelled and
// their jobs are cancelled. Cancelling a terminal sweep is a no-op.
type SweepCancelRequest struct {
	SweepID string    `json:"sweep_id"`
	Time    time.Time `json:"time"`
}

// ModelRegisterRequest adds the next version of a named model.
type ModelRegisterRequest struct {
	Name       string    `json:"name"`
	Checkpoint string    `json:"checkpoint"`
	JobID      string    `json:"job_id,omitempty"`
	SweepID    string    `json:"sweep_id,omitempty"`
	Metric     string    `json:"metric,omitempty"`
	Value      float64   `json:"value,omitempty"`
	Time       time.Time `json:"time"`
}
