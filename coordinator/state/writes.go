package state

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/trainctl/trainctl/coordinator/structs"
)

// The write methods below are called by the FSM only. Each checks the whole
// command before changing anything, so a command that returns an error leaves
// the state as it was, and replaces the objects it changes (copy on write).

func (s *Store) submitJob(index uint64, req *structs.JobSubmitRequest) (*structs.Job, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if req.RequestID != "" {
		if id, ok := s.t.jobsByRequest[req.RequestID]; ok {
			return s.t.jobs[id], nil
		}
	}
	if req.JobID == "" {
		return nil, fmt.Errorf("submit job: job_id: %w: required", structs.ErrInvalid)
	}
	if _, ok := s.t.jobs[req.JobID]; ok {
		return nil, fmt.Errorf("submit job %q: %w: id exists", req.JobID, structs.ErrConflict)
	}
	j := &structs.Job{
		ID:               req.JobID,
		RequestID:        req.RequestID,
		Spec:             req.Spec,
		DatasetVersionID: req.DatasetVersionID,
		State:            structs.JobPending,
		SubmitTime:       req.SubmitTime,
		ModifyTime:       req.SubmitTime,
		CreateIndex:      index,
		ModifyIndex:      index,
	}
	s.t.jobs[j.ID] = j
	if j.RequestID != "" {
		s.t.jobsByRequest[j.RequestID] = j.ID
	}
	s.changed(index, TableJobs)
	return j, nil
}

func (s *Store) cancelJob(index uint64, req *structs.JobCancelRequest) (*structs.Job, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.t.jobs[req.JobID]
	if !ok {
		return nil, fmt.Errorf("cancel job %q: %w", req.JobID, structs.ErrNotFound)
	}
	if old.State.Terminal() {
		return old, nil
	}
	return s.cancelJobLocked(index, old, req.Time), nil
}

// cancelJobLocked cancels a job that is not terminal: its running attempt
// ends cancelled and its assignments are released. Callers hold the lock.
// It is shared by job cancellation and by the sweep commands that cancel a
// trial's job, so both leave the same state.
func (s *Store) cancelJobLocked(index uint64, old *structs.Job, now time.Time) *structs.Job {
	j := old.Copy()
	if a := j.CurrentAttempt(); a != nil && a.State == structs.AttemptRunning {
		a.State = structs.AttemptCancelled
		a.EndTime = now
		s.releaseAssignments(index, j.ID)
	}
	j.State = structs.JobCancelled
	s.touchJob(index, j, now)
	return j
}

func (s *Store) placeJob(index uint64, req *structs.JobPlaceRequest) (*structs.Job, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.placeJobLocked(index, req)
}

// placeJobs applies the placements of a batch in order, each as placeJob
// would against the state the ones before it left. A placement that fails
// changes nothing and its error is its result; it does not stop the others.
// Only a batch with no placements is an error as a whole.
func (s *Store) placeJobs(index uint64, req *structs.JobPlaceBatchRequest) (*structs.JobPlaceBatchResponse, error) {
	if len(req.Places) == 0 {
		return nil, fmt.Errorf("place jobs: places: %w: empty", structs.ErrInvalid)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	resp := &structs.JobPlaceBatchResponse{Results: make([]structs.JobPlaceResult, len(req.Places))}
	for i := range req.Places {
		j, err := s.placeJobLocked(index, &req.Places[i])
		if err != nil {
			err = fmt.Errorf("places[%d]: %w", i, err)
		}
		resp.Results[i] = structs.JobPlaceResult{Job: j, Err: err}
	}
	return resp, nil
}

// placeJobLocked is placeJob; callers hold the lock.
func (s *Store) placeJobLocked(index uint64, req *structs.JobPlaceRequest) (*structs.Job, error) {
	old, ok := s.t.jobs[req.JobID]
	if !ok {
		return nil, fmt.Errorf("place job %q: %w", req.JobID, structs.ErrNotFound)
	}
	if old.State != structs.JobPending {
		return nil, fmt.Errorf("place job %q: %w: job is %s", req.JobID, structs.ErrConflict, old.State)
	}
	if want := len(old.Attempts) + 1; req.Attempt != want {
		return nil, fmt.Errorf("place job %q: %w: attempt %d, want %d", req.JobID, structs.ErrConflict, req.Attempt, want)
	}
	n := len(req.Placements)
	if n == 0 {
		return nil, fmt.Errorf("place job %q: placements: %w: empty", req.JobID, structs.ErrInvalid)
	}
	nodes := make([]string, n)
	need := make(map[string]structs.Resources)
	for _, p := range req.Placements {
		if p.Rank < 0 || p.Rank >= n || nodes[p.Rank] != "" {
			return nil, fmt.Errorf("place job %q: placements: %w: rank %d missing, repeated or out of range", req.JobID, structs.ErrInvalid, p.Rank)
		}
		if p.WorkerID == "" || p.Resources.Cores < 0 || p.Resources.GPUs < 0 {
			return nil, fmt.Errorf("place job %q: placements: %w: rank %d has no worker or negative resources", req.JobID, structs.ErrInvalid, p.Rank)
		}
		nodes[p.Rank] = p.WorkerID
		need[p.WorkerID] = need[p.WorkerID].Add(p.Resources)
	}
	for id, r := range need {
		w, ok := s.t.workers[id]
		switch {
		case !ok:
			return nil, fmt.Errorf("place job %q: worker %q: %w", req.JobID, id, structs.ErrNotFound)
		case !w.Schedulable():
			return nil, fmt.Errorf("place job %q: worker %q: %w: worker is %s", req.JobID, id, structs.ErrConflict, w.Status)
		case slices.Contains(old.ExcludedNodes, id):
			return nil, fmt.Errorf("place job %q: worker %q: %w: node is excluded", req.JobID, id, structs.ErrConflict)
		case !w.Free.Fits(r):
			return nil, fmt.Errorf("place job %q: worker %q: %w: needs %+v, has %+v free", req.JobID, id, structs.ErrConflict, r, w.Free)
		}
	}

	j := old.Copy()
	att := structs.Attempt{
		Number:     req.Attempt,
		Nodes:      nodes,
		ResumeFrom: req.ResumeFrom,
		State:      structs.AttemptRunning,
		StartTime:  req.Time,
		Secret:     req.Secret,
	}
	if n > 1 && req.Secret != "" { // entries before data-parallel training had neither
		att.Ranks = make([]structs.RankState, n)
		for r := range att.Ranks {
			att.Ranks[r].Ring = structs.RingWaiting
		}
	}
	j.Attempts = append(j.Attempts, att)
	j.State = structs.JobRunning
	as := make([]*structs.Assignment, n)
	for _, p := range req.Placements {
		as[p.Rank] = &structs.Assignment{
			JobID: j.ID, Attempt: req.Attempt, Rank: p.Rank, WorkerID: p.WorkerID,
			Resources: p.Resources, CreateIndex: index,
		}
	}
	s.t.assignments[j.ID] = as
	for id, r := range need {
		w := *s.t.workers[id]
		w.Free = w.Free.Sub(r)
		w.ModifyIndex = index
		s.t.workers[id] = &w
	}
	s.changed(index, TableWorkers, TableAssignments)
	s.touchJob(index, j, req.Time)
	return j, nil
}

func (s *Store) updateAttempt(index uint64, req *structs.AttemptUpdateRequest) (*structs.Job, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.t.jobs[req.JobID]
	if !ok {
		return nil, fmt.Errorf("update attempt of job %q: %w", req.JobID, structs.ErrNotFound)
	}
	cur := old.CurrentAttempt()
	if cur == nil || cur.Number != req.Attempt || cur.State != structs.AttemptRunning {
		return nil, fmt.Errorf("update attempt %d of job %q: %w: not the running attempt", req.Attempt, req.JobID, structs.ErrConflict)
	}
	switch req.State {
	case structs.AttemptSucceeded, structs.AttemptFailed, structs.AttemptPreempted:
	default:
		return nil, fmt.Errorf("update attempt of job %q: state: %w: %q is not an outcome", req.JobID, structs.ErrInvalid, req.State)
	}

	j := old.Copy()
	a := j.CurrentAttempt()
	a.State = req.State
	a.Error = req.Error
	a.FailedNode = req.FailedNode
	a.EndTime = req.Time
	s.releaseAssignments(index, j.ID)
	switch {
	case req.State == structs.AttemptSucceeded:
		j.State = structs.JobSucceeded
	case req.State == structs.AttemptPreempted:
		j.State = structs.JobPending
	case req.Retry:
		j.State = structs.JobPending
		j.Restarts++
		if req.FailedNode != "" && !slices.Contains(j.ExcludedNodes, req.FailedNode) {
			j.ExcludedNodes = append(j.ExcludedNodes, req.FailedNode)
			slices.Sort(j.ExcludedNodes) // as scheduler.Retry keeps them
		}
	default:
		j.State = structs.JobFailed
		j.Error = req.Error
	}
	s.touchJob(index, j, req.Time)
	return j, nil
}

func (s *Store) reportMetrics(index uint64, req *structs.MetricsReportRequest) (*structs.Job, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.t.jobs[req.JobID]
	if !ok {
		return nil, fmt.Errorf("report metrics of job %q: %w", req.JobID, structs.ErrNotFound)
	}
	if len(req.Metrics) == 0 {
		return old, nil
	}
	for i, m := range req.Metrics {
		if m.JobID != req.JobID {
			return nil, fmt.Errorf("report metrics of job %q: metrics[%d].job_id: %w: %q", req.JobID, i, structs.ErrInvalid, m.JobID)
		}
	}
	s.t.metrics[req.JobID] = append(s.t.metrics[req.JobID], req.Metrics...)
	s.changed(index, TableMetrics)
	last := req.Metrics[len(req.Metrics)-1]
	j := old.Copy()
	j.Progress = structs.Progress{Step: last.Step, Epoch: last.Epoch, Metrics: last.Values}
	s.touchJob(index, j, last.Time)
	return j, nil
}

func (s *Store) registerCheckpoint(index uint64, req *structs.CheckpointRegisterRequest) (*structs.Checkpoint, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := req.Checkpoint
	if c.Digest == "" {
		return nil, fmt.Errorf("register checkpoint: digest: %w: required", structs.ErrInvalid)
	}
	if have, ok := s.t.checkpoints[c.Digest]; ok {
		return have, nil
	}
	old, ok := s.t.jobs[c.JobID]
	if !ok {
		return nil, fmt.Errorf("register checkpoint %s: job %q: %w", c.Digest, c.JobID, structs.ErrNotFound)
	}
	c.CreateIndex = index
	s.t.checkpoints[c.Digest] = &c
	s.t.jobCheckpoints[c.JobID] = append(s.t.jobCheckpoints[c.JobID], c.Digest)
	if latest, ok := s.t.checkpoints[old.LatestCheckpoint]; !ok || c.Step >= latest.Step {
		j := old.Copy()
		j.LatestCheckpoint = c.Digest
		s.touchJob(index, j, c.Time)
	}
	s.changed(index, TableCheckpoints, TableJobs)
	return &c, nil
}

func (s *Store) upsertWorker(index uint64, req *structs.WorkerUpsertRequest) (*structs.Worker, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if req.ID == "" {
		return nil, fmt.Errorf("upsert worker: id: %w: required", structs.ErrInvalid)
	}
	status := req.Status
	switch status {
	case "":
		status = structs.WorkerAlive
	case structs.WorkerAlive, structs.WorkerSuspect:
	default:
		return nil, fmt.Errorf("upsert worker %q: status: %w: %q (want alive or suspect)", req.ID, structs.ErrInvalid, status)
	}
	w := &structs.Worker{ID: req.ID, CreateIndex: index}
	if old, ok := s.t.workers[req.ID]; ok {
		*w = *old
		if old.Status == structs.WorkerDraining {
			status = structs.WorkerDraining
		}
	}
	w.Addr = req.Addr
	w.Meta = req.Meta
	w.Status = status
	w.StatusTime = req.Time
	w.Free = req.Meta.Capacity().Sub(s.heldBy(req.ID))
	w.ModifyIndex = index
	s.t.workers[w.ID] = w
	s.changed(index, TableWorkers)
	return w, nil
}

func (s *Store) workerDown(index uint64, req *structs.WorkerDownRequest) (*structs.Worker, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.t.workers[req.ID]
	if !ok {
		return nil, fmt.Errorf("worker %q down: %w", req.ID, structs.ErrNotFound)
	}
	if req.Status != structs.WorkerDead && req.Status != structs.WorkerLeft {
		return nil, fmt.Errorf("worker %q down: status: %w: %q (want dead or left)", req.ID, structs.ErrInvalid, req.Status)
	}
	w := *old
	w.Status = req.Status
	w.StatusTime = req.Time
	w.ModifyIndex = index
	s.t.workers[w.ID] = &w
	s.changed(index, TableWorkers)
	return &w, nil
}

func (s *Store) drainWorker(index uint64, req *structs.WorkerDrainRequest) (*structs.Worker, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.t.workers[req.ID]
	if !ok {
		return nil, fmt.Errorf("drain worker %q: %w", req.ID, structs.ErrNotFound)
	}
	switch old.Status {
	case structs.WorkerDraining:
		return old, nil
	case structs.WorkerDead, structs.WorkerLeft:
		return nil, fmt.Errorf("drain worker %q: %w: worker is %s", req.ID, structs.ErrConflict, old.Status)
	}
	w := *old
	w.Status = structs.WorkerDraining
	w.StatusTime = req.Time
	w.ModifyIndex = index
	s.t.workers[w.ID] = &w
	s.changed(index, TableWorkers)
	return &w, nil
}

func (s *Store) registerDataset(index uint64, req *structs.DatasetRegisterRequest) (*structs.DatasetVersion, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case req.Name == "":
		return nil, fmt.Errorf("register dataset: name: %w: required", structs.ErrInvalid)
	case req.ID == "":
		return nil, fmt.Errorf("register dataset %q: id: %w: required", req.Name, structs.ErrInvalid)
	}
	versions := s.t.datasets[req.Name]
	for _, v := range versions {
		if v.ID == req.ID {
			return v, nil
		}
	}
	var manifest bytes.Buffer
	if err := json.Compact(&manifest, req.Manifest); err != nil || manifest.Len() == 0 || manifest.Bytes()[0] != '{' {
		return nil, fmt.Errorf("register dataset %q: manifest: %w: want a JSON object", req.Name, structs.ErrInvalid)
	}
	v := &structs.DatasetVersion{
		Name:        req.Name,
		ID:          req.ID,
		Seq:         nextSeq(versions),
		Manifest:    manifest.Bytes(),
		Blob:        req.Blob,
		CreateTime:  req.Time,
		CreateIndex: index,
	}
	s.t.datasets[req.Name] = append(versions, v)
	s.changed(index, TableDatasets)
	return v, nil
}

func (s *Store) registerServer(index uint64, req *structs.ServerRegisterRequest) (*structs.Server, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if req.ID == "" || req.RaftAddr == "" || req.HTTPAddr == "" {
		return nil, fmt.Errorf("register server: id, raft_addr, http_addr: %w: all required", structs.ErrInvalid)
	}
	srv := &structs.Server{ID: req.ID, RaftAddr: req.RaftAddr, HTTPAddr: req.HTTPAddr, ModifyIndex: index}
	s.t.servers[srv.ID] = srv
	s.changed(index, TableServers)
	return srv, nil
}

// touchJob stores j as the new version of its job. Callers hold the lock.
func (s *Store) touchJob(index uint64, j *structs.Job, now time.Time) {
	j.ModifyIndex = index
	j.ModifyTime = now
	s.t.jobs[j.ID] = j
	s.changed(index, TableJobs)
}

// releaseAssignments drops a job's assignments and returns their resources to
// the workers. Callers hold the lock.
func (s *Store) releaseAssignments(index uint64, jobID string) {
	for _, a := range s.t.assignments[jobID] {
		if old, ok := s.t.workers[a.WorkerID]; ok {
			w := *old
			w.Free = w.Free.Add(a.Resources)
			w.ModifyIndex = index
			s.t.workers[w.ID] = &w
		}
	}
	delete(s.t.assignments, jobID)
	s.changed(index, TableWorkers, TableAssignments)
}

// heldBy sums the resources a worker's assignments hold. Callers hold the lock.
func (s *Store) heldBy(workerID string) structs.Resources {
	var r structs.Resources
	for _, as := range s.t.assignments {
		for _, a := range as {
			if a.WorkerID == workerID {
				r = r.Add(a.Resources)
			}
		}
	}
	return r
}

// updateRank records a rank's address or ring state in its running
// attempt (docs/architecture.md, "Data-parallel training").
func (s *Store) updateRank(index uint64, req *structs.RankUpdateRequest) (*structs.Job, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.t.jobs[req.JobID]
	if !ok {
		return nil, fmt.Errorf("update rank of job %q: %w", req.JobID, structs.ErrNotFound)
	}
	cur := old.CurrentAttempt()
	switch {
	case cur == nil || cur.Number != req.Attempt || cur.State != structs.AttemptRunning:
		return nil, fmt.Errorf("update rank of attempt %d of job %q: %w: not the running attempt", req.Attempt, req.JobID, structs.ErrConflict)
	case req.Rank < 0 || req.Rank >= len(cur.Ranks):
		return nil, fmt.Errorf("update rank %d of job %q: %w: the attempt has %d data-parallel ranks", req.Rank, req.JobID, structs.ErrInvalid, len(cur.Ranks))
	case cur.Nodes[req.Rank] != req.WorkerID:
		return nil, fmt.Errorf("update rank %d of job %q: %w: it runs on %s, not %s", req.Rank, req.JobID, structs.ErrInvalid, cur.Nodes[req.Rank], req.WorkerID)
	}
	j := old.Copy()
	rs := &j.CurrentAttempt().Ranks[req.Rank]
	if req.Addr != "" {
		if rs.Addr != req.Addr {
			rs.Registered = req.Time
		}
		rs.Addr = req.Addr
	}
	if req.Ring != "" {
		if req.Ring == structs.RingConnected && rs.Connected.IsZero() {
			rs.Connected = req.Time
		}
		rs.Ring = req.Ring
		rs.Step, rs.ImagesPerSec = max(rs.Step, req.Step), req.ImagesPerSec
	}
	s.touchJob(index, j, req.Time)
	return j, nil
}
