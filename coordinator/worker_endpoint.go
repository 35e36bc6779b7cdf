package coordinator

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/trainctl/trainctl/api"
	"github.com/trainctl/trainctl/coordinator/structs"
)

// handleWorkerList is GET /v1/workers: workers ordered by id.
func (s *Server) handleWorkerList(w http.ResponseWriter, r *http.Request) {
	out := s.State().Workers()
	if out == nil {
		out = []*structs.Worker{}
	}
	writeJSON(w, http.StatusOK, out)
}

// handleWorkerGet is GET /v1/workers/{id}.
func (s *Server) handleWorkerGet(w http.ResponseWriter, r *http.Request) {
	wk, err := s.State().Worker(r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, wk)
}

// handleWorkerDrain is POST /v1/workers/{id}/drain: the worker takes no new
// ranks; the ones it runs continue.
func (s *Server) handleWorkerDrain(w http.ResponseWriter, r *http.Request) {
	if s.forward(w, r) {
		return
	}
	resp, err := s.raftApply(r.Context(), structs.WorkerDrainRequestType, &structs.WorkerDrainRequest{
		ID:   r.PathValue("id"),
		Time: time.Now().UTC(),
	})
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// handleWorkerRegister is POST /v1/workers/register: body
// api.RegisterWorkerBody. A worker sends it when it starts and then as
// its heartbeat: the leader renews the worker's lease and, when the worker
// is new, changed its address or metadata, or was marked dead or left,
// commits a WorkerUpsert (which brings it back alive); answers the worker.
func (s *Server) handleWorkerRegister(w http.ResponseWriter, r *http.Request) {
	if s.forward(w, r) {
		return
	}
	var body api.RegisterWorkerBody
	if err := decodeBody(w, r, &body); err != nil {
		writeError(w, err)
		return
	}
	switch {
	case body.ID == "":
		writeError(w, fmt.Errorf("id: %w: required", structs.ErrInvalid))
		return
	case body.Meta.Cores < 0 || body.Meta.GPUs < 0:
		writeError(w, fmt.Errorf("meta: %w: negative cores or gpus", structs.ErrInvalid))
		return
	}
	wk, err := s.upsertWorker(r.Context(), body.ID, body.Addr, serverWorkerMeta(body.Meta))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, wk)
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

// handleWorkerAssignments is GET /v1/workers/{id}/assignments: the ranks of
// running attempts placed on the worker, ordered by job id and rank, each
// with what the worker needs to run it (api.WorkerAssignment).
func (s *Server) handleWorkerAssignments(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if _, err := s.State().Worker(id); err != nil {
		writeError(w, err)
		return
	}
	out := []api.WorkerAssignment{}
	for _, a := range s.State().Assignments(id) {
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
	writeJSON(w, http.StatusOK, out)
}
