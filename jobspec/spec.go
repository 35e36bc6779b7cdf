package jobspec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode"

	"gopkg.in/yaml.v3"

	"github.com/trainctl/trainctl/dataset"
	"github.com/trainctl/trainctl/internal/strictyaml"
)

// ModelUNetS is UNet-S of docs/architecture.md, sized to the dataset's images,
// channels and classes. It is the only model today.
const ModelUNetS = "unet-s"

// Optimizers a spec may name.
const (
	OptimizerAdam = "adam"
	OptimizerSGD  = "sgd"
)

// Limits that validation enforces.
const (
	// MaxPriority is the highest priority; MinPriority the lowest.
	MinPriority = 0
	MaxPriority = 100
	// MaxNameLen is the longest job name, in bytes.
	MaxNameLen = 128
	// MaxBatch is the largest batch the trainer accepts.
	MaxBatch = 4096
	// MaxRanks bounds resources.ranks.
	MaxRanks = 1024
	// MaxRestartsLimit bounds max_restarts.
	MaxRestartsLimit = 100
	// MaxGPUsPerRank and MaxCPUsPerRank bound resources.gpus_per_rank and
	// resources.cpus_per_rank.
	MaxGPUsPerRank = 64
	MaxCPUsPerRank = 1024
	// MaxEpochs bounds hyperparameters.epochs. Every epoch adds an
	// epoch-end report to the attempt's result and to what the coordinator
	// keeps of the job, and the trainer plans epochs × steps per epoch in
	// an int64; 100,000 epochs (a day of one-second epochs) is more than
	// any job needs, and keeps that product far from overflowing for any
	// dataset.
	MaxEpochs = 100_000
	// MaxCheckpointEvery bounds checkpoint_every, in steps: a billion steps
	// is past the length of any job (so larger values would only mean
	// "at epoch ends"), and the bound keeps step arithmetic within 32 bits
	// whether the spec came as YAML or as JSON.
	MaxCheckpointEvery = 1_000_000_000
)

// ErrInvalid is wrapped by every error Parse and Validate return, so
// callers (the API answering 400) can branch with errors.Is.
var ErrInvalid = errors.New("invalid job spec")

// Spec is a training job: what to train, on which data, with which
// hyperparameters and resources. It is what `trainctl submit -f job.yaml`
// reads (see Parse) and what the /v1/jobs API carries as JSON; the
// coordinator stores it with the job.
//
// A Spec from Parse or from JSON (UnmarshalJSON) has every omitted field at
// its default (see Defaults); Validate checks the result.
type Spec struct {
	// Name labels the job in listings: 1 to MaxNameLen bytes, no control
	// characters. Required. It need not be unique; the coordinator assigns
	// job ids.
	Name string `json:"name" yaml:"name"`
	// Dataset is a dataset reference NAME[@VERSION]: NAME or NAME@latest
	// (resolved to the newest version at submission), NAME@v3, or
	// NAME@<id prefix of at least 6 hex digits>. Required.
	Dataset string `json:"dataset" yaml:"dataset"`
	// Model is the network to train; only ModelUNetS today (default).
	Model string `json:"model" yaml:"model"`
	// Hyperparameters of training.
	Hyperparameters Hyperparameters `json:"hyperparameters" yaml:"hyperparameters"`
	// Resources each rank of the job needs.
	Resources Resources `json:"resources" yaml:"resources"`
	// MaxRestarts is how many times a failed attempt is retried, on another
	// worker where one fits (default 3; 0..MaxRestartsLimit). Preemptions
	// do not count.
	MaxRestarts int `json:"max_restarts" yaml:"max_restarts"`
	// CheckpointEvery writes a checkpoint every that many steps, besides
	// every epoch end and the stop (default 100; 0 means only those; at
	// most MaxCheckpointEvery).
	CheckpointEvery int `json:"checkpoint_every" yaml:"checkpoint_every"`
	// Priority orders the queue: higher runs first (default 50;
	// MinPriority..MaxPriority).
	Priority int `json:"priority" yaml:"priority"`
	// MaxTime, when not zero, stops training after this much wall time in
	// one attempt (like `trainctl train --max-time`); at least 1s.
	MaxTime Duration `json:"max_time,omitempty" yaml:"max_time,omitempty"`
}

// Hyperparameters are the training settings of a Spec.
type Hyperparameters struct {
	// Epochs is the number of passes over the train split (default 10;
	// 1..MaxEpochs).
	Epochs int `json:"epochs" yaml:"epochs"`
	// Batch is the number of examples per step (default 8; 1..MaxBatch).
	Batch int `json:"batch" yaml:"batch"`
	// LR is the learning rate (default 0.001; positive).
	LR float64 `json:"lr" yaml:"lr"`
	// Optimizer is OptimizerAdam (default) or OptimizerSGD.
	Optimizer string `json:"optimizer" yaml:"optimizer"`
	// Momentum is SGD's momentum coefficient, or Adam's β1 (default 0.9;
	// in [0, 1) for sgd, in (0, 1) for adam).
	Momentum float64 `json:"momentum" yaml:"momentum"`
	// WeightDecay shrinks the weights every step (decoupled for Adam, L2
	// for SGD; default 0; not negative).
	WeightDecay float64 `json:"weight_decay" yaml:"weight_decay"`
	// Seed fixes weight initialisation, data order and augmentation
	// (default 1).
	Seed uint64 `json:"seed" yaml:"seed"`
	// Flip applies random horizontal flips to training examples (default
	// false).
	Flip bool `json:"flip" yaml:"flip"`
}

// Resources are what one rank of a job needs on a worker. The scheduler
// places all ranks at once or none.
type Resources struct {
	// Ranks is the number of data-parallel processes (default 1;
	// 1..MaxRanks).
	Ranks int `json:"ranks" yaml:"ranks"`
	// GPUsPerRank is the number of GPUs each rank needs (default 0: CPU;
	// 0..MaxGPUsPerRank).
	GPUsPerRank int `json:"gpus_per_rank" yaml:"gpus_per_rank"`
	// CPUsPerRank is the number of cores each rank needs, and the thread
	// count of its training engine (default 1; 1..MaxCPUsPerRank).
	CPUsPerRank int `json:"cpus_per_rank" yaml:"cpus_per_rank"`
	// Spot allows placement on spot (preemptible) workers; default false,
	// on-demand workers only.
	Spot bool `json:"spot" yaml:"spot"`
}

// Defaults returns the Spec every omitted field takes its value from:
//
//	model: unet-s
//	hyperparameters: {epochs: 10, batch: 8, lr: 0.001, optimizer: adam,
//	                  momentum: 0.9, weight_decay: 0, seed: 1, flip: false}
//	resources: {ranks: 1, gpus_per_rank: 0, cpus_per_rank: 1, spot: false}
//	max_restarts: 3
//	checkpoint_every: 100
//	priority: 50
//	max_time: none
//
// Name and Dataset have no default.
func Defaults() Spec {
	return Spec{
		Model: ModelUNetS,
		Hyperparameters: Hyperparameters{
			Epochs: 10, Batch: 8, LR: 0.001, Optimizer: OptimizerAdam, Momentum: 0.9, Seed: 1,
		},
		Resources:       Resources{Ranks: 1, CPUsPerRank: 1},
		MaxRestarts:     3,
		CheckpointEvery: 100,
		Priority:        50,
	}
}

// WithDefaults returns s with the default (see Defaults) in every field
// that is at its zero value where zero is not a valid setting: model,
// epochs, batch, lr, optimizer, ranks and cpus_per_rank. Fields whose zero
// is a setting of its own (momentum 0, seed 0, priority 0, max_restarts 0,
// checkpoint_every 0, spot false) are kept: a Spec built in Go should start
// from Defaults() to get those. Parse and UnmarshalJSON already start from
// Defaults(), so their results need no WithDefaults.
func (s Spec) WithDefaults() Spec {
	d := Defaults()
	if s.Model == "" {
		s.Model = d.Model
	}
	h, dh := &s.Hyperparameters, d.Hyperparameters
	if h.Epochs == 0 {
		h.Epochs = dh.Epochs
	}
	if h.Batch == 0 {
		h.Batch = dh.Batch
	}
	if h.LR == 0 {
		h.LR = dh.LR
	}
	if h.Optimizer == "" {
		h.Optimizer = dh.Optimizer
	}
	if s.Resources.Ranks == 0 {
		s.Resources.Ranks = d.Resources.Ranks
	}
	if s.Resources.CPUsPerRank == 0 {
		s.Resources.CPUsPerRank = d.Resources.CPUsPerRank
	}
	return s
}

// UnmarshalJSON decodes a JSON spec strictly (an unknown field is an
// error) on top of Defaults(), so omitted fields take their defaults and
// explicit zeros stay zeros. It does not validate; call Validate.
func (s *Spec) UnmarshalJSON(data []byte) error {
	type plain Spec // without this method
	p := plain(Defaults())
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if dec.More() {
		return fmt.Errorf("%w: trailing data after the JSON object", ErrInvalid)
	}
	*s = Spec(p)
	return nil
}

// YAML encodes s as a YAML job spec that Parse reads back to s.
func (s Spec) YAML() ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(s); err != nil {
		return nil, fmt.Errorf("encode job spec: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encode job spec: %w", err)
	}
	return buf.Bytes(), nil
}

// Validate checks every field of s and returns nil or an Errors listing
// every problem, each naming its field (for specs that arrive as JSON;
// Parse validates too and adds lines).
func (s Spec) Validate() error {
	if errs := s.check(); len(errs) > 0 {
		return errs
	}
	return nil
}

// check returns the validation errors of s, without file or line.
func (s Spec) check() Errors {
	var errs Errors
	bad := func(field, format string, args ...any) {
		errs = append(errs, &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	intRange := func(field string, v, lo, hi int) {
		if v < lo || v > hi {
			bad(field, "must be in %d..%d, got %d", lo, hi, v)
		}
	}
	finite := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

	switch {
	case s.Name == "":
		bad("name", "required")
	case len(s.Name) > MaxNameLen:
		bad("name", "is %d bytes, the limit is %d", len(s.Name), MaxNameLen)
	case strings.IndexFunc(s.Name, unicode.IsControl) >= 0:
		bad("name", "%q contains control characters", s.Name)
	case strings.TrimSpace(s.Name) == "":
		bad("name", "is blank")
	}
	if s.Dataset == "" {
		bad("dataset", "required (NAME or NAME@VERSION)")
	} else if _, err := dataset.ParseRef(s.Dataset); err != nil {
		bad("dataset", "%s is not NAME[@VERSION] (NAME: a-z 0-9 . _ -; VERSION: latest, v<N> or an id prefix of %d+ hex digits)",
			strictyaml.Quote(s.Dataset), dataset.MinIDPrefix)
	}
	if s.Model != ModelUNetS {
		bad("model", "%s is not a known model (known: %s)", strictyaml.Quote(s.Model), ModelUNetS)
	}

	h := s.Hyperparameters
	intRange("hyperparameters.epochs", h.Epochs, 1, MaxEpochs)
	intRange("hyperparameters.batch", h.Batch, 1, MaxBatch)
	if !finite(h.LR) || h.LR <= 0 {
		bad("hyperparameters.lr", "must be a positive number, got %v", h.LR)
	}
	switch h.Optimizer {
	case OptimizerAdam:
		if !finite(h.Momentum) || h.Momentum <= 0 || h.Momentum >= 1 {
			bad("hyperparameters.momentum", "must be in (0, 1) with optimizer adam (it is Adam's β1), got %v", h.Momentum)
		}
	case OptimizerSGD:
		if !finite(h.Momentum) || h.Momentum < 0 || h.Momentum >= 1 {
			bad("hyperparameters.momentum", "must be in [0, 1) with optimizer sgd, got %v", h.Momentum)
		}
	default:
		bad("hyperparameters.optimizer", "%s is not one of %s, %s", strictyaml.Quote(h.Optimizer), OptimizerAdam, OptimizerSGD)
	}
	if !finite(h.WeightDecay) || h.WeightDecay < 0 {
		bad("hyperparameters.weight_decay", "must be a number >= 0, got %v", h.WeightDecay)
	}

	r := s.Resources
	intRange("resources.ranks", r.Ranks, 1, MaxRanks)
	intRange("resources.gpus_per_rank", r.GPUsPerRank, 0, MaxGPUsPerRank)
	intRange("resources.cpus_per_rank", r.CPUsPerRank, 1, MaxCPUsPerRank)
	if r.Ranks > 1 && r.Ranks <= MaxRanks && h.Batch > 0 && h.Batch%r.Ranks != 0 {
		bad("hyperparameters.batch", "%d examples do not split across %d ranks (resources.ranks); each rank computes batch/ranks examples of every step", h.Batch, r.Ranks)
	}

	intRange("max_restarts", s.MaxRestarts, 0, MaxRestartsLimit)
	if s.CheckpointEvery < 0 || s.CheckpointEvery > MaxCheckpointEvery {
		bad("checkpoint_every", "must be in 0..%d steps (0: only at epoch ends), got %d", MaxCheckpointEvery, s.CheckpointEvery)
	}
	intRange("priority", s.Priority, MinPriority, MaxPriority)
	if d := time.Duration(s.MaxTime); d != 0 && d < time.Second {
		bad("max_time", "must be at least 1s (or omitted for no limit), got %v", d)
	}
	return errs
}

// Duration is a time.Duration written as a Go duration string ("90s",
// "10m", "1h30m") in YAML and JSON.
type Duration time.Duration

// String formats d as time.Duration does.
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalJSON writes d as a duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration: want a string like \"10m\", got %s", b)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration: %s is not a duration (like 90s, 10m or 1h30m)", strictyaml.Quote(s))
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes d as a duration string.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }
