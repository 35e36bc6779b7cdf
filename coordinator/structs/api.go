package structs

import (
	"encoding/json"

	"github.com/trainctl/trainctl/coordinator/jobspec"
)

// The types below are the bodies of the /v1/ HTTP API that are not state
// objects themselves.

// ErrorBody is the JSON body of every API error response.
type ErrorBody struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

// SubmitJobBody is the body of POST /v1/jobs. RequestID is the client's
// idempotency key: a retry with the same id returns the job the first
// request created. An empty RequestID submits without that protection.
type SubmitJobBody struct {
	RequestID string       `json:"request_id"`
	Spec      jobspec.Spec `json:"spec"`
}

// RegisterDatasetBody is the body of POST /v1/datasets: a version whose blob
// is already in the artifact store.
type RegisterDatasetBody struct {
	Name     string          `json:"name"`
	ID       string          `json:"id"`
	Manifest json.RawMessage `json:"manifest"`
}

// JoinRequest is the body of POST /v1/cluster/join: the coordinator that
// wants to become a voter and how to reach it.
type JoinRequest struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	HTTPAddr string `json:"http_addr"`
}

// ClusterStatus is the body of GET /v1/cluster/status, as seen by the server
// that answered.
type ClusterStatus struct {
	NodeID string `json:"node_id"`
	// State is the server's Raft state: Leader, Follower, Candidate or Shutdown.
	State string `json:"state"`
	// LeaderID and LeaderHTTPAddr are empty when no leader is known.
	LeaderID       string `json:"leader_id"`
	LeaderHTTPAddr string `json:"leader_http_addr,omitempty"`
	Term           uint64 `json:"term"`
	LastIndex      uint64 `json:"last_index"`
	CommitIndex    uint64 `json:"commit_index"`
	AppliedIndex   uint64 `json:"applied_index"`
	// StateIndex is the index of the last command that changed the state.
	StateIndex uint64      `json:"state_index"`
	Voters     []VoterInfo `json:"voters"`
}

// VoterInfo is one server of the Raft configuration.
type VoterInfo struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	HTTPAddr string `json:"http_addr,omitempty"`
	Suffrage string `json:"suffrage"`
	Leader   bool   `json:"leader"`
}
