// Package coordinator is the coordinator server (docs/architecture.md,
// "Roles and data flow"): a Raft voter
// (hashicorp/raft over TCP, its log and stable store in bbolt through
// raft-boltdb/v2, file snapshots) that replicates the cluster state of
// coordinator/state and serves the /v1/ HTTP/JSON API.
//
// One file per concern, after Nomad's server:
//
//	config.go     Config and DefaultConfig (Raft timeouts, addresses, data dir)
//	server.go     New and Shutdown: stores, transport, Raft, HTTP; bootstrap or join
//	raft.go       the Raft setup and its TCP stream layer
//	leader.go     leadership: barrier, then writes let in (leaderReady) and
//	              leader-only work; voters and the server registry; raftApply,
//	              which commits a command
//	join_verify.go the leader's check that a joining server is who it says
//	endpoint.go   the endpoint layer: Identity, authorize, Reply; one endpoint
//	              type per resource, transport-agnostic
//	*_endpoint.go the endpoints, by resource (attempt_endpoint.go: what workers
//	              report: attempts, metrics, checkpoints), each method
//	              (ctx, Identity, request) -> (Reply, error)
//	forward.go    leaderOnly, which every write endpoint calls, and the HTTP
//	              proxy that passes a write on to the leader (uploads and
//	              blob registrations wait longer for its answer)
//	http.go       the HTTP adapter: routes, decoding requests, JSON answers
//	              and errors; /v1/blobs/ is the artifact store
//	middleware.go request ids, access log, panics, concurrency limits
//	ratebody.go   request bodies paced by the connection's read deadline
//	blocking.go   blocking queries (?index=N&wait=D) of the read endpoints
//	convert.go    the server's types (structs) to the API's (api), at the boundary
//	schedule.go   leader: scheduling passes (coordinator/scheduler) committed as
//	              one JobPlaceBatch entry per pass, and ending attempts through scheduler.NextAttempt
//	sweep.go      leader: the sweep controller loop (coordinator/sweeper), one
//	              SweepStep entry per sweep and pass; kicked by trial reports
//	lease.go      leader: worker leases; expired workers are marked dead and
//	              their attempts requeued
//	members.go    gossip (membership): every server drains events,
//	              the leader turns workers' joins and leaves into commands
//	blobs.go      replicating a blob before the entry that references it
//	              commits; every server catches up on blobs it lacks
//	datasets_flight.go  the dataset store and its Arrow Flight server;
//	              POST /v1/datasets/upload (import, blob, replicate,
//	              register) and importing a version from its blob on demand
//	              (for Datasets.Flight)
//
// A cluster starts with one server created with Bootstrap; the others are
// created with Join (HTTP addresses of existing servers) and become voters
// through POST /v1/cluster/join on the leader, which first asks the
// joiner's own GET /v1/cluster/status for its id and Raft address (a
// server serves HTTP before it asks to join). The leader keeps each
// server's HTTP address in the replicated server registry, which is how a
// follower finds where to forward a write. Reads are answered from the
// local state store and may lag the leader slightly.
//
// Workers register and heartbeat over HTTP (POST /v1/workers/register),
// and with Config.Gossip also through memberlist; they follow
// GET /v1/workers/{id}/assignments with a blocking query and report
// attempts, metrics and checkpoints, whose blobs they upload to /v1/blobs/
// first. Other roles import api/, never this package's sub-packages.
//
// The leader-only services start from leaderLoop once it has passed a
// barrier and stop when leadership is lost: the scheduler, the sweep
// controller, the worker leases and the membership reconciler. Blob replication runs in the
// leader's write endpoints; catching up on missing blobs runs everywhere.
package coordinator
