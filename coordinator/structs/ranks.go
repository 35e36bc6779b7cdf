package structs

import "time"

// The command of data-parallel rendezvous (docs/architecture.md,
// "Data-parallel training"). Its number follows gc.go's.
const (
	RankUpdateRequestType MessageType = 25
)

// ranksTypeName names the commands of this file for MessageType.String.
func ranksTypeName(t MessageType) (string, bool) {
	if t == RankUpdateRequestType {
		return "RankUpdate", true
	}
	return "", false
}

// Ring states of a rank, as api.RingState.
const (
	RingWaiting   = "waiting"
	RingConnected = "connected"
	RingFailed    = "failed"
)

// RankState is what the coordinators know of one rank of a running
// attempt: the address its peers connect to and how its ring stands.
type RankState struct {
	Addr         string    `json:"addr,omitempty"`
	Ring         string    `json:"ring,omitempty"`
	Step         int64     `json:"step,omitempty"`
	ImagesPerSec float64   `json:"images_per_sec,omitempty"`
	Registered   time.Time `json:"registered,omitzero"`
	Connected    time.Time `json:"connected,omitzero"`
}

// RankUpdateRequest records, for rank Rank of the running attempt Attempt
// of a job, the address it listens on (Addr, when set) and its ring state,
// step and throughput (Ring, when set). WorkerID must be the worker the
// rank is placed on.
type RankUpdateRequest struct {
	JobID        string    `json:"job_id"`
	Attempt      int       `json:"attempt"`
	Rank         int       `json:"rank"`
	WorkerID     string    `json:"worker_id"`
	Addr         string    `json:"addr,omitempty"`
	Ring         string    `json:"ring,omitempty"`
	Step         int64     `json:"step,omitempty"`
	ImagesPerSec float64   `json:"images_per_sec,omitempty"`
	Time         time.Time `json:"time"`
}
