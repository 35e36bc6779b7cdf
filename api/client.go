// Package client is a typed Go client of the coordinator's /v1/ HTTP API,
// used by the CLI and the workers.
//
// A Client knows a list of coordinator addresses. It sends each request to
// the address that last answered and, on a connection error or a 503 (no
// leader, leader changing), tries the next one, backing off, until the
// request succeeds, fails for another reason, Config.RetryTimeout has passed
// or the context ends. Every write of the API is idempotent (submissions by
// their request id), so retrying a request whose answer was lost is safe.
//
// Writes are acknowledged by the leader once committed. Reads are answered
// by whichever coordinator the client reaches from its own state, which may
// lag the leader's by the entries it has not applied yet (normally
// milliseconds): a read through one coordinator right after a write through
// another may not see the write yet.
package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/trainctl/trainctl/jobspec"
)

// Config configures a Client; start from DefaultConfig.
type Config struct {
	// Addrs are coordinator HTTP addresses, "host:port" or a URL.
	Addrs []string
	// HTTPClient sends the requests; nil means a client with a 30 s timeout.
	// Blocking queries (QueryOptions) are sent through a copy of it without
	// that timeout, each bounded instead by its wait plus some slack.
	HTTPClient *http.Client
	// RetryTimeout bounds the retries of one call (the context may end it
	// sooner); 0 means each address is tried once.
	RetryTimeout time.Duration
	// RetryWait is the first pause after every address failed; it doubles
	// up to MaxRetryWait.
	RetryWait    time.Duration
	MaxRetryWait time.Duration
}

// DefaultConfig returns a configuration for the given addresses that
// retries for up to 30 s, long enough to ride out a leader election.
func DefaultConfig(addrs ...string) Config {
	return Config{
		Addrs:        addrs,
		RetryTimeout: 30 * time.Second,
		RetryWait:    50 * time.Millisecond,
		MaxRetryWait: 200 * time.Millisecond,
	}
}

// Client calls the coordinator API. It is safe for concurrent use.
type Client struct {
	cfg   Config
	bases []string
	http  *http.Client
	// blockingHTTP is http without its timeout, for blocking queries.
	blockingHTTP *http.Client
	// next is the index of the address to try first.
	next atomic.Int64
}

// New returns a client of the coordinators at addrs with DefaultConfig.
func New(addrs ...string) *Client {
	return NewWithConfig(DefaultConfig(addrs...))
}

// NewWithConfig returns a client configured by cfg.
func NewWithConfig(cfg Config) *Client {
	c := &Client{cfg: cfg, http: cfg.HTTPClient}
	if c.http == nil {
		c.http = &http.Client{Timeout: 30 * time.Second}
	}
	bc := *c.http
	bc.Timeout = 0
	c.blockingHTTP = &bc
	for _, a := range cfg.Addrs {
		if !strings.Contains(a, "://") {
			a = "http://" + a
		}
		c.bases = append(c.bases, strings.TrimRight(a, "/"))
	}
	return c
}

// APIError is an error answer of the API. It unwraps to the sentinel of
// coordinator/structs its code names (ErrNotFound for 404 ...), so
// callers check it with errors.Is.
type APIError struct {
	Status  int
	Code    string
	Message string
}

// Error returns the server's message with the status.
func (e *APIError) Error() string {
	return fmt.Sprintf("%s (HTTP %d)", e.Message, e.Status)
}

// Unwrap returns the sentinel error for the code, or nil.
func (e *APIError) Unwrap() error { return ErrorForCode(e.Code) }

// retryable reports whether another coordinator (or the same one later) may
// succeed where this attempt failed.
func retryable(err error) bool {
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		switch apiErr.Status {
		case http.StatusServiceUnavailable, http.StatusBadGateway, http.StatusGatewayTimeout:
			return true
		}
		return false
	}
	return true // a transport error: refused, reset, timed out
}

// do sends one API call with retries; in (if not nil) is the JSON body and
// out (if not nil) receives the JSON answer.
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	_, err := c.doStatus(ctx, method, path, in, out)
	return err
}

// doStatus is do that also returns the HTTP status of the successful
// answer, for calls whose 200 and 201 mean different things.
func (c *Client) doStatus(ctx context.Context, method, path string, in, out any) (int, error) {
	status, _, err := c.doQuery(ctx, method, path, nil, in, out)
	return status, err
}

// doQuery is doStatus that, with q, makes the call a blocking query, and
// that returns the answer's QueryMeta.
func (c *Client) doQuery(ctx context.Context, method, path string, q *QueryOptions, in, out any) (int, QueryMeta, error) {
	if len(c.bases) == 0 {
		return 0, QueryMeta{}, errors.New("coordinator client: no addresses")
	}
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return 0, QueryMeta{}, fmt.Errorf("%s %s: encode: %w", method, path, err)
		}
	}
	deadline := time.Now().Add(c.cfg.RetryTimeout)
	wait := c.cfg.RetryWait
	start := c.next.Load()
	// lastAPIErr is the last answer of a coordinator: when giving up it says
	// more than a connection refused by another address.
	var lastAPIErr *APIError
	for attempt := int64(0); ; attempt++ {
		i := (start + attempt) % int64(len(c.bases))
		sent := time.Now()
		status, meta, err := c.once(ctx, c.bases[i], method, path, q, body, out)
		if err == nil {
			c.next.Store(i)
			return status, meta, nil
		}
		if !retryable(err) || ctx.Err() != nil {
			// An error answer of a blocking GET still carries its index
			// (a model not registered yet is waited on as any other).
			return 0, meta, fmt.Errorf("%s %s: %w", method, path, err)
		}
		if q.RequestTimeout() > 0 {
			// Time spent waiting in a blocking query is not retrying.
			deadline = deadline.Add(time.Since(sent))
		}
		errors.As(err, &lastAPIErr)
		if (attempt+1)%int64(len(c.bases)) != 0 {
			continue // try the next address at once
		}
		if !time.Now().Add(wait).Before(deadline) {
			if lastAPIErr != nil {
				err = lastAPIErr
			}
			return 0, QueryMeta{}, fmt.Errorf("%s %s: giving up after %d attempts: %w", method, path, attempt+1, err)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return 0, QueryMeta{}, fmt.Errorf("%s %s: %w (last error: %w)", method, path, ctx.Err(), err)
		case <-t.C:
		}
		wait = min(2*wait, c.cfg.MaxRetryWait)
	}
}

// once sends one request to one address and returns the answer's status
// and QueryMeta. With a q that waits it is a blocking query: q's
// parameters are added to path, and the request, sent without the HTTP
// client's own timeout, is bounded by q's wait and some slack instead.
func (c *Client) once(ctx context.Context, base, method, path string, q *QueryOptions, body []byte, out any) (int, QueryMeta, error) {
	hc := c.http
	if d := q.RequestTimeout(); d > 0 {
		hc = c.blockingHTTP
		path = withQuery(path, q.Values())
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
	if err != nil {
		return 0, QueryMeta{}, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, QueryMeta{}, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return 0, QueryMeta{}, fmt.Errorf("read answer of %s: %w", base, err)
	}
	meta := parseQueryMeta(resp.Header)
	if resp.StatusCode >= 300 {
		var eb ErrorBody
		if json.Unmarshal(data, &eb) != nil || eb.Error == "" {
			eb = ErrorBody{Error: strings.TrimSpace(string(data)), Code: CodeInternal}
		}
		return 0, meta, &APIError{Status: resp.StatusCode, Code: eb.Code, Message: eb.Error}
	}
	if out == nil {
		return resp.StatusCode, meta, nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return 0, QueryMeta{}, fmt.Errorf("decode answer of %s: %w", base, err)
	}
	return resp.StatusCode, meta, nil
}

// SubmitJob submits a job. requestID is the idempotency key: calling again
// with the same id (after a timeout, a failover, a crash of the caller)
// returns the job the first call created rather than a second job.
func (c *Client) SubmitJob(ctx context.Context, requestID string, spec jobspec.Spec) (*Job, error) {
	var j Job
	err := c.do(ctx, http.MethodPost, "/v1/jobs", SubmitJobBody{RequestID: requestID, Spec: spec}, &j)
	if err != nil {
		return nil, err
	}
	return &j, nil
}

// Job returns a job; an unknown id is an error wrapping ErrNotFound.
func (c *Client) Job(ctx context.Context, id string) (*Job, error) {
	var j Job
	if err := c.do(ctx, http.MethodGet, "/v1/jobs/"+url.PathEscape(id), nil, &j); err != nil {
		return nil, err
	}
	return &j, nil
}

// Jobs lists jobs in submission order; a non-empty state keeps only those
// in that state.
func (c *Client) Jobs(ctx context.Context, state JobState) ([]*Job, error) {
	path := "/v1/jobs"
	if state != "" {
		path += "?state=" + url.QueryEscape(string(state))
	}
	var out []*Job
	if err := c.do(ctx, http.MethodGet, path, nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// CancelJob cancels a job and returns it; cancelling a finished job leaves
// it as it is.
func (c *Client) CancelJob(ctx context.Context, id string) (*Job, error) {
	var j Job
	if err := c.do(ctx, http.MethodPost, "/v1/jobs/"+url.PathEscape(id)+"/cancel", nil, &j); err != nil {
		return nil, err
	}
	return &j, nil
}

// JobMetrics returns a job's metric reports in commit order.
func (c *Client) JobMetrics(ctx context.Context, id string) ([]Metric, error) {
	var out []Metric
	if err := c.do(ctx, http.MethodGet, "/v1/jobs/"+url.PathEscape(id)+"/metrics", nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// Checkpoints returns the checkpoint records of a job, or of all jobs when
// jobID is empty.
func (c *Client) Checkpoints(ctx context.Context, jobID string) ([]*Checkpoint, error) {
	path := "/v1/checkpoints"
	if jobID != "" {
		path += "?job=" + url.QueryEscape(jobID)
	}
	var out []*Checkpoint
	if err := c.do(ctx, http.MethodGet, path, nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// Workers lists the workers.
func (c *Client) Workers(ctx context.Context) ([]*Worker, error) {
	var out []*Worker
	if err := c.do(ctx, http.MethodGet, "/v1/workers", nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// DrainWorker stops new placements on a worker and returns it.
func (c *Client) DrainWorker(ctx context.Context, id string) (*Worker, error) {
	var w Worker
	if err := c.do(ctx, http.MethodPost, "/v1/workers/"+url.PathEscape(id)+"/drain", nil, &w); err != nil {
		return nil, err
	}
	return &w, nil
}

// Datasets lists registered dataset versions, of one name or of all when
// name is empty.
func (c *Client) Datasets(ctx context.Context, name string) ([]*DatasetVersion, error) {
	path := "/v1/datasets"
	if name != "" {
		path += "?name=" + url.QueryEscape(name)
	}
	var out []*DatasetVersion
	if err := c.do(ctx, http.MethodGet, path, nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// RegisterDataset adds a dataset version to the registry (its blob must be
// in the artifact store); registering the same name and id again returns
// the existing entry.
func (c *Client) RegisterDataset(ctx context.Context, body RegisterDatasetBody) (*DatasetVersion, error) {
	var v DatasetVersion
	if err := c.do(ctx, http.MethodPost, "/v1/datasets", body, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// Status returns the cluster status as the answering coordinator sees it.
func (c *Client) Status(ctx context.Context) (*ClusterStatus, error) {
	var st ClusterStatus
	if err := c.do(ctx, http.MethodGet, "/v1/cluster/status", nil, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// Join asks the cluster to add a coordinator as a voter.
func (c *Client) Join(ctx context.Context, req JoinRequest) error {
	return c.do(ctx, http.MethodPost, "/v1/cluster/join", req, nil)
}
