// Package tuning holds the pieces of hyperparameter sweeps (see
// docs/architecture.md, "Packages and layers"): the sweep spec, search spaces, searchers and early-stopping
// schedulers. Everything here is a deterministic function of the spec, its
// seed and the ordered results in the coordinator's log, so the sweep
// controller on the leader can record each suggestion and each decision as
// a Raft command and a new leader, or a replay, reaches the same ones.
//
// The data flow of a sweep:
//
//   - `trainctl sweep -f sweep.yaml` reads a Spec with Parse: a base job
//     (parsed by jobspec, so it is exactly a `submit` job), a
//     Space over the job's hyperparameters, the Objective, the searcher and
//     scheduler, trial limits, the Budget and a seed. Errors name
//     FILE:LINE: FIELD, as job specs do (jobspec.FieldError).
//   - For trial n the controller asks the Searcher (Spec.NewSearcher: Grid,
//     Random or TPE) for Params, given the Observations of the earlier
//     trials in log order, and runs Spec.TrialJob(params): the base job with
//     the trial's values in its hyperparameters.
//   - Each metric a trial reports goes to the Scheduler (FIFO, ASHA,
//     Hyperband, Median) as a Result; its Decision continues, promotes,
//     stops or completes the trial.
//
// Params are a map from parameter name to Value (a float, integer, string
// or boolean) that marshals to JSON without losing kinds or bits; every
// searcher walks parameters in name order. Random search draws trial n
// from a stream seeded by (seed, n), so it ignores history; grid search
// enumerates the cartesian product in a documented order and then returns
// ErrExhausted; TPE models the history and is bit-deterministic on one
// GOARCH (the log, not recomputation, is what a failover relies on).
package tuning
