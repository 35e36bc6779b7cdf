// Package worker is the worker side of trainctl's cluster (docs/architecture.md): the
// part that runs training on a machine for the coordinator.
//
// Today it holds the execution of one assignment. A Runner takes an
// Assignment (job id, attempt, rank of ranks, the job's jobspec.Spec, the
// dataset version the coordinator resolved, an optional checkpoint to resume
// from) and:
//
//  1. gets the dataset version through a DatasetSource: FlightSource reads
//     it from a local dataset store or cache, or streams it over Arrow Flight
//     from a coordinator into the cache, verified by its content digest;
//  2. maps the spec onto trainer.TrainConfig (TrainConfig) and runs
//     trainer.Train in a per-attempt work directory, resuming exactly
//     (weights, optimizer, RNG, data position) when asked;
//  3. reports metrics through a Reporter in batches (every N steps, every T
//     seconds and at every epoch end) from its own goroutine, so the
//     training loop only appends to a buffer;
//  4. hands every checkpoint the trainer writes to a CheckpointSink, also
//     from its own goroutine (files are hard-linked first, since the trainer
//     rewrites latest.ckpt; a newer checkpoint supersedes a pending one);
//  5. returns an Outcome: Succeeded (final metrics, best checkpoint), Failed
//     (the error) or Preempted (the final checkpoint and its step).
//
// Preemption: HandlePreemption turns SIGTERM into the cancellation of a
// context. Canceling Run's context makes the trainer stop after its current
// step and write a final checkpoint; Run hands it to the sink and returns
// Preempted, all within the grace period (DefaultGrace, 30 s), or fails with
// ErrGraceExpired. The next attempt, on any worker, resumes from that
// checkpoint and ends with the weights an uninterrupted run would have.
//
// The Agent (agent.go) is the worker process around the Runner: it
// registers with the coordinators over HTTP and heartbeats to keep its
// lease, watches its assignments (blocking queries: a placement reaches it
// within milliseconds of its commit, and an idle worker sends one query
// per AssignmentWait) and runs each new attempt, with a Reporter
// over the metrics API, a CheckpointSink that uploads to /v1/blobs/ and
// registers the checkpoint, resume checkpoints downloaded from /v1/blobs/,
// and dataset versions streamed over Arrow Flight from a coordinator that
// holds them (GET /v1/datasets/flight) into a local cache. On the stop
// notice (its context: SIGTERM in the CLI) it advertises no capacity, lets
// every run checkpoint and hand back within the grace period, reports them
// preempted and returns; a job cancelled in the cluster is stopped as soon
// as its assignment's release reaches the worker.
//
// Gossip (gossip.go, optional: AgentConfig.Gossip): the agent is also a
// memberlist member with its resources as node metadata, joined to the
// coordinators' gossip addresses (and joining them again when it sees no
// coordinator left). On the stop notice, once the runs have handed back
// and the heartbeats stopped, it leaves gossip within the grace period,
// so the leader marks it left at once; HTTP heartbeats and leases work as
// without gossip, so a worker that dies is still marked dead only when
// its lease runs out.
//
// Still to come (next issues): data-parallel ranks (ring all-reduce
// through trainer.TrainConfig.GradHook).
package worker
