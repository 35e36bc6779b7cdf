package api

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// The calls below are the blocking variants of the API's GETs (see
// QueryOptions and the server's coordinator/blocking.go): each takes
// QueryOptions, nil or with a zero WaitIndex to answer at once, and returns
// the answer with its QueryMeta, whose LastIndex is the WaitIndex of the
// next call. A Watch paces a loop of them. The plain methods (Job, Sweep,
// ...) stay for callers that read once.

// QueryMeta is what an answer says about the state it was read from.
type QueryMeta struct {
	// LastIndex is the answer's IndexHeader: the index of the tables the
	// GET reads when it answered. 0 means the answer carried none (a route
	// or a server without blocking queries): waiting on it is not possible.
	// An error answer of the API carries it too (a model not registered
	// yet is a 404 that can be waited on): the *Query methods return it
	// with the error.
	LastIndex uint64
}

// parseQueryMeta reads an answer's QueryMeta from its headers; a missing
// or malformed index reads as 0.
func parseQueryMeta(h http.Header) QueryMeta {
	idx, err := strconv.ParseUint(h.Get(IndexHeader), 10, 64)
	if err != nil {
		return QueryMeta{}
	}
	return QueryMeta{LastIndex: idx}
}

// blockingSlack is added to a blocking query's wait for its request
// deadline: the server's answer after a full wait must arrive within it.
const blockingSlack = 5 * time.Second

// wait returns how long the server may hold the query: 0 when it answers
// at once (nil q or no WaitIndex), else WaitTime with the server's default
// and bound applied.
func (q *QueryOptions) wait() time.Duration {
	if q == nil || q.WaitIndex == 0 {
		return 0
	}
	d := q.WaitTime
	if d <= 0 {
		d = DefaultBlockingWait
	}
	return min(d, MaxBlockingWait)
}

// RequestTimeout returns the deadline the Client gives one request of the
// query: for a blocking query its wait, a sixteenth of it (the jitter
// Consul's servers add) and a few seconds; 0 for a query that does not
// wait (nil, or no WaitIndex), which the HTTP client's own timeout bounds.
// A caller that bounds a blocking query's context should allow this much
// and its retries on top.
func (q *QueryOptions) RequestTimeout() time.Duration {
	w := q.wait()
	if w == 0 {
		return 0
	}
	return w + w/16 + blockingSlack
}

// withQuery appends v to path, which may already have a query.
func withQuery(path string, v url.Values) string {
	enc := v.Encode()
	switch {
	case enc == "":
		return path
	case strings.Contains(path, "?"):
		return path + "&" + enc
	}
	return path + "?" + enc
}

// get sends a GET, blocking as q says, and decodes its answer into a T.
func get[T any](ctx context.Context, c *Client, path string, q *QueryOptions) (T, QueryMeta, error) {
	var out T
	_, meta, err := c.doQuery(ctx, http.MethodGet, path, q, nil, &out)
	return out, meta, err
}

// getOne is get for an answer that is one object, returned by pointer
// (nil on error).
func getOne[T any](ctx context.Context, c *Client, path string, q *QueryOptions) (*T, QueryMeta, error) {
	v, meta, err := get[T](ctx, c, path, q)
	if err != nil {
		return nil, meta, err
	}
	return &v, meta, nil
}

// withFilter is path with the query parameter name=value, when value is
// not empty.
func withFilter(path, name, value string) string {
	if value == "" {
		return path
	}
	return withQuery(path, url.Values{name: {value}})
}

// JobQuery is Job as a blocking query: it answers once the jobs have
// changed past q.WaitIndex (any job: compare the job's ModifyIndex to see
// whether this one did) or q's wait passed.
func (c *Client) JobQuery(ctx context.Context, id string, q *QueryOptions) (*Job, QueryMeta, error) {
	return getOne[Job](ctx, c, "/v1/jobs/"+url.PathEscape(id), q)
}

// JobsQuery is Jobs as a blocking query on the jobs.
func (c *Client) JobsQuery(ctx context.Context, state JobState, q *QueryOptions) ([]*Job, QueryMeta, error) {
	return get[[]*Job](ctx, c, withFilter("/v1/jobs", "state", string(state)), q)
}

// JobMetricsQuery is JobMetrics as a blocking query: it answers once the
// metrics or the jobs have changed past q.WaitIndex, so a job that ends
// wakes it too.
func (c *Client) JobMetricsQuery(ctx context.Context, id string, q *QueryOptions) ([]Metric, QueryMeta, error) {
	return get[[]Metric](ctx, c, "/v1/jobs/"+url.PathEscape(id)+"/metrics", q)
}

// CheckpointsQuery is Checkpoints as a blocking query on the checkpoints.
func (c *Client) CheckpointsQuery(ctx context.Context, jobID string, q *QueryOptions) ([]*Checkpoint, QueryMeta, error) {
	return get[[]*Checkpoint](ctx, c, withFilter("/v1/checkpoints", "job", jobID), q)
}

// WorkersQuery is Workers as a blocking query on the workers (their
// heartbeats change them too).
func (c *Client) WorkersQuery(ctx context.Context, q *QueryOptions) ([]*Worker, QueryMeta, error) {
	return get[[]*Worker](ctx, c, "/v1/workers", q)
}

// AssignmentsQuery is Assignments as a blocking query: it answers once
// some worker's assignments have changed past q.WaitIndex (placements and
// releases, not heartbeats) or q's wait passed.
func (c *Client) AssignmentsQuery(ctx context.Context, workerID string, q *QueryOptions) ([]WorkerAssignment, QueryMeta, error) {
	return get[[]WorkerAssignment](ctx, c, "/v1/workers/"+url.PathEscape(workerID)+"/assignments", q)
}

// SweepQuery is Sweep as a blocking query on the sweeps.
func (c *Client) SweepQuery(ctx context.Context, id string, q *QueryOptions) (*Sweep, QueryMeta, error) {
	return getOne[Sweep](ctx, c, sweepPath(id, ""), q)
}

// SweepsQuery is Sweeps as a blocking query on the sweeps.
func (c *Client) SweepsQuery(ctx context.Context, state SweepState, q *QueryOptions) ([]*Sweep, QueryMeta, error) {
	return get[[]*Sweep](ctx, c, withFilter("/v1/sweeps", "state", string(state)), q)
}

// SweepTrialsQuery is SweepTrials as a blocking query on the sweeps.
func (c *Client) SweepTrialsQuery(ctx context.Context, id string, q *QueryOptions) ([]Trial, QueryMeta, error) {
	return get[[]Trial](ctx, c, sweepPath(id, "/trials"), q)
}

// ModelsQuery is Models as a blocking query on the model registry.
func (c *Client) ModelsQuery(ctx context.Context, name string, q *QueryOptions) ([]*ModelVersion, QueryMeta, error) {
	path := "/v1/models"
	if name != "" {
		path += "/" + url.PathEscape(name)
	}
	return get[[]*ModelVersion](ctx, c, path, q)
}

// DatasetsQuery is Datasets as a blocking query on the dataset registry.
func (c *Client) DatasetsQuery(ctx context.Context, name string, q *QueryOptions) ([]*DatasetVersion, QueryMeta, error) {
	return get[[]*DatasetVersion](ctx, c, withFilter("/v1/datasets", "name", name), q)
}
