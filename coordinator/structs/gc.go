package structs

import "time"

// Commands of the bounded replicated state: the rate-limited progress of a
// job and the leader's garbage collection. Their numbers follow the last
// command of sweep.go; like every command type they are never renumbered.
const (
	JobProgressRequestType   MessageType = 20
	JobsGCRequestType        MessageType = 21
	SweepsGCRequestType      MessageType = 22
	CheckpointsGCRequestType MessageType = 23
	DatasetRemoveRequestType MessageType = 24
)

// gcTypeName names the commands of this file for MessageType.String.
func gcTypeName(t MessageType) (string, bool) {
	switch t {
	case JobProgressRequestType:
		return "JobProgress", true
	case JobsGCRequestType:
		return "JobsGC", true
	case SweepsGCRequestType:
		return "SweepsGC", true
	case CheckpointsGCRequestType:
		return "CheckpointsGC", true
	case DatasetRemoveRequestType:
		return "DatasetRemove", true
	}
	return "", false
}

// JobProgressRequest sets a job's progress summary (Job.Progress) from the
// latest step report a coordinator received; the step series itself stays
// in that coordinator's metrics store. A report of an attempt older than the
// job's current one changes nothing.
type JobProgressRequest struct {
	JobID   string             `json:"job_id"`
	Attempt int                `json:"attempt"`
	Step    int64              `json:"step"`
	Epoch   int                `json:"epoch"`
	Metrics map[string]float64 `json:"metrics,omitempty"`
	Time    time.Time          `json:"time"`
}

// JobsGCRequest collects terminal jobs: each job's record, metric reports
// and request id leave the state and a JobSummary takes its place. Jobs
// that are missing or not terminal are skipped. After adding them, the
// summaries beyond SummaryLimit are dropped, oldest end first (0 keeps
// all). The response is a *GCResponse.
type JobsGCRequest struct {
	JobIDs       []string  `json:"job_ids"`
	SummaryLimit int       `json:"summary_limit,omitempty"`
	Time         time.Time `json:"time"`
}

// SweepsGCRequest collects terminal sweeps as JobsGCRequest does jobs,
// leaving a SweepSummary each.
type SweepsGCRequest struct {
	SweepIDs     []string  `json:"sweep_ids"`
	SummaryLimit int       `json:"summary_limit,omitempty"`
	Time         time.Time `json:"time"`
}

// CheckpointsGCRequest deletes checkpoint records. A digest that is missing
// or that a model, a job in the state or a sweep's trial still refers to is
// skipped; the response's Blobs lists the deleted ones, whose blobs every
// coordinator then deletes from its artifact store.
type CheckpointsGCRequest struct {
	Digests []string `json:"digests"`
}

// DatasetRemoveRequest removes a dataset version from the registry. It is a
// conflict while a job that is not terminal uses the version. The
// response's Blobs holds the version's blob unless another registered
// version has the same one.
type DatasetRemoveRequest struct {
	Name string    `json:"name"`
	ID   string    `json:"id"`
	Time time.Time `json:"time"`
}

// GCResponse is the FSM's answer to a collecting command: what it removed.
// It is never encoded.
type GCResponse struct {
	// Removed holds the ids (job ids, sweep ids, digests, dataset version
	// ids) the command removed, in the request's order.
	Removed []string
	// Blobs holds the artifact digests no entry of the state refers to any
	// more, to be deleted from every coordinator's artifact store.
	Blobs []string
	// Datasets holds the dataset versions the command removed, whose
	// copies every coordinator's dataset store then drops.
	Datasets []*DatasetVersion
}

// JobSummary is what the state keeps of a job after garbage collection.
type JobSummary struct {
	ID       string   `json:"id"`
	Name     string   `json:"name"`
	SweepID  string   `json:"sweep_id,omitempty"`
	Trial    int      `json:"trial,omitempty"`
	State    JobState `json:"state"`
	Error    string   `json:"error,omitempty"`
	Attempts int      `json:"attempts"`
	Restarts int      `json:"restarts"`
	// Progress is the job's last progress; its final metrics.
	Progress Progress `json:"progress"`
	// LatestCheckpoint is the job's last checkpoint digest; its record and
	// blob are gone unless a model refers to it.
	LatestCheckpoint string    `json:"latest_checkpoint,omitempty"`
	SubmitTime       time.Time `json:"submit_time"`
	EndTime          time.Time `json:"end_time"`
	CollectTime      time.Time `json:"collect_time"`
	CollectIndex     uint64    `json:"collect_index"`
}

// SweepSummary is what the state keeps of a sweep after garbage collection.
type SweepSummary struct {
	ID          string     `json:"id"`
	Name        string     `json:"name"`
	State       SweepState `json:"state"`
	Error       string     `json:"error,omitempty"`
	Trials      int        `json:"trials"`
	Best        *SweepBest `json:"best,omitempty"`
	SubmitTime  time.Time  `json:"submit_time"`
	EndTime     time.Time  `json:"end_time"`
	CollectTime time.Time  `json:"collect_time"`
	// CollectIndex is the Raft index of the command that collected it.
	CollectIndex uint64 `json:"collect_index"`
}
