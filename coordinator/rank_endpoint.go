package coordinator

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/trainctl/trainctl/api"
	"github.com/trainctl/trainctl/coordinator/state"
	"github.com/trainctl/trainctl/coordinator/structs"
)

// maxRankAddrLen bounds a rank's registered address.
const maxRankAddrLen = 256

// RankRequest names one rank of one attempt of a job (POST
// /v1/jobs/{id}/attempts/{n}/ranks/{r}); Body is its registration.
type RankRequest struct {
	JobID   string
	Attempt int
	Rank    int
	Body    api.RegisterRankBody
}

// RendezvousRequest names one attempt of a job (GET
// /v1/jobs/{id}/attempts/{n}/rendezvous), as a blocking query.
type RendezvousRequest struct {
	JobID   string
	Attempt int
	api.QueryOptions
}

// RegisterRank records the address a rank of a running data-parallel
// attempt listens on (a Raft entry; only the worker the rank is placed on
// may) and answers the rendezvous so far (docs/architecture.md,
// "Data-parallel training").
func (e *Attempts) RegisterRank(ctx context.Context, id Identity, req *RankRequest) (Reply[*api.Rendezvous], error) {
	s := e.srv
	var zero Reply[*api.Rendezvous]
	if err := s.authorize(ctx, id, ActionAttemptReport); err != nil {
		return zero, err
	}
	if err := checkID("id", api.KindJob, req.JobID); err != nil {
		return zero, err
	}
	if err := checkID("worker_id", api.KindWorker, req.Body.WorkerID); err != nil {
		return zero, err
	}
	if err := checkRankAddr(req.Body.Addr); err != nil {
		return zero, err
	}
	if err := s.leaderOnly(ctx); err != nil {
		return zero, err
	}
	out, err := s.raftApply(ctx, structs.RankUpdateRequestType, &structs.RankUpdateRequest{
		JobID: req.JobID, Attempt: req.Attempt, Rank: req.Rank, WorkerID: req.Body.WorkerID,
		Addr: req.Body.Addr, Time: time.Now().UTC(),
	})
	if err != nil {
		return zero, err
	}
	s.renewLease(req.Body.WorkerID)
	rv, err := rendezvous(out.(*structs.Job), req.Attempt)
	return Reply[*api.Rendezvous]{Value: rv}, err
}

// Rendezvous answers the addresses of an attempt's ranks and its secret,
// as a blocking query on the jobs: a rank waits on it until Ready. An
// attempt that ended is a conflict, so that its waiting ranks stop.
func (e *Attempts) Rendezvous(ctx context.Context, id Identity, req *RendezvousRequest) (Reply[*api.Rendezvous], error) {
	s := e.srv
	if err := s.authorize(ctx, id, ActionJobRead); err != nil {
		return Reply[*api.Rendezvous]{}, err
	}
	if err := checkID("id", api.KindJob, req.JobID); err != nil {
		return Reply[*api.Rendezvous]{}, err
	}
	idx := s.waitTables(ctx, req.QueryOptions, state.TableJobs)
	j, err := s.State().Job(req.JobID)
	if err != nil {
		return Reply[*api.Rendezvous]{Index: idx}, err
	}
	rv, err := rendezvous(j, req.Attempt)
	return Reply[*api.Rendezvous]{Value: rv, Index: idx}, err
}

// rendezvous is the api view of attempt n of j, which must be running and
// data-parallel.
func rendezvous(j *structs.Job, n int) (*api.Rendezvous, error) {
	if n < 1 || n > len(j.Attempts) {
		return nil, fmt.Errorf("attempt %d of job %s: %w", n, j.ID, structs.ErrNotFound)
	}
	a := j.Attempts[n-1]
	switch {
	case a.State != structs.AttemptRunning:
		return nil, fmt.Errorf("attempt %d of job %s: %w: it ended %s", n, j.ID, structs.ErrConflict, a.State)
	case len(a.Ranks) == 0:
		return nil, fmt.Errorf("attempt %d of job %s: %w: it has one rank, no rendezvous", n, j.ID, structs.ErrInvalid)
	}
	rv := &api.Rendezvous{JobID: j.ID, Attempt: n, Secret: a.Secret, Ready: true, Addrs: make([]string, len(a.Ranks))}
	for r, rs := range a.Ranks {
		rv.Addrs[r] = rs.Addr
		rv.Ready = rv.Ready && rs.Addr != ""
	}
	return rv, nil
}

// checkRankAddr checks a rank's address: host:port with a host and a
// port in 1..65535.
func checkRankAddr(addr string) error {
	if len(addr) > maxRankAddrLen {
		return fmt.Errorf("addr: %w: %d bytes, at most %d", structs.ErrInvalid, len(addr), maxRankAddrLen)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return fmt.Errorf("addr: %w: %q is not HOST:PORT", structs.ErrInvalid, api.Truncate(addr, 64))
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("addr: %w: port %q is not in 1..65535", structs.ErrInvalid, api.Truncate(port, 16))
	}
	return nil
}

// decodeRankRequest reads the job, attempt and rank of the path and the
// body.
func decodeRankRequest(r *http.Request, body []byte, req *RankRequest) error {
	req.JobID = r.PathValue("id")
	var err error
	if req.Attempt, err = pathNumber(r, "n", 1); err != nil {
		return err
	}
	if req.Rank, err = pathNumber(r, "r", 0); err != nil {
		return err
	}
	return decodeJSON(body, &req.Body)
}

// decodeRendezvous reads the job and attempt of the path and the blocking
// query's options.
func decodeRendezvous(r *http.Request, _ []byte, req *RendezvousRequest) error {
	req.JobID = r.PathValue("id")
	var err error
	if req.Attempt, err = pathNumber(r, "n", 1); err != nil {
		return err
	}
	return queryOptions(r, &req.QueryOptions)
}

// pathNumber reads path value name as a number of at least least.
func pathNumber(r *http.Request, name string, least int) (int, error) {
	v := r.PathValue(name)
	n, err := strconv.Atoi(v)
	if err != nil || n < least || n > 1<<20 {
		return 0, fmt.Errorf("%s %q: %w: want a number from %d", name, api.Truncate(v, 32), structs.ErrInvalid, least)
	}
	return n, nil
}
