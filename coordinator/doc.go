// Package coordinator will hold the Raft-replicated cluster state (datasets,
// jobs, sweeps, trials, workers, checkpoints, models), the leader's
// scheduler and the /v1/ HTTP API, as described in DESIGN.md. It is built by
// the cluster-core issue; nothing here is implemented yet.
package coordinator
