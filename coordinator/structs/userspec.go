package structs

import (
	"slices"
	"time"

	"github.com/trainctl/trainctl/jobspec"
	"github.com/trainctl/trainctl/tuning"
)

// Conversions between the user-facing specs (jobspec.Spec, tuning.Spec:
// the API and the YAML files) and the server's own (JobSpec, SweepSpec).
// They copy fields, nothing else: the endpoints validate and normalize a
// user spec before converting it, and the code that needs a user spec's
// behaviour (the sweep controller's searcher and scheduler, a worker's
// trainer) converts the stored spec back.

// NewJobSpec returns the server's record of a validated, normalized job
// spec.
func NewJobSpec(s jobspec.Spec) JobSpec {
	h, r := s.Hyperparameters, s.Resources
	return JobSpec{
		Name: s.Name, Dataset: s.Dataset, Model: s.Model,
		Hyperparameters: Hyperparameters{
			Epochs: h.Epochs, Batch: h.Batch, LR: h.LR, Optimizer: h.Optimizer,
			Momentum: h.Momentum, WeightDecay: h.WeightDecay, Seed: h.Seed, Flip: h.Flip,
		},
		Resources:       JobResources{Ranks: r.Ranks, GPUsPerRank: r.GPUsPerRank, CPUsPerRank: r.CPUsPerRank, Spot: r.Spot},
		MaxRestarts:     s.MaxRestarts,
		CheckpointEvery: s.CheckpointEvery,
		Priority:        s.Priority,
		MaxTime:         Duration(s.MaxTime),
	}
}

// User returns s as the user-facing jobspec.Spec.
func (s JobSpec) User() jobspec.Spec {
	h, r := s.Hyperparameters, s.Resources
	return jobspec.Spec{
		Name: s.Name, Dataset: s.Dataset, Model: s.Model,
		Hyperparameters: jobspec.Hyperparameters{
			Epochs: h.Epochs, Batch: h.Batch, LR: h.LR, Optimizer: h.Optimizer,
			Momentum: h.Momentum, WeightDecay: h.WeightDecay, Seed: h.Seed, Flip: h.Flip,
		},
		Resources:       jobspec.Resources{Ranks: r.Ranks, GPUsPerRank: r.GPUsPerRank, CPUsPerRank: r.CPUsPerRank, Spot: r.Spot},
		MaxRestarts:     s.MaxRestarts,
		CheckpointEvery: s.CheckpointEvery,
		Priority:        s.Priority,
		MaxTime:         jobspec.Duration(time.Duration(s.MaxTime)),
	}
}

// NewSweepSpec returns the server's record of a validated, normalized
// sweep spec.
func NewSweepSpec(s tuning.Spec) SweepSpec {
	tpe, sc := s.Searcher.TPE, s.Scheduler
	return SweepSpec{
		Name:        s.Name,
		Job:         NewJobSpec(s.Job),
		SearchSpace: cloneSpace(s.SearchSpace),
		Objective:   SweepObjective{Metric: s.Objective.Metric, Mode: s.Objective.Mode},
		Searcher: SweepSearcher{Name: s.Searcher.Name,
			TPE: SweepTPE{NStartup: tpe.NStartup, NCandidates: tpe.NCandidates, Gamma: tpe.Gamma}},
		Scheduler: SweepScheduler{Name: sc.Name, ReductionFactor: sc.ReductionFactor,
			GracePeriod: sc.GracePeriod, MinTrials: sc.MinTrials},
		MaxTrials:     s.MaxTrials,
		MaxConcurrent: s.MaxConcurrent,
		Budget:        SweepBudget{Unit: s.Budget.Unit, Min: s.Budget.Min, Max: s.Budget.Max},
		Seed:          s.Seed,
	}
}

// User returns s as the user-facing tuning.Spec, whose methods build the
// sweep's searcher and scheduler and its trials' jobs.
func (s SweepSpec) User() tuning.Spec {
	tpe, sc := s.Searcher.TPE, s.Scheduler
	return tuning.Spec{
		Name:        s.Name,
		Job:         s.Job.User(),
		SearchSpace: cloneSpace(s.SearchSpace),
		Objective:   tuning.Objective{Metric: s.Objective.Metric, Mode: s.Objective.Mode},
		Searcher: tuning.SearcherSpec{Name: s.Searcher.Name,
			TPE: tuning.TPEConfig{NStartup: tpe.NStartup, NCandidates: tpe.NCandidates, Gamma: tpe.Gamma}},
		Scheduler: tuning.SchedulerSpec{Name: sc.Name, ReductionFactor: sc.ReductionFactor,
			GracePeriod: sc.GracePeriod, MinTrials: sc.MinTrials},
		MaxTrials:     s.MaxTrials,
		MaxConcurrent: s.MaxConcurrent,
		Budget:        tuning.Budget{Unit: s.Budget.Unit, Min: s.Budget.Min, Max: s.Budget.Max},
		Seed:          s.Seed,
	}
}

// cloneSpace copies a search space so that the server's record and the
// user's spec share no slice.
func cloneSpace(s tuning.Space) tuning.Space {
	if s.Params == nil {
		return tuning.Space{}
	}
	ps := slices.Clone(s.Params)
	for i := range ps {
		ps[i].Values = slices.Clone(ps[i].Values)
	}
	return tuning.Space{Params: ps}
}
