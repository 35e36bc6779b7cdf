package structs

import (
	"encoding/json"
	"maps"
	"slices"
	"time"
)

// JobState is the life-cycle state of a job.
type JobState string

// Job states. A job starts pending, is running while an attempt holds its
// placement, returns to pending when an attempt fails and restarts remain
// (or its worker was preempted), and ends succeeded, failed or cancelled.
const (
	JobPending   JobState = "pending"
	JobRunning   JobState = "running"
	JobSucceeded JobState = "succeeded"
	JobFailed    JobState = "failed"
	JobCancelled JobState = "cancelled"
)

// Terminal reports whether no further attempt will run for a job in state s.
func (s JobState) Terminal() bool {
	return s == JobSucceeded || s == JobFailed || s == JobCancelled
}

// AttemptState is the state of one attempt of a job.
type AttemptState string

// Attempt states. An attempt is running from its placement until its workers
// report an outcome: succeeded, failed (counts against max_restarts and
// excludes the failing node), preempted (handed back on a spot preemption
// notice; does not count) or cancelled (the job was cancelled).
const (
	AttemptRunning   AttemptState = "running"
	AttemptSucceeded AttemptState = "succeeded"
	AttemptFailed    AttemptState = "failed"
	AttemptPreempted AttemptState = "preempted"
	AttemptCancelled AttemptState = "cancelled"
)

// Attempt is one placement of all ranks of a job and its outcome.
type Attempt struct {
	// Number counts a job's attempts from 1.
	Number int `json:"number"`
	// Nodes holds the worker id of each rank: Nodes[r] runs rank r.
	Nodes []string `json:"nodes"`
	// ResumeFrom is the checkpoint digest the attempt starts from, empty for
	// a fresh start.
	ResumeFrom string       `json:"resume_from,omitempty"`
	State      AttemptState `json:"state"`
	Error      string       `json:"error,omitempty"`
	// FailedNode is the worker blamed for a failed attempt, if any.
	FailedNode string    `json:"failed_node,omitempty"`
	StartTime  time.Time `json:"start_time"`
	EndTime    time.Time `json:"end_time,omitzero"`
	// Secret is the attempt's shared secret (hex) for its ranks' ring;
	// Ranks holds each rank's address and ring state (data-parallel
	// attempts only).
	Secret string      `json:"secret,omitempty"`
	Ranks  []RankState `json:"ranks,omitempty"`
}

// Progress is the latest training progress a job reported.
type Progress struct {
	Step    int64              `json:"step"`
	Epoch   int                `json:"epoch"`
	Metrics map[string]float64 `json:"metrics,omitempty"`
}

// Job is a submitted training job. Objects returned by the state store are
// shared and must be treated as read-only; use Copy before changing one.
type Job struct {
	ID string `json:"id"`
	// RequestID is the client's idempotency key: submitting again with the
	// same request id returns this job instead of creating a second one.
	RequestID string  `json:"request_id"`
	Spec      JobSpec `json:"spec"`
	// DatasetVersionID is the id of the dataset version spec.dataset
	// resolved to at submission; every attempt trains on that version.
	DatasetVersionID string `json:"dataset_version_id,omitempty"`
	// SweepID and Trial name the sweep trial the job trains, when it is
	// one (SweepStep creates such jobs).
	SweepID  string    `json:"sweep_id,omitempty"`
	Trial    int       `json:"trial,omitempty"`
	State    JobState  `json:"state"`
	Attempts []Attempt `json:"attempts,omitempty"`
	// Restarts counts the failed attempts that were retried.
	Restarts int `json:"restarts"`
	// ExcludedNodes lists, sorted, the workers earlier attempts failed on.
	ExcludedNodes []string `json:"excluded_nodes,omitempty"`
	Progress      Progress `json:"progress"`
	// LatestCheckpoint is the digest of the newest registered checkpoint.
	LatestCheckpoint string    `json:"latest_checkpoint,omitempty"`
	Error            string    `json:"error,omitempty"`
	SubmitTime       time.Time `json:"submit_time"`
	ModifyTime       time.Time `json:"modify_time"`
	CreateIndex      uint64    `json:"create_index"`
	ModifyIndex      uint64    `json:"modify_index"`
}

// Copy returns a copy of j that shares only the (immutable) spec.
func (j *Job) Copy() *Job {
	c := *j
	c.Attempts = slices.Clone(j.Attempts)
	for i := range c.Attempts {
		c.Attempts[i].Nodes = slices.Clone(c.Attempts[i].Nodes)
		c.Attempts[i].Ranks = slices.Clone(c.Attempts[i].Ranks)
	}
	c.ExcludedNodes = slices.Clone(j.ExcludedNodes)
	c.Progress.Metrics = maps.Clone(j.Progress.Metrics)
	return &c
}

// CurrentAttempt returns the last attempt, or nil before the first placement.
func (j *Job) CurrentAttempt() *Attempt {
	if len(j.Attempts) == 0 {
		return nil
	}
	return &j.Attempts[len(j.Attempts)-1]
}

// WorkerStatus is a worker's membership status.
type WorkerStatus string

// Worker statuses. Alive and suspect come from gossip; dead and left end a
// worker's assignments; draining keeps running assignments but takes no new
// ones.
const (
	WorkerAlive    WorkerStatus = "alive"
	WorkerSuspect  WorkerStatus = "suspect"
	WorkerDead     WorkerStatus = "dead"
	WorkerLeft     WorkerStatus = "left"
	WorkerDraining WorkerStatus = "draining"
)

// Resources is an amount of worker capacity: what a rank uses, or what a
// worker has free.
type Resources struct {
	Cores int `json:"cores"`
	GPUs  int `json:"gpus"`
}

// Add returns r plus o.
func (r Resources) Add(o Resources) Resources {
	return Resources{Cores: r.Cores + o.Cores, GPUs: r.GPUs + o.GPUs}
}

// Sub returns r minus o.
func (r Resources) Sub(o Resources) Resources {
	return Resources{Cores: r.Cores - o.Cores, GPUs: r.GPUs - o.GPUs}
}

// Fits reports whether o fits into r.
func (r Resources) Fits(o Resources) bool {
	return o.Cores <= r.Cores && o.GPUs <= r.GPUs
}

// WorkerMeta is what a worker advertises in its gossip node metadata.
type WorkerMeta struct {
	Cores   int    `json:"cores"`
	GPUs    int    `json:"gpus"`
	Spot    bool   `json:"spot"`
	Zone    string `json:"zone,omitempty"`
	Version string `json:"version,omitempty"`
}

// Capacity is the worker's total capacity.
func (m WorkerMeta) Capacity() Resources { return Resources{Cores: m.Cores, GPUs: m.GPUs} }

// Worker is a training agent known to the cluster. Objects returned by the
// state store are read-only.
type Worker struct {
	ID     string       `json:"id"`
	Addr   string       `json:"addr"`
	Meta   WorkerMeta   `json:"meta"`
	Status WorkerStatus `json:"status"`
	// Free is the capacity not held by assignments.
	Free        Resources `json:"free"`
	StatusTime  time.Time `json:"status_time"`
	CreateIndex uint64    `json:"create_index"`
	ModifyIndex uint64    `json:"modify_index"`
}

// Schedulable reports whether new ranks may be placed on the worker.
func (w *Worker) Schedulable() bool { return w.Status == WorkerAlive }

// Assignment is one rank of a job's running attempt, held by a worker.
type Assignment struct {
	JobID       string    `json:"job_id"`
	Attempt     int       `json:"attempt"`
	Rank        int       `json:"rank"`
	WorkerID    string    `json:"worker_id"`
	Resources   Resources `json:"resources"`
	CreateIndex uint64    `json:"create_index"`
}

// Placement puts one rank of a job on a worker; the scheduler produces one per
// rank and the leader commits them together (gang placement).
type Placement struct {
	Rank      int       `json:"rank"`
	WorkerID  string    `json:"worker_id"`
	Resources Resources `json:"resources"`
}

// Checkpoint is the record of a checkpoint blob in the artifact store.
type Checkpoint struct {
	Digest      string             `json:"digest"`
	JobID       string             `json:"job_id"`
	Attempt     int                `json:"attempt"`
	Step        int64              `json:"step"`
	Epoch       int                `json:"epoch"`
	Metrics     map[string]float64 `json:"metrics,omitempty"`
	Size        int64              `json:"size"`
	Time        time.Time          `json:"time"`
	CreateIndex uint64             `json:"create_index"`
}

// Metric is one report of a job's metrics, typically one per epoch.
type Metric struct {
	JobID   string             `json:"job_id"`
	Attempt int                `json:"attempt"`
	Epoch   int                `json:"epoch"`
	Step    int64              `json:"step"`
	Values  map[string]float64 `json:"values"`
	Time    time.Time          `json:"time"`
}

// DatasetVersion is a dataset version in the cluster registry; its blob lives
// in the artifact store under ID.
type DatasetVersion struct {
	Name string `json:"name"`
	// ID is the version's content id (dataset.Manifest.ID).
	ID string `json:"id"`
	// Seq numbers the versions of one name in the cluster, from 1.
	Seq int `json:"seq"`
	// Manifest is the version's dataset.Manifest as JSON.
	Manifest json.RawMessage `json:"manifest"`
	// Blob, when set, is the digest of the version's content in the
	// artifact store, on every coordinator.
	Blob        string    `json:"blob,omitempty"`
	CreateTime  time.Time `json:"create_time"`
	CreateIndex uint64    `json:"create_index"`
}

// Server is a coordinator in the server registry: how to reach its Raft
// transport and its HTTP API. Followers use it to forward writes to the leader.
type Server struct {
	ID          string `json:"id"`
	RaftAddr    string `json:"raft_addr"`
	HTTPAddr    string `json:"http_addr"`
	ModifyIndex uint64 `json:"modify_index"`
}
