package structs

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/trainctl/trainctl/tuning"
)

// The specs below are the server's own record of a job or a sweep: what a
// Raft command carries and what the state stores. They hold the spec as the
// endpoint validated and normalized it (every default filled in), so their
// JSON decoding is plain: no defaults, no rules. A change to the user-facing
// jobspec or tuning packages (a renamed YAML field, a tightened rule, a new
// default) changes the conversion in userspec.go, never what a committed
// entry means. Their JSON is shaped as the v1 commands' jobspec.Spec and
// tuning.Spec were, so v1 snapshots decode into them unchanged.

// JobSpec is a job's normalized spec: what to train, on which data, with
// which hyperparameters and resources.
type JobSpec struct {
	Name    string `json:"name"`
	Dataset string `json:"dataset"`
	Model   string `json:"model"`
	// Hyperparameters of training.
	Hyperparameters Hyperparameters `json:"hyperparameters"`
	// Resources each rank needs.
	Resources JobResources `json:"resources"`
	// MaxRestarts is how many failed attempts are retried.
	MaxRestarts int `json:"max_restarts"`
	// CheckpointEvery is the checkpoint interval in steps (0: epoch ends
	// only).
	CheckpointEvery int `json:"checkpoint_every"`
	// Priority orders the queue: higher runs first.
	Priority int `json:"priority"`
	// MaxTime bounds one attempt's training time; 0 is no limit.
	MaxTime Duration `json:"max_time,omitempty"`
}

// Hyperparameters are a JobSpec's training settings.
type Hyperparameters struct {
	Epochs      int     `json:"epochs"`
	Batch       int     `json:"batch"`
	LR          float64 `json:"lr"`
	Optimizer   string  `json:"optimizer"`
	Momentum    float64 `json:"momentum"`
	WeightDecay float64 `json:"weight_decay"`
	Seed        uint64  `json:"seed"`
	Flip        bool    `json:"flip"`
}

// JobResources are what one rank of a job needs on a worker.
type JobResources struct {
	Ranks       int  `json:"ranks"`
	GPUsPerRank int  `json:"gpus_per_rank"`
	CPUsPerRank int  `json:"cpus_per_rank"`
	Spot        bool `json:"spot"`
}

// SweepSpec is a sweep's normalized spec: the base job, the search space,
// the objective, the searcher, the scheduler and the limits. The search
// space is tuning's plain data (parameters and values, no defaults).
type SweepSpec struct {
	Name          string         `json:"name"`
	Job           JobSpec        `json:"job"`
	SearchSpace   tuning.Space   `json:"search_space"`
	Objective     SweepObjective `json:"objective"`
	Searcher      SweepSearcher  `json:"searcher"`
	Scheduler     SweepScheduler `json:"scheduler"`
	MaxTrials     int            `json:"max_trials"`
	MaxConcurrent int            `json:"max_concurrent"`
	Budget        SweepBudget    `json:"budget"`
	Seed          uint64         `json:"seed"`
}

// SweepObjective is the metric a sweep optimises and its direction.
type SweepObjective struct {
	Metric string      `json:"metric"`
	Mode   tuning.Mode `json:"mode"`
}

// SweepSearcher names a sweep's searcher and its options.
type SweepSearcher struct {
	Name string   `json:"name"`
	TPE  SweepTPE `json:"tpe,omitzero"`
}

// SweepTPE are the TPE searcher's options (0: the searcher's default).
type SweepTPE struct {
	NStartup    int     `json:"n_startup,omitempty"`
	NCandidates int     `json:"n_candidates,omitempty"`
	Gamma       float64 `json:"gamma,omitempty"`
}

// SweepScheduler names a sweep's early-stopping scheduler and its options
// (0: the scheduler's default).
type SweepScheduler struct {
	Name            string `json:"name"`
	ReductionFactor int    `json:"reduction_factor,omitempty"`
	GracePeriod     int    `json:"grace_period,omitempty"`
	MinTrials       int    `json:"min_trials,omitempty"`
}

// SweepBudget is the training a trial may spend, in epochs or steps.
type SweepBudget struct {
	Unit string `json:"unit"`
	Min  int    `json:"min"`
	Max  int    `json:"max"`
}

// Duration is a time.Duration written in JSON as a Go duration string
// ("90s", "1h30m").
type Duration time.Duration

// MarshalJSON writes d as a duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration: want a string, got %.20s", b)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration: %w", err)
	}
	*d = Duration(v)
	return nil
}
