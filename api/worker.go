package api

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
)

// The calls below are the worker-facing part of the API: a worker agent
// registers and heartbeats, polls its assignments, and reports attempts,
// metrics and checkpoints. Checkpoint blobs are uploaded beforehand with
// artifact's Client.

// RegisterWorker adds or updates a worker and renews its lease; a worker
// calls it when it starts and then as its heartbeat, more often than the
// coordinators' worker lease.
func (c *Client) RegisterWorker(ctx context.Context, body RegisterWorkerBody) (*Worker, error) {
	var w Worker
	if err := c.do(ctx, http.MethodPost, "/v1/workers/register", body, &w); err != nil {
		return nil, err
	}
	return &w, nil
}

// Assignments returns the ranks placed on a worker, with what it needs to
// run them; an unknown worker is an error wrapping ErrNotFound.
func (c *Client) Assignments(ctx context.Context, workerID string) ([]WorkerAssignment, error) {
	var out []WorkerAssignment
	if err := c.do(ctx, http.MethodGet, "/v1/workers/"+url.PathEscape(workerID)+"/assignments", nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// ReportAttempt reports progress (state running) or the outcome of attempt
// n of a job and returns the job. Reporting an outcome again is safe; a
// different outcome for an attempt that already ended wraps
// ErrConflict.
func (c *Client) ReportAttempt(ctx context.Context, jobID string, n int, body AttemptReportBody) (*Job, error) {
	var j Job
	path := "/v1/jobs/" + url.PathEscape(jobID) + "/attempts/" + strconv.Itoa(n)
	if err := c.do(ctx, http.MethodPost, path, body, &j); err != nil {
		return nil, err
	}
	return &j, nil
}

// ReportMetrics appends a batch of metric reports to a job and returns the
// job. A batch retried after a lost answer may be recorded twice.
func (c *Client) ReportMetrics(ctx context.Context, jobID string, metrics []Metric) (*Job, error) {
	var j Job
	path := "/v1/jobs/" + url.PathEscape(jobID) + "/metrics"
	if err := c.do(ctx, http.MethodPost, path, MetricsBody{Metrics: metrics}, &j); err != nil {
		return nil, err
	}
	return &j, nil
}

// RegisterCheckpoint records a checkpoint whose blob was uploaded to a
// coordinator's /v1/blobs/ first; the coordinators copy the blob among
// themselves before the record is committed. Registering a digest again
// returns the existing record.
func (c *Client) RegisterCheckpoint(ctx context.Context, body RegisterCheckpointBody) (*Checkpoint, error) {
	var out Checkpoint
	if err := c.do(ctx, http.MethodPost, "/v1/checkpoints", body, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
