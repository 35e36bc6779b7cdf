// Package coordinator is the coordinator server of DESIGN.md: a Raft voter
// (hashicorp/raft over TCP, its log and stable store in bbolt through
// raft-boltdb/v2, file snapshots) that replicates the cluster state of
// coordinator/state and serves the /v1/ HTTP/JSON API.
//
// One file per concern, after Nomad's server:
//
//	config.go     Config and DefaultConfig (Raft timeouts, addresses, data dir)
//	server.go     New and Shutdown: stores, transport, Raft, HTTP; bootstrap or join
//	raft.go       the Raft setup and its TCP stream layer
//	leader.go     leadership: barrier, then leader-only work; voters and the
//	              server registry; raftApply, which commits a command
//	forward.go    the guard every write handler starts with: proxy to the leader
//	http.go       routes, JSON bodies and errors
//	*_endpoint.go the handlers, by resource
//
// A cluster starts with one server created with Bootstrap; the others are
// created with Join (HTTP addresses of existing servers) and become voters
// through POST /v1/cluster/join on the leader. The leader keeps each
// server's HTTP address in the replicated server registry, which is how a
// follower finds where to forward a write. Reads are answered from the
// local state store and may lag the leader slightly.
//
// Later pieces run on the leader only, started from leaderLoop once it has
// passed a barrier: the scheduler (coordinator/scheduler), the membership
// reconciler (coordinator/membership), and the artifact store's replication
// (coordinator/artifact).
package coordinator
