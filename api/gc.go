package api

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// JobSummary is what the cluster keeps of a job after garbage collection
// (GET /v1/gc/jobs).
type JobSummary struct {
	ID               string    `json:"id"`
	Name             string    `json:"name"`
	SweepID          string    `json:"sweep_id,omitempty"`
	Trial            int       `json:"trial,omitempty"`
	State            JobState  `json:"state"`
	Error            string    `json:"error,omitempty"`
	Attempts         int       `json:"attempts"`
	Restarts         int       `json:"restarts"`
	Progress         Progress  `json:"progress"`
	LatestCheckpoint string    `json:"latest_checkpoint,omitempty"`
	SubmitTime       time.Time `json:"submit_time"`
	EndTime          time.Time `json:"end_time"`
	CollectTime      time.Time `json:"collect_time"`
}

// SweepSummary is what the cluster keeps of a sweep after garbage
// collection (GET /v1/gc/sweeps).
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
}

// RemoveDataset removes version ver (v<N>, an id prefix or latest) of
// dataset name from the cluster registry and its blob from every
// coordinator, and returns the removed version. It fails with ErrConflict,
// naming them, while jobs that have not ended or running sweeps use it.
func (c *Client) RemoveDataset(ctx context.Context, name, ver string) (*DatasetVersion, error) {
	var out DatasetVersion
	path := "/v1/datasets/" + url.PathEscape(name) + "/versions/" + url.PathEscape(ver)
	if err := c.do(ctx, http.MethodDelete, path, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// JobSummaries returns the summaries of the jobs garbage collection
// removed, oldest end first.
func (c *Client) JobSummaries(ctx context.Context) ([]*JobSummary, error) {
	var out []*JobSummary
	if err := c.do(ctx, http.MethodGet, "/v1/gc/jobs", nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}
