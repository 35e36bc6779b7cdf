package structs

import (
	"encoding/json"
	"time"

	"github.com/trainctl/trainctl/tuning"
)

// The v1 encodings of the commands that carry a spec (JobSubmit,
// SweepSubmit, SweepStep). v1 wrote jobspec.Spec, whose JSON decoding
// started from jobspec.Defaults(), so a v1 job spec means "these fields on
// top of v1's defaults"; jobSpecV1 keeps exactly that, with the defaults
// frozen here. Its fields convert to JobSpec by a Go conversion, so a change
// to JobSpec stops the build here until this decoder gets its own copy.
//
// v1's FSM also validated sweep specs and trial jobs by the tuning and
// jobspec rules. These decoders do not: v1's endpoints and sweep controller
// validated every spec before proposing it, so every committed v1 entry
// passed, and a later, stricter rule must not turn an old entry down.

// jobSpecV1 is a job spec as v1 encoded it.
type jobSpecV1 struct {
	Name            string          `json:"name"`
	Dataset         string          `json:"dataset"`
	Model           string          `json:"model"`
	Hyperparameters Hyperparameters `json:"hyperparameters"`
	Resources       JobResources    `json:"resources"`
	MaxRestarts     int             `json:"max_restarts"`
	CheckpointEvery int             `json:"checkpoint_every"`
	Priority        int             `json:"priority"`
	MaxTime         Duration        `json:"max_time,omitempty"`
}

// jobSpecV1Defaults are jobspec.Defaults() as of v1.
func jobSpecV1Defaults() jobSpecV1 {
	return jobSpecV1{
		Model: "unet-s",
		Hyperparameters: Hyperparameters{
			Epochs: 10, Batch: 8, LR: 0.001, Optimizer: "adam", Momentum: 0.9, Seed: 1,
		},
		Resources:       JobResources{Ranks: 1, CPUsPerRank: 1},
		MaxRestarts:     3,
		CheckpointEvery: 100,
		Priority:        50,
	}
}

// UnmarshalJSON decodes a v1 job spec on top of v1's defaults.
func (s *jobSpecV1) UnmarshalJSON(data []byte) error {
	type plain jobSpecV1 // without this method
	p := plain(jobSpecV1Defaults())
	if err := json.Unmarshal(data, &p); err != nil {
		return err
	}
	*s = jobSpecV1(p)
	return nil
}

type jobSubmitV1 struct {
	JobID            string    `json:"job_id"`
	RequestID        string    `json:"request_id"`
	Spec             jobSpecV1 `json:"spec"`
	DatasetVersionID string    `json:"dataset_version_id,omitempty"`
	SubmitTime       time.Time `json:"submit_time"`
}

// DecodeJobSubmitV1 decodes an entry of JobSubmitV1RequestType.
func DecodeJobSubmitV1(payload []byte) (*JobSubmitRequest, error) {
	v, err := DecodeAs[jobSubmitV1](payload)
	if err != nil {
		return nil, err
	}
	return &JobSubmitRequest{
		JobID: v.JobID, RequestID: v.RequestID, Spec: JobSpec(v.Spec),
		DatasetVersionID: v.DatasetVersionID, SubmitTime: v.SubmitTime,
	}, nil
}

// sweepSpecV1 is a sweep spec as v1 encoded it (tuning.Spec's JSON, which
// had no defaults of its own: only its job took jobspec's).
type sweepSpecV1 struct {
	Name          string         `json:"name"`
	Job           jobSpecV1      `json:"job"`
	SearchSpace   tuning.Space   `json:"search_space"`
	Objective     SweepObjective `json:"objective"`
	Searcher      SweepSearcher  `json:"searcher"`
	Scheduler     SweepScheduler `json:"scheduler"`
	MaxTrials     int            `json:"max_trials"`
	MaxConcurrent int            `json:"max_concurrent"`
	Budget        SweepBudget    `json:"budget"`
	Seed          uint64         `json:"seed"`
}

func (s sweepSpecV1) upgrade() SweepSpec {
	return SweepSpec{
		Name: s.Name, Job: JobSpec(s.Job), SearchSpace: s.SearchSpace, Objective: s.Objective,
		Searcher: s.Searcher, Scheduler: s.Scheduler, MaxTrials: s.MaxTrials, MaxConcurrent: s.MaxConcurrent,
		Budget: s.Budget, Seed: s.Seed,
	}
}

type sweepSubmitV1 struct {
	SweepID          string      `json:"sweep_id"`
	RequestID        string      `json:"request_id"`
	Spec             sweepSpecV1 `json:"spec"`
	DatasetVersionID string      `json:"dataset_version_id,omitempty"`
	SubmitTime       time.Time   `json:"submit_time"`
}

// DecodeSweepSubmitV1 decodes an entry of SweepSubmitV1RequestType.
func DecodeSweepSubmitV1(payload []byte) (*SweepSubmitRequest, error) {
	v, err := DecodeAs[sweepSubmitV1](payload)
	if err != nil {
		return nil, err
	}
	return &SweepSubmitRequest{
		SweepID: v.SweepID, RequestID: v.RequestID, Spec: v.Spec.upgrade(),
		DatasetVersionID: v.DatasetVersionID, SubmitTime: v.SubmitTime,
	}, nil
}

type newTrialV1 struct {
	Number      int           `json:"number"`
	Params      tuning.Params `json:"params"`
	ResultsSeen int           `json:"results_seen"`
	JobID       string        `json:"job_id"`
	Job         jobSpecV1     `json:"job"`
}

type sweepStepV1 struct {
	SweepID     string            `json:"sweep_id"`
	Results     []SweepResult     `json:"results,omitempty"`
	Ends        []TrialEnd        `json:"ends,omitempty"`
	Checkpoints []TrialCheckpoint `json:"checkpoints,omitempty"`
	NewTrials   []newTrialV1      `json:"new_trials,omitempty"`
	Best        *SweepBest        `json:"best,omitempty"`
	Exhausted   bool              `json:"exhausted,omitempty"`
	Finish      *SweepFinish      `json:"finish,omitempty"`
	Time        time.Time         `json:"time"`
}

// DecodeSweepStepV1 decodes an entry of SweepStepV1RequestType.
func DecodeSweepStepV1(payload []byte) (*SweepStepRequest, error) {
	v, err := DecodeAs[sweepStepV1](payload)
	if err != nil {
		return nil, err
	}
	req := &SweepStepRequest{
		SweepID: v.SweepID, Results: v.Results, Ends: v.Ends, Checkpoints: v.Checkpoints,
		Best: v.Best, Exhausted: v.Exhausted, Finish: v.Finish, Time: v.Time,
	}
	for _, nt := range v.NewTrials {
		req.NewTrials = append(req.NewTrials, NewTrial{
			Number: nt.Number, Params: nt.Params, ResultsSeen: nt.ResultsSeen, JobID: nt.JobID, Job: JobSpec(nt.Job),
		})
	}
	return req, nil
}
