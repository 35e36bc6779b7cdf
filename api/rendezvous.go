package api

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// The calls below are how the ranks of a data-parallel attempt find each
// other (docs/architecture.md, "Data-parallel training"): each rank listens
// on a port, registers that address with RegisterRank, and waits with
// RendezvousQuery until every rank of the attempt has one. The answer
// carries the attempt's secret, with which the ranks authenticate each
// other's connections.

// RingState is how a rank's ring connections stand, as the rank last
// reported it.
type RingState string

// The ring states.
const (
	// RingWaiting: the rank is placed but has not registered its address,
	// or waits for its peers'.
	RingWaiting RingState = "waiting"
	// RingConnected: the rank is connected to its ring neighbours and
	// training.
	RingConnected RingState = "connected"
	// RingFailed: a collective of the rank failed (the attempt's error
	// says why).
	RingFailed RingState = "failed"
)

// RankStatus is one rank of an attempt as `jobs get` shows it: where it
// runs, the address its peers reach it at, its ring state and throughput.
type RankStatus struct {
	Rank int    `json:"rank"`
	Node string `json:"node"`
	// Addr is the host:port the rank listens on for its peers; empty until
	// it registered.
	Addr string    `json:"addr,omitempty"`
	Ring RingState `json:"ring"`
	// Step and ImagesPerSec are from the rank's latest running report.
	Step         int64   `json:"step,omitempty"`
	ImagesPerSec float64 `json:"images_per_sec,omitempty"`
	// Registered is when the rank registered its address; Connected when
	// it first reported its ring connected.
	Registered time.Time `json:"registered,omitzero"`
	Connected  time.Time `json:"connected,omitzero"`
}

// RegisterRankBody is the body of POST
// /v1/jobs/{id}/attempts/{n}/ranks/{r}: the rank's worker and the address
// its peers connect to.
type RegisterRankBody struct {
	WorkerID string `json:"worker_id"`
	Addr     string `json:"addr"`
}

// Rendezvous is the answer of GET /v1/jobs/{id}/attempts/{n}/rendezvous
// (and of RegisterRank): the addresses of an attempt's ranks and the
// attempt's secret. Ready is true once every rank has an address.
type Rendezvous struct {
	JobID   string `json:"job_id"`
	Attempt int    `json:"attempt"`
	// Addrs holds the address of each rank, "" for a rank that has not
	// registered yet; len(Addrs) is the number of ranks.
	Addrs []string `json:"addrs"`
	// Secret is the attempt's shared secret (64 hex digits): ranks prove
	// to each other that they belong to the attempt with it.
	Secret string `json:"secret"`
	Ready  bool   `json:"ready"`
}

// RegisterRank records the address rank r of attempt n of a job listens on
// and returns the rendezvous so far. Registering the same address again is
// safe; an attempt that is not running wraps ErrConflict.
func (c *Client) RegisterRank(ctx context.Context, jobID string, n, rank int, body RegisterRankBody) (*Rendezvous, error) {
	var out Rendezvous
	path := "/v1/jobs/" + url.PathEscape(jobID) + "/attempts/" + strconv.Itoa(n) + "/ranks/" + strconv.Itoa(rank)
	if err := c.do(ctx, http.MethodPost, path, body, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RendezvousQuery returns the rendezvous of attempt n of a job as a
// blocking query on the jobs: a rank waits on it until Ready. An attempt
// that ended wraps ErrConflict.
func (c *Client) RendezvousQuery(ctx context.Context, jobID string, n int, q *QueryOptions) (*Rendezvous, QueryMeta, error) {
	return getOne[Rendezvous](ctx, c, "/v1/jobs/"+url.PathEscape(jobID)+"/attempts/"+strconv.Itoa(n)+"/rendezvous", q)
}
