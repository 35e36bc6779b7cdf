// Package tuning will hold sweep specs, search spaces, searchers (grid,
// random, TPE) and early-stopping schedulers (ASHA, Hyperband, median
// stopping) as deterministic functions of spec, seed and the ordered results
// (DESIGN.md). It is built by the sweeps issue; nothing here is implemented
// yet.
package tuning
