package coordinator

import (
	"context"
	"fmt"
	"time"

	"github.com/trainctl/trainctl/api"
	"github.com/trainctl/trainctl/coordinator/state"
	"github.com/trainctl/trainctl/coordinator/structs"
)

// Limits of a worker's registration.
const (
	// maxWorkerAddrLen bounds a worker's advertised address.
	maxWorkerAddrLen = 256
	// maxWorkerMetaLen bounds the zone and version a worker advertises.
	maxWorkerMetaLen = 128
	// maxWorkerUnits bounds the cores and GPUs a worker advertises.
	maxWorkerUnits = 1 << 16
)

// Workers is the endpoint of the workers.
type Workers struct{ srv *Server }

// List lists the workers, ordered by id (GET /v1/workers).
func (e *Workers) List(ctx context.Context, id Identity, req *ListRequest) (Reply[[]*api.Worker], error) {
	s := e.srv
	if err := s.authorize(ctx, id, ActionWorkerRead); err != nil {
		return Reply[[]*api.Worker]{}, err
	}
	idx := s.waitTables(ctx, req.QueryOptions, state.TableWorkers)
	out := convertPtrs(s.State().Workers(), apiWorker)
	return Reply[[]*api.Worker]{Value: out, Index: idx}, nil
}

// Get answers one worker (GET /v1/workers/{id}).
func (e *Workers) Get(ctx context.Context, id Identity, req *ObjectRequest) (Reply[*api.Worker], error) {
	s := e.srv
	if err := s.authorize(ctx, id, ActionWorkerRead); err != nil {
		return Reply[*api.Worker]{}, err
	}
	if err := checkID("id", api.KindWorker, req.ID); err != nil {
		return Reply[*api.Worker]{}, err
	}
	idx := s.waitTables(ctx, req.QueryOptions, state.TableWorkers)
	wk, err := s.State().Worker(req.ID)
	if err != nil {
		return Reply[*api.Worker]{Index: idx}, err
	}
	return Reply[*api.Worker]{Value: convertPtr(wk, apiWorker), Index: idx}, nil
}

// Drain drains a worker (POST /v1/workers/{id}/drain): it takes no new
// ranks; the ones it runs continue. Answers the worker.
func (e *Workers) Drain(ctx context.Context, id Identity, req *ObjectRequest) (Reply[*api.Worker], error) {
	s := e.srv
	if err := s.authorize(ctx, id, ActionWorkerDrain); err != nil {
		return Reply[*api.Worker]{}, err
	}
	if err := checkID("id", api.KindWorker, req.ID); err != nil {
		return Reply[*api.Worker]{}, err
	}
	if err := s.leaderOnly(ctx); err != nil {
		return Reply[*api.Worker]{}, err
	}
	if _, err := s.State().Worker(req.ID); err != nil {
		return Reply[*api.Worker]{}, err // no log entry for a made-up id
	}
	resp, err := s.raftApply(ctx, structs.WorkerDrainRequestType, &structs.WorkerDrainRequest{
		ID:   req.ID,
		Time: time.Now().UTC(),
	})
	if err != nil {
		return Reply[*api.Worker]{}, err
	}
	wk, err := answer(resp, apiWorker)
	return reply(wk), err
}

// Register adds or updates a worker and renews its lease (POST
// /v1/workers/register). A worker sends it when it starts and then as its
// heartbeat: the leader renews the worker's lease and, when the worker is
// new, changed its address or metadata, or was marked dead or left,
// commits a WorkerUpsert (which brings it back alive). Answers the worker.
func (e *Workers) Register(ctx context.Context, id Identity, req *api.RegisterWorkerBody) (Reply[*api.Worker], error) {
	s := e.srv
	if err := s.authorize(ctx, id, ActionWorkerRegister); err != nil {
		return Reply[*api.Worker]{}, err
	}
	if err := checkID("id", api.KindWorker, req.ID); err != nil {
		return Reply[*api.Worker]{}, err
	}
	m := req.Meta
	switch {
	case len(req.Addr) > maxWorkerAddrLen:
		return Reply[*api.Worker]{}, fmt.Errorf("addr: %w: %d bytes, the limit is %d", structs.ErrInvalid, len(req.Addr), maxWorkerAddrLen)
	case m.Cores < 0 || m.GPUs < 0:
		return Reply[*api.Worker]{}, fmt.Errorf("meta: %w: negative cores or gpus", structs.ErrInvalid)
	case m.Cores > maxWorkerUnits || m.GPUs > maxWorkerUnits:
		return Reply[*api.Worker]{}, fmt.Errorf("meta: %w: more than %d cores or gpus", structs.ErrInvalid, maxWorkerUnits)
	case len(m.Zone) > maxWorkerMetaLen || len(m.Version) > maxWorkerMetaLen:
		return Reply[*api.Worker]{}, fmt.Errorf("meta: %w: zone or version longer than %d bytes", structs.ErrInvalid, maxWorkerMetaLen)
	}
	if err := s.leaderOnly(ctx); err != nil {
		return Reply[*api.Worker]{}, err
	}
	wk, err := s.upsertWorker(ctx, req.ID, req.Addr, serverWorkerMeta(req.Meta))
	if err != nil {
		return Reply[*api.Worker]{}, err
	}
	return reply(convertPtr(wk, apiWorker)), nil
}

// upsertWorker renews a worker's lease and, when the worker is new, changed
// its address or metadata, or was marked dead or left, commits a
// WorkerUpsert that brings it back alive and kicks the scheduler. The
// caller is the leader.
func (s *Server) upsertWorker(ctx context.Context, id, addr string, meta structs.WorkerMeta) (*structs.Worker, error) {
	s.renewLease(id)
	if old, err := s.State().Worker(id); err == nil && old.Addr == addr && old.Meta == meta &&
		(old.Status == structs.WorkerAlive || old.Status == structs.WorkerDraining) {
		return old, nil
	}
	resp, err := s.raftApply(ctx, structs.WorkerUpsertRequestType, &structs.WorkerUpsertRequest{
		ID:     id,
		Addr:   addr,
		Meta:   meta,
		Status: structs.WorkerAlive,
		Time:   time.Now().UTC(),
	})
	if err != nil {
		return nil, err
	}
	// Renewed again: a lease that expired meanwhile was forgotten.
	s.renewLease(id)
	s.kickScheduler()
	return resp.(*structs.Worker), nil
}

// Assignments answers the ranks of running attempts placed on a worker
// (GET /v1/workers/{id}/assignments), ordered by job id and rank, each with
// what the worker needs to run it.
func (e *Workers) Assignments(ctx context.Context, id Identity, req *ObjectRequest) (Reply[[]api.WorkerAssignment], error) {
	s := e.srv
	if err := s.authorize(ctx, id, ActionWorkerRead); err != nil {
		return Reply[[]api.WorkerAssignment]{}, err
	}
	if err := checkID("id", api.KindWorker, req.ID); err != nil {
		return Reply[[]api.WorkerAssignment]{}, err
	}
	// The answer is not found until the worker is there: its table
	// ends the wait too.
	idx := s.waitTables(ctx, req.QueryOptions, state.TableAssignments, state.TableWorkers)
	if _, err := s.State().Worker(req.ID); err != nil {
		return Reply[[]api.WorkerAssignment]{Index: idx}, err
	}
	out := []api.WorkerAssignment{}
	for _, a := range s.State().Assignments(req.ID) {
		j, err := s.State().Job(a.JobID)
		if err != nil || a.Attempt < 1 || a.Attempt > len(j.Attempts) {
			continue // changed between the two reads
		}
		att := j.Attempts[a.Attempt-1]
		out = append(out, api.WorkerAssignment{
			JobID:            j.ID,
			Attempt:          a.Attempt,
			Rank:             a.Rank,
			Nodes:            att.Nodes,
			Resources:        apiResources(a.Resources),
			Spec:             j.Spec.User(),
			DatasetVersionID: j.DatasetVersionID,
			ResumeFrom:       att.ResumeFrom,
		})
	}
	return Reply[[]api.WorkerAssignment]{Value: out, Index: idx}, nil
}
