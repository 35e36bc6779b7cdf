package api

import (
	"encoding/json"

	"github.com/trainctl/trainctl/jobspec"
)

// The types below are the bodies of the /v1/ HTTP API that are not state
// objects themselves.

// ErrorBody is the JSON body of every API error response.
type ErrorBody struct {
	Error string `json:"error"`
	Code  string `json:"code"`
	// RequestID is the id of the request that failed (its X-Request-Id),
	// for finding it in the coordinator's logs.
	RequestID string `json:"request_id,omitempty"`
}

// SubmitJobBody is the body of POST /v1/jobs. RequestID is the client's
// idempotency key: a retry with the same id returns the job the first
// request created. An empty RequestID submits without that protection.
type SubmitJobBody struct {
	RequestID string       `json:"request_id"`
	Spec      jobspec.Spec `json:"spec"`
}

// RegisterDatasetBody is the body of POST /v1/datasets: a version whose blob
// is already in the artifact store. Blob, when set, is that blob's digest
// (uploaded to /v1/blobs/ of any coordinator): the leader copies it to the
// other coordinators before committing the version.
type RegisterDatasetBody struct {
	Name     string          `json:"name"`
	ID       string          `json:"id"`
	Manifest json.RawMessage `json:"manifest"`
	Blob     string          `json:"blob,omitempty"`
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
	// RaftAddr and HTTPAddr are the answering server's own advertised
	// addresses (the leader checks them before it lets a server join).
	RaftAddr string `json:"raft_addr,omitempty"`
	HTTPAddr string `json:"http_addr,omitempty"`
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

// RegisterWorkerBody is the body of POST /v1/workers/register, which a
// worker sends when it starts and then as its heartbeat: it adds or updates
// the worker and renews its lease.
type RegisterWorkerBody struct {
	ID   string     `json:"id"`
	Addr string     `json:"addr"`
	Meta WorkerMeta `json:"meta"`
}

// WorkerAssignment is one rank a worker runs, as GET
// /v1/workers/{id}/assignments lists it: everything the worker needs to
// start (or resume) the rank.
type WorkerAssignment struct {
	JobID   string `json:"job_id"`
	Attempt int    `json:"attempt"`
	Rank    int    `json:"rank"`
	// Nodes holds the worker id of every rank of the attempt.
	Nodes     []string     `json:"nodes"`
	Resources Resources    `json:"resources"`
	Spec      jobspec.Spec `json:"spec"`
	// DatasetVersionID is the version spec.dataset resolved to.
	DatasetVersionID string `json:"dataset_version_id"`
	// ResumeFrom is the checkpoint digest to resume from; empty for a
	// fresh start.
	ResumeFrom string `json:"resume_from,omitempty"`
}

// AttemptReportBody is the body of POST /v1/jobs/{id}/attempts/{n}: a
// worker's report on an attempt. State running reports progress (Step and
// Metrics, recorded as a metric report when Metrics is not empty);
// succeeded, failed and preempted end the attempt.
type AttemptReportBody struct {
	WorkerID string             `json:"worker_id"`
	State    AttemptState       `json:"state"`
	Step     int64              `json:"step"`
	Epoch    int                `json:"epoch"`
	Metrics  map[string]float64 `json:"metrics,omitempty"`
	Error    string             `json:"error,omitempty"`
	// Rank is the reporting rank (0 for a single-rank job). Ring and
	// ImagesPerSec are its ring state and training throughput, shown per
	// rank by `jobs get`.
	Rank         int       `json:"rank,omitempty"`
	Ring         RingState `json:"ring,omitempty"`
	ImagesPerSec float64   `json:"images_per_sec,omitempty"`
	// FailedRank, on a failed report, names the rank the failure is blamed
	// on (a peer that died, stalled or sent garbage); its worker is the
	// one excluded from the retry. Nil blames the reporting worker.
	FailedRank *int `json:"failed_rank,omitempty"`
}

// MetricsBody is the body of POST /v1/jobs/{id}/metrics: a batch of metric
// reports of that job (their job_id may be left empty).
type MetricsBody struct {
	Metrics []Metric `json:"metrics"`
}

// RegisterCheckpointBody is the body of POST /v1/checkpoints: a checkpoint
// whose blob was uploaded to /v1/blobs/{digest} of any coordinator first.
type RegisterCheckpointBody struct {
	Digest  string             `json:"digest"`
	JobID   string             `json:"job_id"`
	Attempt int                `json:"attempt"`
	Step    int64              `json:"step"`
	Epoch   int                `json:"epoch"`
	Metrics map[string]float64 `json:"metrics,omitempty"`
}
