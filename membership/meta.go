package membership

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/hashicorp/memberlist"
)

// MaxMetaSize is the largest encoded [NodeMeta] gossip can carry
// (memberlist.MetaMaxSize, 512 bytes).
const MaxMetaSize = memberlist.MetaMaxSize

// ErrMetaTooLarge is returned when a node's encoded metadata exceeds
// [MaxMetaSize].
var ErrMetaTooLarge = errors.New("node metadata too large")

// ErrInvalidMeta is returned for metadata that fails validation or decoding.
var ErrInvalidMeta = errors.New("invalid node metadata")

// Role is what a member does in the cluster.
type Role string

// Roles.
const (
	// RoleCoordinator is a Raft voter serving the API.
	RoleCoordinator Role = "coordinator"
	// RoleWorker runs training jobs.
	RoleWorker Role = "worker"
)

// NodeMeta is what a member tells the others about itself through gossip.
// It is encoded as JSON with short keys; unknown keys are ignored when
// decoding, so newer members can add fields.
type NodeMeta struct {
	// Role is coordinator or worker.
	Role Role `json:"r"`
	// Cores and GPUs are the member's capacity (workers).
	Cores int `json:"c,omitempty"`
	GPUs  int `json:"g,omitempty"`
	// Spot marks preemptible capacity.
	Spot bool `json:"s,omitempty"`
	// Zone is the member's failure domain.
	Zone string `json:"z,omitempty"`
	// Version is the trainctl version the member runs.
	Version string `json:"v,omitempty"`
	// APIAddr is the member's HTTP API address (host:port), if it serves one.
	APIAddr string `json:"a,omitempty"`
	// RaftAddr is a coordinator's Raft transport address (host:port).
	RaftAddr string `json:"ra,omitempty"`
	// Leaving is set by [Member.Leave] just before the member leaves, so
	// that the others report its departure as [EventLeave] (memberlist
	// itself does not tell a leave from a death to its event delegate).
	Leaving bool `json:"l,omitempty"`
}

// leavingFlag is what Leaving adds to the encoding; Encode keeps room
// for it so that Leave can always set it.
const leavingFlag = `,"l":true`

// Validate checks m's fields: a known role and no negative capacity.
func (m NodeMeta) Validate() error {
	switch m.Role {
	case RoleCoordinator, RoleWorker:
	default:
		return fmt.Errorf("%w: role %q, want %q or %q", ErrInvalidMeta, m.Role, RoleCoordinator, RoleWorker)
	}
	if m.Cores < 0 || m.GPUs < 0 {
		return fmt.Errorf("%w: negative capacity (cores %d, gpus %d)", ErrInvalidMeta, m.Cores, m.GPUs)
	}
	return nil
}

// Encode validates m and returns its wire form, failing with
// [ErrMetaTooLarge] when it would not fit in [MaxMetaSize] bytes with the
// Leaving flag set.
func (m NodeMeta) Encode() ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode node metadata: %w", err)
	}
	size := len(b)
	if !m.Leaving {
		size += len(leavingFlag)
	}
	if size > MaxMetaSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrMetaTooLarge, size, MaxMetaSize)
	}
	return b, nil
}

// DecodeMeta parses metadata produced by [NodeMeta.Encode].
func DecodeMeta(b []byte) (NodeMeta, error) {
	var m NodeMeta
	if len(b) == 0 {
		return m, fmt.Errorf("%w: empty", ErrInvalidMeta)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return NodeMeta{}, fmt.Errorf("%w: %w", ErrInvalidMeta, err)
	}
	if err := m.Validate(); err != nil {
		return NodeMeta{}, err
	}
	return m, nil
}
