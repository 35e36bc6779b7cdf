// Package sim is a simulated-time backend for hyperparameter sweeps: it
// runs a tuning.Searcher and a tuning.Scheduler against trials whose
// learning curves come from a model instead of training, on max_concurrent
// simulated workers in simulated wall-clock time, so that thousands of
// trials run in seconds (the approach of syne-tune's simulator backend).
// It measures search efficiency (regret against time, budget to reach a
// quality) and the controller's decision overhead.
//
// The curves are NOT real published data. No LCBench or FCNet table can be
// downloaded on this project's machines, so Model generates every curve
// from the documented parametric model below; results obtained with it say
// how the algorithms behave on curves of this shape, not on a real
// benchmark.
package sim
