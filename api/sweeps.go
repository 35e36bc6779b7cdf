package api

import (
	"context"
	"net/http"
	"net/url"

	"github.com/trainctl/trainctl/tuning"
)

// The calls below are the sweep and model-registry part of the API: submit
// and follow hyperparameter sweeps, and name checkpoints as model versions.

// SubmitSweep submits a sweep. requestID is the idempotency key, as for
// SubmitJob: calling again with the same id returns the sweep the first
// call created. A spec the coordinator rejects is an error wrapping
// ErrInvalid whose message names the fields.
func (c *Client) SubmitSweep(ctx context.Context, requestID string, spec tuning.Spec) (*Sweep, error) {
	var sw Sweep
	err := c.do(ctx, http.MethodPost, "/v1/sweeps", SubmitSweepBody{RequestID: requestID, Spec: spec}, &sw)
	if err != nil {
		return nil, err
	}
	return &sw, nil
}

// Sweep returns a sweep; an unknown id is an error wrapping
// ErrNotFound.
func (c *Client) Sweep(ctx context.Context, id string) (*Sweep, error) {
	var sw Sweep
	if err := c.do(ctx, http.MethodGet, sweepPath(id, ""), nil, &sw); err != nil {
		return nil, err
	}
	return &sw, nil
}

// Sweeps lists sweeps in submission order; a non-empty state keeps only
// those in that state.
func (c *Client) Sweeps(ctx context.Context, state SweepState) ([]*Sweep, error) {
	path := "/v1/sweeps"
	if state != "" {
		path += "?state=" + url.QueryEscape(string(state))
	}
	var out []*Sweep
	if err := c.do(ctx, http.MethodGet, path, nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// CancelSweep cancels a sweep (its running trials and their jobs) and
// returns it; cancelling a sweep that ended leaves it as it is.
func (c *Client) CancelSweep(ctx context.Context, id string) (*Sweep, error) {
	var sw Sweep
	if err := c.do(ctx, http.MethodPost, sweepPath(id, "/cancel"), nil, &sw); err != nil {
		return nil, err
	}
	return &sw, nil
}

// SweepTrials returns a sweep's trials as a leaderboard: the trials with a
// value, best first by the objective (ties by number), then the others by
// number.
func (c *Client) SweepTrials(ctx context.Context, id string) ([]Trial, error) {
	var out []Trial
	if err := c.do(ctx, http.MethodGet, sweepPath(id, "/trials"), nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// ReplaySweep asks the answering coordinator to replay a sweep's committed
// history through a fresh searcher and scheduler and report whether it
// reproduces every recorded suggestion and decision. Each coordinator
// answers from its own state: ask each to check they agree.
func (c *Client) ReplaySweep(ctx context.Context, id string) (*SweepReplay, error) {
	var rep SweepReplay
	if err := c.do(ctx, http.MethodGet, sweepPath(id, "/replay"), nil, &rep); err != nil {
		return nil, err
	}
	return &rep, nil
}

// Models lists the versions of one model, oldest first, or of every model
// (by name, then version) when name is empty. A name with no versions is
// an error wrapping ErrNotFound.
func (c *Client) Models(ctx context.Context, name string) ([]*ModelVersion, error) {
	path := "/v1/models"
	if name != "" {
		path += "/" + url.PathEscape(name)
	}
	var out []*ModelVersion
	if err := c.do(ctx, http.MethodGet, path, nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// RegisterModel adds the next version of a named model from exactly one of
// a checkpoint digest, a job (its latest checkpoint) or a sweep (its best
// checkpoint), and returns it with created true. Registering the checkpoint
// the latest version already has returns that version with created false
// (also when an earlier try of this very call, retried after a lost
// answer, created it).
func (c *Client) RegisterModel(ctx context.Context, body RegisterModelBody) (v *ModelVersion, created bool, err error) {
	v = new(ModelVersion)
	status, err := c.doStatus(ctx, http.MethodPost, "/v1/models", body, v)
	if err != nil {
		return nil, false, err
	}
	return v, status == http.StatusCreated, nil
}

// sweepPath is the path of sweep id with suffix.
func sweepPath(id, suffix string) string {
	return "/v1/sweeps/" + url.PathEscape(id) + suffix
}
