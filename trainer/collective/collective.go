// Package collective is the communication of data-parallel training: the
// ranks of one attempt connect into a ring over TCP (or TLS), authenticate
// each other with the attempt's secret, and run collectives on it: ring
// all-reduce of int64 vectors (exact sums, so the result does not depend on
// the number of ranks or the order of addition), broadcast with a digest
// check, and barrier. Every collective has a deadline; a rank that dies,
// stalls or sends garbage makes every other rank fail within it, with a
// *RankError naming the rank. See docs/architecture.md, "Data-parallel
// training".
package collective

import (
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"time"
)

// DefaultTimeout is the deadline of one collective when Config.Timeout is
// zero.
const DefaultTimeout = 10 * time.Second

// Errors a *RankError wraps, for callers to branch on.
var (
	// ErrTimeout: a peer sent nothing (or took nothing) within the deadline.
	ErrTimeout = errors.New("collective timed out")
	// ErrMismatch: ranks called different collectives (another step,
	// bucket, layout or size) at the same point.
	ErrMismatch = errors.New("collective mismatch")
	// ErrAuth: a peer could not prove it belongs to the attempt.
	ErrAuth = errors.New("peer not authenticated")
	// ErrCorrupt: a peer sent a frame that failed its checksum or framing.
	ErrCorrupt = errors.New("corrupt frame")
	// ErrPeerGone: a peer closed its connection or died.
	ErrPeerGone = errors.New("peer gone")
	// ErrClosed: the Comm was closed, or broken by an earlier failure.
	ErrClosed = errors.New("communicator closed")
)

// Op is the reduction of an all-reduce.
type Op uint8

// The reductions.
const (
	Sum Op = iota // wrapping int64 addition: exact and associative
	Max           // int64 maximum
)

// Tag identifies one collective call; every rank must make the same call
// with an equal Tag at the same point, or all fail with ErrMismatch.
type Tag struct {
	Step   int64  // the training step (or any sequence number)
	Bucket int    // the gradient bucket (or other sub-index)
	Layout uint64 // a digest of what the caller is exchanging (bucket layout, model)
}

// Config describes one rank's place in the ring.
type Config struct {
	// Rank is this rank, of Size.
	Rank, Size int
	// Peers holds every rank's listen address (host:port), Peers[Rank]
	// being this rank's.
	Peers []string
	// Listener is this rank's listener, bound at Peers[Rank]; the Comm
	// owns it from New on and closes it.
	Listener net.Listener
	// Secret is the attempt's shared secret (at least 16 bytes); a peer
	// that cannot prove it knows it is refused.
	Secret []byte
	// Session names the attempt ("JOB/attempt-N"); a peer of another
	// session is refused even with the same secret.
	Session string
	// TLS, when set, wraps every connection (both directions use it: it
	// needs a certificate and the roots to verify the peers').
	TLS *tls.Config
	// Timeout is the deadline of each collective (default DefaultTimeout).
	Timeout time.Duration
	// ArrivalTimeout bounds how long a collective waits for a predecessor
	// that is alive (its keepalives arrive) but busy outside the
	// collective, as ranks are while one checkpoints or evaluates (default
	// DefaultArrivalTimeout). A predecessor that stops or dies is detected
	// within Timeout.
	ArrivalTimeout time.Duration
	// ConnectTimeout bounds New: connecting to the ring and the first
	// barrier (default 60s); peers may start later than this rank.
	ConnectTimeout time.Duration
	// ChunkBytes is the pipelining unit of the ring (default 256 KiB).
	ChunkBytes int
	// Logger receives the ring's progress (default: discarded).
	Logger *slog.Logger
}

// RankError is a collective's failure, blamed on a rank.
type RankError struct {
	Rank int    // the rank blamed (may be this rank for a local error)
	Op   string // "all-reduce", "broadcast", "barrier", "connect"
	Tag  Tag
	Err  error // wraps one of the Err* values

	forwarded bool // learned from an abort frame, not seen first-hand
}

func (e *RankError) Error() string {
	return "rank " + strconv.Itoa(e.Rank) + ": " + e.Op + ": " + e.Err.Error()
}

// Unwrap returns the cause.
func (e *RankError) Unwrap() error { return e.Err }
