package tuning

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/trainctl/trainctl/internal/strictyaml"
	"github.com/trainctl/trainctl/jobspec"
)

// Searcher and scheduler names a sweep spec may use.
const (
	SearcherGrid   = "grid"
	SearcherRandom = "random"
	SearcherTPE    = "tpe"

	SchedulerFIFO      = "fifo"
	SchedulerASHA      = "asha"
	SchedulerHyperband = "hyperband"
	SchedulerMedian    = "median"
)

// Budget units.
const (
	UnitEpochs = "epochs"
	UnitSteps  = "steps"
)

// Limits that validation enforces, besides those of the search space
// (MaxParams, MaxGridPoints, MaxChoices, MaxValueLen, MaxGridSize). Each
// bounds a count that drives work or memory on the leader, which runs
// every sweep's searcher and scheduler and keeps every trial in its state.
const (
	// MaxTrialsLimit bounds max_trials. Each trial is a job and a record
	// in the replicated state; 100,000 is ten times the largest sweep the
	// controller's benchmark drives.
	MaxTrialsLimit = 100_000
	// MaxTPECandidates bounds searcher.n_candidates (Optuna's default is
	// 24).
	MaxTPECandidates = 10_000
	// MaxTPEWork bounds max_trials × n_candidates for searcher tpe. A TPE
	// suggestion scores every candidate against every earlier trial, at
	// about a microsecond a pair on one core, so the product bounds the
	// leader's time per suggestion to about a quarter of a second. With
	// the default 24 candidates it allows 10,922 trials, past the point
	// where TPE's model stops improving.
	MaxTPEWork = 1 << 18
	// MaxBudgetLimit bounds budget.min and budget.max (with unit epochs,
	// budget.max is also a job's epochs and so at most jobspec.MaxEpochs).
	// Schedulers place rungs at budget.min × η^k up to budget.max; the
	// bound keeps those products far from overflowing an int.
	MaxBudgetLimit = 1_000_000_000
	// MaxReductionFactor bounds scheduler.reduction_factor (η); real
	// settings are 2 to 10, and a larger η leaves a single rung.
	MaxReductionFactor = 100
	// MaxMetricLen bounds objective.metric, in bytes; the trainer's
	// metric names are a dozen bytes.
	MaxMetricLen = 128
)

// HyperparameterNames are the search-space parameter names a sweep may
// use: the fields of jobspec.Hyperparameters, in name order.
var HyperparameterNames = []string{"batch", "epochs", "flip", "lr", "momentum", "optimizer", "seed", "weight_decay"}

// Spec is a sweep: a base job, a search space over its hyperparameters,
// an objective, a searcher and an early-stopping scheduler. It is what
// `trainctl sweep -f sweep.yaml` reads (see Parse); Defaults documents
// the default of every omitted field.
type Spec struct {
	// Name labels the sweep and names the model its best checkpoint is
	// registered as when it finishes, so it follows CheckModelName's rule:
	// 1 to jobspec.MaxNameLen bytes of letters, digits, '.', '_' and '-'.
	// Required.
	Name string `json:"name"`
	// Job is the base job every trial runs, with the trial's parameters
	// in its hyperparameters (see TrialJob). Required.
	Job jobspec.Spec `json:"job"`
	// SearchSpace are the hyperparameters to tune (names from
	// HyperparameterNames). Required.
	SearchSpace Space `json:"search_space"`
	// Objective is the metric to optimise. Required.
	Objective Objective `json:"objective"`
	// Searcher picks each trial's parameters (default random).
	Searcher SearcherSpec `json:"searcher"`
	// Scheduler stops trials early (default fifo: never).
	Scheduler SchedulerSpec `json:"scheduler"`
	// MaxTrials is how many trials the sweep runs at most (default 20;
	// 1..MaxTrialsLimit; with searcher tpe, MaxTrials × n_candidates is
	// at most MaxTPEWork). Grid search may end sooner.
	MaxTrials int `json:"max_trials"`
	// MaxConcurrent is how many trials run at once (default 1; at least 1,
	// at most max_trials).
	MaxConcurrent int `json:"max_concurrent"`
	// Budget is what a trial may spend.
	Budget Budget `json:"budget"`
	// Seed seeds the searcher (default 1).
	Seed uint64 `json:"seed"`
}

// Objective is the metric a sweep optimises.
type Objective struct {
	// Metric is the name of a metric the trainer reports, such as
	// val_mean_iou or val_loss: 1 to MaxMetricLen bytes. Required.
	Metric string `json:"metric"`
	// Mode is min or max. Required.
	Mode Mode `json:"mode"`
}

// SearcherSpec names the searcher and its options.
type SearcherSpec struct {
	// Name is grid, random (default) or tpe.
	Name string `json:"name"`
	// TPE holds the options of tpe (n_startup, n_candidates, gamma); zero
	// fields take their defaults.
	TPE TPEConfig `json:"tpe,omitzero"`
}

// SchedulerSpec names the scheduler and its options.
type SchedulerSpec struct {
	// Name is fifo (default), asha, hyperband or median.
	Name string `json:"name"`
	// ReductionFactor is η of asha and hyperband (0: their default, 3;
	// else 2..MaxReductionFactor).
	ReductionFactor int `json:"reduction_factor,omitempty"`
	// GracePeriod is the smallest budget at which asha, hyperband or
	// median may stop a trial (0: budget.min).
	GracePeriod int `json:"grace_period,omitempty"`
	// MinTrials is median's number of other trials that must have reported
	// before it stops one (0: its default, 3).
	MinTrials int `json:"min_trials,omitempty"`
}

// Budget is the training a trial may spend, in epochs or steps.
type Budget struct {
	// Unit is epochs (default) or steps.
	Unit string `json:"unit"`
	// Min is the smallest budget at which a trial is judged (default 1;
	// 1..MaxBudgetLimit).
	Min int `json:"min"`
	// Max is the budget at which a trial completes (default: the job's
	// epochs with unit epochs, at most jobspec.MaxEpochs; required with
	// unit steps, at most MaxBudgetLimit).
	Max int `json:"max"`
}

// Defaults returns the Spec every omitted field takes its value from:
// searcher random, scheduler fifo, max_trials 20, max_concurrent 1,
// budget {unit: epochs, min: 1, max: the job's epochs}, seed 1, and the
// job's own defaults (jobspec.Defaults). Budget.Max is left 0 here and
// filled in by Parse.
func Defaults() Spec {
	return Spec{
		Job:           jobspec.Defaults(),
		Searcher:      SearcherSpec{Name: SearcherRandom},
		Scheduler:     SchedulerSpec{Name: SchedulerFIFO},
		MaxTrials:     20,
		MaxConcurrent: 1,
		Budget:        Budget{Unit: UnitEpochs, Min: 1},
		Seed:          1,
	}
}

// ApplyParams sets the hyperparameters named in p on h, in name order.
// Float hyperparameters (lr, momentum, weight_decay) take numbers; integer
// ones (batch, epochs, seed) take integers; optimizer takes a string and
// flip a boolean. It does not validate the values; jobspec.Spec.Validate
// does.
func ApplyParams(h *jobspec.Hyperparameters, p Params) error {
	for _, name := range p.Names() {
		v := p[name]
		wantNum := func(dst *float64) error {
			if !v.IsNumber() {
				return fmt.Errorf("%s is a number, got %s %q", name, v.Kind(), v)
			}
			*dst = v.Float()
			return nil
		}
		wantInt := func(set func(int64) error) error {
			if v.Kind() != KindInt {
				return fmt.Errorf("%s is an integer hyperparameter (use type int or a choice of integers), got %s %s", name, v.Kind(), v)
			}
			return set(v.Int())
		}
		var err error
		switch name {
		case "lr":
			err = wantNum(&h.LR)
		case "momentum":
			err = wantNum(&h.Momentum)
		case "weight_decay":
			err = wantNum(&h.WeightDecay)
		case "batch":
			err = wantInt(func(i int64) error { h.Batch = int(clampInt(i)); return nil })
		case "epochs":
			err = wantInt(func(i int64) error { h.Epochs = int(clampInt(i)); return nil })
		case "seed":
			err = wantInt(func(i int64) error {
				if i < 0 {
					return fmt.Errorf("seed must be >= 0, got %d", i)
				}
				h.Seed = uint64(i)
				return nil
			})
		case "optimizer":
			if v.Kind() != KindString {
				err = fmt.Errorf("optimizer is a string (a choice of %s, %s), got %s %s", jobspec.OptimizerAdam, jobspec.OptimizerSGD, v.Kind(), v)
			} else {
				h.Optimizer = v.Str()
			}
		case "flip":
			if v.Kind() != KindBool {
				err = fmt.Errorf("flip is a boolean (a choice of true, false), got %s %q", v.Kind(), v)
			} else {
				h.Flip = v.Bool()
			}
		default:
			err = fmt.Errorf("%s is not a hyperparameter (known: %s)", name, strings.Join(HyperparameterNames, ", "))
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func clampInt(i int64) int64 { return max(min(i, math.MaxInt32), math.MinInt32) }

// TrialJob returns the job a trial with parameters p runs: the base job
// with p applied and, with budget unit epochs, epochs set to budget.max.
// The result is validated.
func (s Spec) TrialJob(p Params) (jobspec.Spec, error) {
	job := s.Job
	if err := ApplyParams(&job.Hyperparameters, p); err != nil {
		return jobspec.Spec{}, fmt.Errorf("sweep %s: %w", s.Name, err)
	}
	if s.Budget.Unit == UnitEpochs && s.Budget.Max > 0 {
		job.Hyperparameters.Epochs = s.Budget.Max
	}
	if err := job.Validate(); err != nil {
		return jobspec.Spec{}, fmt.Errorf("sweep %s: trial parameters %s: %w", s.Name, p, err)
	}
	return job, nil
}

// NewSearcher returns the searcher the spec names, over its space and
// seed.
func (s Spec) NewSearcher() (Searcher, error) {
	switch s.Searcher.Name {
	case SearcherGrid:
		return NewGrid(s.SearchSpace)
	case SearcherRandom, "":
		return NewRandom(s.SearchSpace, s.Seed)
	case SearcherTPE:
		return NewTPE(s.SearchSpace, s.Seed, s.Objective.Mode, s.Searcher.TPE)
	}
	return nil, fmt.Errorf("tuning: unknown searcher %s", strictyaml.Quote(s.Searcher.Name))
}

// check validates s (after its defaults) and returns the problems without
// file or line; Parse adds them. The job is checked by jobspec already.
func (s Spec) check() jobspec.Errors {
	var errs jobspec.Errors
	bad := func(field, format string, args ...any) {
		errs = append(errs, &jobspec.FieldError{Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	if s.Name == "" {
		bad("name", "required")
	} else if err := CheckModelName(s.Name); err != nil {
		bad("name", "%v (a finished sweep registers its best checkpoint as a model of this name)", err)
	}

	if len(s.SearchSpace.Params) == 0 {
		bad("search_space", "required: at least one of %s", strings.Join(HyperparameterNames, ", "))
	}
	jobOK := s.Job.Validate() == nil
	for i, p := range s.SearchSpace.Params {
		field := "search_space." + p.Name
		if i > 0 && s.SearchSpace.Params[i-1].Name >= p.Name {
			bad(field, "parameters must be unique and sorted by name (after %s)", s.SearchSpace.Params[i-1].Name)
		}
		known := false
		for _, n := range HyperparameterNames {
			known = known || n == p.Name
		}
		if !known {
			bad(field, "not a hyperparameter (known: %s)", strings.Join(HyperparameterNames, ", "))
			continue
		}
		if probs := p.problems(); len(probs) > 0 {
			for _, m := range probs {
				bad(field, "%s", m)
			}
			continue
		}
		if p.Name == "epochs" && s.Budget.Unit == UnitEpochs {
			bad(field, "epochs is set by budget.max when budget.unit is epochs; tune it with budget and a scheduler instead")
			continue
		}
		if p.Name == "batch" && p.Type != Choice && s.Job.Resources.Ranks > 1 {
			bad(field, "with resources.ranks %d the batch must divide by %d, which a range cannot promise: tune it as a choice of multiples of %d",
				s.Job.Resources.Ranks, s.Job.Resources.Ranks, s.Job.Resources.Ranks)
			continue
		}
		if s.Searcher.Name == SearcherGrid && p.GridPoints == 0 && (p.Type == Uniform || p.Type == LogUniform) {
			bad(field, "grid search needs grid_points (how many values to take from low..high)")
		}
		// Every value the parameter can take must give a valid job: the
		// constraints are intervals, so the range's ends (or every choice)
		// suffice.
		if !jobOK {
			continue
		}
		var probe []Value
		switch p.Type {
		case Choice:
			probe = p.Values
		case Int:
			probe = []Value{IntValue(int64(p.Low)), IntValue(int64(p.High))}
		default:
			probe = []Value{Float(p.Low), Float(p.High)}
		}
		for _, v := range probe {
			job := s.Job
			if err := ApplyParams(&job.Hyperparameters, Params{p.Name: v}); err != nil {
				bad(field, "%v", err)
				break
			}
			if err := job.Validate(); err != nil {
				bad(field, "value %s makes an invalid job: %v", v, strings.ReplaceAll(err.Error(), "\n", "; "))
				break
			}
		}
	}

	if s.Searcher.Name == SearcherGrid && s.SearchSpace.Validate() == nil {
		for _, e := range gridProblems(s.SearchSpace) {
			bad(e[0], "%s", e[1])
		}
	}

	switch {
	case s.Objective.Metric == "":
		bad("objective.metric", "required (a metric the trainer reports, such as val_mean_iou)")
	case len(s.Objective.Metric) > MaxMetricLen:
		bad("objective.metric", "is %d bytes, the limit is %d", len(s.Objective.Metric), MaxMetricLen)
	}
	switch s.Objective.Mode {
	case Minimize, Maximize:
	case "":
		bad("objective.mode", "required (min or max)")
	default:
		bad("objective.mode", "%s is not min or max", strictyaml.Quote(string(s.Objective.Mode)))
	}

	switch s.Searcher.Name {
	case SearcherGrid, SearcherRandom:
	case SearcherTPE:
		prs := s.Searcher.TPE.problems()
		for _, pr := range prs {
			bad("searcher."+pr[0], "%s", pr[1])
		}
		nc := s.Searcher.TPE.withDefaults().NCandidates
		if len(prs) == 0 && s.MaxTrials >= 1 && s.MaxTrials <= MaxTrialsLimit && s.MaxTrials > MaxTPEWork/nc {
			bad("max_trials", "with searcher tpe, max_trials × n_candidates must be at most %d (each suggestion scores every candidate against every trial), got %d × %d; use at most %d trials or fewer candidates",
				MaxTPEWork, s.MaxTrials, nc, MaxTPEWork/nc)
		}
	default:
		bad("searcher.name", "%s is not one of grid, random, tpe", strictyaml.Quote(s.Searcher.Name))
	}

	sc := s.Scheduler
	switch sc.Name {
	case SchedulerFIFO, SchedulerASHA, SchedulerHyperband, SchedulerMedian:
	default:
		bad("scheduler.name", "%s is not one of fifo, asha, hyperband, median", strictyaml.Quote(sc.Name))
	}
	if sc.ReductionFactor != 0 && (sc.ReductionFactor < 2 || sc.ReductionFactor > MaxReductionFactor) {
		bad("scheduler.reduction_factor", "must be in 2..%d, got %d", MaxReductionFactor, sc.ReductionFactor)
	}
	if sc.GracePeriod < 0 || (s.Budget.Max > 0 && sc.GracePeriod > s.Budget.Max) {
		bad("scheduler.grace_period", "must be in 0..budget.max (%d), got %d", s.Budget.Max, sc.GracePeriod)
	}
	if sc.MinTrials < 0 || sc.MinTrials > MaxTrialsLimit {
		bad("scheduler.min_trials", "must be in 0..%d, got %d", MaxTrialsLimit, sc.MinTrials)
	}

	if s.MaxTrials < 1 || s.MaxTrials > MaxTrialsLimit {
		bad("max_trials", "must be in 1..%d, got %d", MaxTrialsLimit, s.MaxTrials)
	}
	if s.MaxConcurrent < 1 || (s.MaxTrials >= 1 && s.MaxConcurrent > s.MaxTrials) {
		bad("max_concurrent", "must be in 1..max_trials (%d), got %d", s.MaxTrials, s.MaxConcurrent)
	}

	b := s.Budget
	switch b.Unit {
	case UnitEpochs, UnitSteps:
	default:
		bad("budget.unit", "%s is not epochs or steps", strictyaml.Quote(b.Unit))
	}
	if b.Min < 1 || b.Min > MaxBudgetLimit {
		bad("budget.min", "must be in 1..%d, got %d", MaxBudgetLimit, b.Min)
	}
	switch {
	case b.Max == 0 && b.Unit == UnitSteps:
		bad("budget.max", "required with unit steps")
	case b.Max < b.Min && b.Min >= 1:
		bad("budget.max", "must be at least budget.min (%d), got %d", b.Min, b.Max)
	case b.Unit == UnitEpochs && b.Max > jobspec.MaxEpochs:
		bad("budget.max", "must be at most %d with unit epochs (it sets the job's epochs), got %d", jobspec.MaxEpochs, b.Max)
	case b.Max > MaxBudgetLimit:
		bad("budget.max", "must be at most %d, got %d", MaxBudgetLimit, b.Max)
	}
	return errs
}

// Validate checks every field of s and returns nil or a jobspec.Errors
// listing every problem, each naming its field (for specs that arrive as
// JSON; Parse validates too and adds lines).
func (s Spec) Validate() error {
	var errs jobspec.Errors
	if err := s.Job.Validate(); err != nil {
		if je, ok := err.(jobspec.Errors); ok {
			for _, e := range je {
				c := *e
				c.Field = "job." + c.Field
				errs = append(errs, &c)
			}
		}
	}
	errs = append(errs, s.check()...)
	if len(errs) > 0 {
		return errs
	}
	return nil
}

// gridProblems lists (field, message) pairs of what keeps grid search from
// listing the valid space: a parameter without grid values, or a grid of
// more than MaxGridSize points. Uniform and loguniform ranges without
// grid_points are left out; check reports them.
func gridProblems(space Space) [][2]string {
	var out [][2]string
	size, factors := 1.0, make([]string, 0, len(space.Params))
	for _, p := range space.Params {
		if p.GridPoints == 0 && (p.Type == Uniform || p.Type == LogUniform) {
			return out
		}
		k, err := gridCount(p)
		if err != nil {
			msg := strings.TrimPrefix(err.Error(), ErrInvalidSpace.Error()+": "+p.Name+": ")
			out = append(out, [2]string{"search_space." + p.Name, msg})
			continue
		}
		size *= float64(k)
		factors = append(factors, fmt.Sprintf("%s %d", p.Name, k))
	}
	if len(out) == 0 && size > MaxGridSize {
		n := strconv.FormatFloat(size, 'f', 0, 64)
		if size >= 1e15 {
			n = strconv.FormatFloat(size, 'g', 3, 64)
		}
		out = append(out, [2]string{"search_space", fmt.Sprintf("grid search: the grid has %s points (%s), the limit is %d; use fewer values or random search",
			n, strings.Join(factors, " × "), MaxGridSize)})
	}
	return out
}
