package coordinator

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hashicorp/raft"

	"github.com/trainctl/trainctl/membership"
)

// Config is a coordinator server's configuration; start from DefaultConfig.
type Config struct {
	// NodeID names the server in the Raft configuration for all time.
	// Required.
	NodeID string
	// DataDir holds the Raft log and stable store (raft/raft.db, bbolt) and
	// the snapshots (raft/snapshots). Required.
	DataDir string
	// RaftAddr is the TCP address the Raft transport listens on; port 0
	// picks a free one. Other servers dial the listener's address unless
	// RaftAdvertise is set.
	RaftAddr      string
	RaftAdvertise string
	// HTTPAddr is the address of the /v1/ API; port 0 picks a free one.
	// Other servers forward writes to the listener's address unless
	// HTTPAdvertise is set.
	HTTPAddr      string
	HTTPAdvertise string
	// FlightAddr is the address of the dataset Arrow Flight server
	// (datasets_flight.go); empty means the HTTP listener's host with any
	// free port. A listener on all interfaces is advertised with the
	// HTTP API's advertised host. Workers find it through
	// GET /v1/datasets/flight.
	FlightAddr string
	// Bootstrap makes this server the first voter of a new cluster. It is
	// ignored when DataDir already holds Raft state.
	Bootstrap bool
	// Join lists HTTP addresses of existing servers; a server without Raft
	// state asks them (any of them; followers forward to the leader) to
	// add it as a voter before New returns.
	Join []string

	// HeartbeatTimeout, ElectionTimeout, LeaderLeaseTimeout and
	// CommitTimeout tune Raft (see raft.Config and SetRaftMultiplier);
	// smaller values fail over faster and elect spuriously on a loaded
	// machine. A follower starts a pre-vote once it has heard nothing from
	// the leader for HeartbeatTimeout (checked at random intervals of 1-2×
	// HeartbeatTimeout), and wins only once the other followers have given
	// up on the leader too, so a killed leader is replaced after about 2-3×
	// HeartbeatTimeout. A leader steps down when no quorum has answered it
	// for LeaderLeaseTimeout, which must not exceed HeartbeatTimeout; below
	// it, a leader gives up on itself before any follower would, so a stall
	// of one follower (a restarting peer leaves the leader one) costs an
	// election that nothing else called for.
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration
	// SnapshotInterval, SnapshotThreshold and TrailingLogs control
	// snapshots and log compaction (see raft.Config).
	SnapshotInterval  time.Duration
	SnapshotThreshold uint64
	TrailingLogs      uint64
	// SnapshotsRetained is how many snapshots are kept on disk.
	SnapshotsRetained int
	// ApplyTimeout bounds how long a write waits to be committed.
	ApplyTimeout time.Duration
	// RetryInterval paces the retries of joining, of the leader's barrier
	// and of keeping this server's entry in the server registry current.
	RetryInterval time.Duration
	// SchedulerInterval is how often the leader runs a scheduling pass
	// when nothing triggers one sooner (a submission, a worker that
	// registers, an attempt that ends).
	SchedulerInterval time.Duration
	// SweepInterval is how often the leader's sweep controller passes
	// over the running sweeps when nothing triggers a pass sooner (a
	// submission, a trial's metrics, checkpoint or attempt end).
	SweepInterval time.Duration
	// WorkerLease is how long a worker may go without a heartbeat
	// (POST /v1/workers/register) before the leader marks it dead and
	// requeues the attempts it ran.
	WorkerLease time.Duration
	// BlobCatchUpInterval is how often a server checks that its artifact
	// store holds every blob its state references, fetching the missing
	// ones from the other coordinators.
	BlobCatchUpInterval time.Duration
	// MaxDatasetBytes bounds a dataset version's Arrow file: an upload
	// (POST /v1/datasets/upload) whose declared length is larger is refused
	// with 413 before its body is read, one whose body grows past it as
	// soon as it does, on a follower as on the leader. Importing a version
	// holds its file in memory, one import at a time, so this is also the
	// server's memory budget for datasets. Default DefaultMaxDatasetBytes.
	MaxDatasetBytes int64
	// MaxBlobBytes bounds a blob (a checkpoint, a dataset version's
	// canonical file) put to or fetched by this server's artifact store
	// (/v1/blobs/, replication); larger ones get 413. Blobs are streamed to
	// disk, so it bounds disk use, not memory. It must be at least
	// MaxDatasetBytes, as dataset blobs travel between the coordinators
	// through the same API. Default DefaultMaxBlobBytes.
	MaxBlobBytes int64
	// GC is the leader's garbage collection and the bounds of the step
	// metrics this coordinator keeps (gc.go, metrics_endpoint.go).
	GC GCConfig
	// Gossip, when set, makes the server a memberlist member (its bind
	// address, timings and the members to join; the server sets the node
	// name and metadata). The leader then turns workers' gossip joins,
	// leaves and failures into Raft commands. Nil runs without gossip:
	// workers then keep their leases by HTTP heartbeats alone.
	Gossip *membership.Config
	// Logger receives the server's and Raft's logs; nil means slog.Default().
	Logger *slog.Logger

	// wrapStream, when set, wraps the Raft stream layer (tests cut it to
	// partition a server).
	wrapStream func(raft.StreamLayer) raft.StreamLayer
	// leaderHook, when set, runs as leadership begins, before the
	// barrier (tests hold a new leader there).
	leaderHook func()
	// limits, when its fields are set, replaces the HTTP server's
	// defaults (tests make them small).
	limits httpLimits
}

// Default size limits of uploads (see Config.MaxDatasetBytes and
// Config.MaxBlobBytes).
const (
	DefaultMaxDatasetBytes int64 = 256 << 20
	DefaultMaxBlobBytes    int64 = 1 << 30
)

// Raft timing at RaftMultiplier 1, the default: a failover in under a
// second (median) with every core saturated, measured with `make chaos`
// (BENCHMARKS.md). hashicorp/raft's own defaults (1 s, 1 s and 500 ms)
// would take over 2 s.
const (
	// BaseHeartbeatTimeout is how long a follower waits without hearing
	// from the leader before it calls a (pre-)vote.
	BaseHeartbeatTimeout = 300 * time.Millisecond
	// BaseElectionTimeout is how long a candidate waits before it retries.
	BaseElectionTimeout = 300 * time.Millisecond
	// BaseLeaderLeaseTimeout is how long a leader keeps leading without
	// answers from a quorum; as long as the heartbeat timeout, so that a
	// leader never steps down sooner than its followers would replace it.
	BaseLeaderLeaseTimeout = 300 * time.Millisecond
	// MaxRaftMultiplier bounds SetRaftMultiplier (as Consul's
	// raft_multiplier).
	MaxRaftMultiplier = 10
)

// SetRaftMultiplier sets HeartbeatTimeout, ElectionTimeout and
// LeaderLeaseTimeout to m times their Base values, as Consul's
// raft_multiplier does: 1 (the default) fails over fastest; a larger m
// rides out longer stalls of a loaded or overcommitted machine (a virtual
// machine whose host deschedules it, say) without electing, and takes m
// times as long to replace a dead leader. m must be in 1..MaxRaftMultiplier.
func (c *Config) SetRaftMultiplier(m int) error {
	if m < 1 || m > MaxRaftMultiplier {
		return fmt.Errorf("raft multiplier %d: want 1..%d", m, MaxRaftMultiplier)
	}
	d := time.Duration(m)
	c.HeartbeatTimeout = d * BaseHeartbeatTimeout
	c.ElectionTimeout = d * BaseElectionTimeout
	c.LeaderLeaseTimeout = d * BaseLeaderLeaseTimeout
	return nil
}

// DefaultConfig returns a configuration for a server on the loopback
// interface with the default ports (Raft 7420, HTTP 7421), as `trainctl up`
// runs it, with the Raft timing of multiplier 1 (see SetRaftMultiplier).
// A server listening on all interfaces must set the advertised addresses.
func DefaultConfig() Config {
	return Config{
		RaftAddr:            "127.0.0.1:7420",
		HTTPAddr:            "127.0.0.1:7421",
		HeartbeatTimeout:    BaseHeartbeatTimeout,
		ElectionTimeout:     BaseElectionTimeout,
		LeaderLeaseTimeout:  BaseLeaderLeaseTimeout,
		CommitTimeout:       20 * time.Millisecond,
		SnapshotInterval:    30 * time.Second,
		SnapshotThreshold:   8192,
		TrailingLogs:        10240,
		SnapshotsRetained:   2,
		ApplyTimeout:        10 * time.Second,
		RetryInterval:       250 * time.Millisecond,
		SchedulerInterval:   5 * time.Second,
		SweepInterval:       time.Second,
		WorkerLease:         15 * time.Second,
		BlobCatchUpInterval: 10 * time.Second,
		MaxDatasetBytes:     DefaultMaxDatasetBytes,
		MaxBlobBytes:        DefaultMaxBlobBytes,
		GC:                  DefaultGCConfig(),
	}
}

func (c *Config) validate() error {
	var errs []error
	if c.NodeID == "" {
		errs = append(errs, errors.New("node id: required"))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("data dir: required"))
	}
	if c.RaftAddr == "" || c.HTTPAddr == "" {
		errs = append(errs, errors.New("raft and http addresses: required"))
	}
	if c.Bootstrap && len(c.Join) > 0 {
		errs = append(errs, errors.New("bootstrap and join: give one, not both"))
	}
	if c.ApplyTimeout <= 0 || c.RetryInterval <= 0 || c.SnapshotsRetained < 1 {
		errs = append(errs, errors.New("apply timeout, retry interval and snapshots retained: must be positive"))
	}
	if c.SchedulerInterval <= 0 || c.SweepInterval <= 0 || c.WorkerLease <= 0 || c.BlobCatchUpInterval <= 0 {
		errs = append(errs, errors.New("scheduler interval, sweep interval, worker lease and blob catch-up interval: must be positive"))
	}
	if c.MaxDatasetBytes <= 0 || c.MaxBlobBytes < c.MaxDatasetBytes {
		errs = append(errs, fmt.Errorf("max dataset bytes %d and max blob bytes %d: want 0 < dataset <= blob", c.MaxDatasetBytes, c.MaxBlobBytes))
	}
	errs = append(errs, c.GC.validate())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("coordinator config: %w", err)
	}
	return nil
}
