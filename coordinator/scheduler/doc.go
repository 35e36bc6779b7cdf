// Package scheduler decides where the coordinator's queued jobs run. It is
// the pure core of the leader's scheduling loop (docs/architecture.md, "Roles and data flow"):
// the leader reads pending jobs and worker capacity from its state store,
// calls [Schedule], and records the resulting placements as one Raft entry,
// so every voter applies the same decision. The package does no I/O, keeps no
// state and reads no clock; the same inputs, in any order, give the same
// [Result].
//
// # Policy
//
// Order. Jobs are considered by priority (higher first), then by submit
// order ([Job.Index], lower first, i.e. FIFO within a priority), then by ID.
//
// Gangs. A job of N ranks is placed only when all N ranks fit at once;
// it is never partially placed. A rank needs [Job.CPUsPerRank] CPUs and
// [Job.GPUsPerRank] GPUs on one node; several ranks may share a node.
//
// Eligible nodes. A node can take ranks of a job when it is alive, not
// draining, not in the job's exclusion list, and either on-demand or the job
// tolerates spot capacity.
//
// Head-of-line blocking with restricted backfill. When a job does not fit,
// every node it could ever use (eligible for it and large enough for one of
// its ranks when empty) is reserved for it for the rest of the pass: jobs
// later in the order may not place ranks there, even if they would fit. They
// may still backfill onto nodes the blocked job cannot use (nodes it
// excludes, spot nodes it refuses, nodes too small for one of its ranks, for
// example CPU-only nodes under a GPU job). Without runtime estimates, free
// backfill onto the same nodes would starve big gangs: small jobs would keep
// taking each GPU as it frees up. Reserving the nodes means capacity freed
// under a blocked job only ever accumulates for it, so it runs as soon as
// enough of its nodes drain, at the cost of some idle capacity meanwhile. A
// job that could not run even on an empty cluster (its eligible nodes hold
// fewer rank slots than it needs in total) is reported [Unsatisfiable] and
// reserves nothing, so it blocks nobody.
//
// Packing. A gang goes onto as few nodes as possible, then best fit: while
// the remaining ranks do not fit on one node, the node that takes the most
// ranks is filled; the remainder goes to the node with the fewest rank slots
// that still holds it all. Ties prefer fewer free GPUs (keeping GPU nodes for
// GPU jobs), then fewer free CPUs, then the lower node ID. Co-located ranks
// all-reduce over loopback, and packing leaves whole nodes free for large
// gangs. A spot-tolerant job is first tried on spot nodes alone, keeping
// on-demand capacity for jobs that need it, and on all its eligible nodes
// when that fails. Zones are carried but not yet used for placement.
//
// Retries. [NextAttempt] decides what happens when an attempt ends: a failed
// or lost attempt counts against max_restarts and excludes the node it failed
// on; a preempted attempt (SIGTERM, the job handed back with a checkpoint)
// does neither.
package scheduler
