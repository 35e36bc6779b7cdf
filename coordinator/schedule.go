package coordinator

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/trainctl/trainctl/coordinator/scheduler"
	"github.com/trainctl/trainctl/coordinator/structs"
)

// kickScheduler asks the leader's scheduler for a pass soon. It never
// blocks; kicks while a pass is pending are merged, and on a server that is
// not the leader the kick waits for a leadership that may never come, which
// costs nothing.
func (s *Server) kickScheduler() {
	select {
	case s.schedKick <- struct{}{}:
	default:
	}
}

// runScheduler is the leader's scheduling loop: a pass on each kick (a
// submission, a worker that registered, an attempt that ended) and every
// SchedulerInterval, until ctx ends with the leadership.
func (s *Server) runScheduler(ctx context.Context) {
	t := time.NewTicker(s.cfg.SchedulerInterval)
	defer t.Stop()
	for {
		if err := s.schedulePass(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("scheduling pass", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-s.schedKick:
		case <-t.C:
		}
	}
}

// schedulePass runs scheduler.Schedule over the pending jobs and the
// workers of the state store and commits all its placements as one
// JobPlaceBatch command (one Raft entry, one fsync), each resuming from the
// job's latest checkpoint. The FSM applies them in order and validates each
// as a JobPlace; a placement the state no longer admits (a conflict) is
// skipped without failing the others, and the next pass sees the new state.
// Any other placement error is returned after the rest of the batch is
// logged, as a JobPlace error used to end the pass.
func (s *Server) schedulePass(ctx context.Context) error {
	var (
		jobs    []scheduler.Job
		pending = make(map[string]*structs.Job)
	)
	for _, j := range s.State().Jobs() {
		if j.State != structs.JobPending {
			continue
		}
		pending[j.ID] = j
		jobs = append(jobs, scheduler.Job{
			ID:          j.ID,
			Priority:    j.Spec.Priority,
			Index:       j.CreateIndex,
			Ranks:       j.Spec.Resources.Ranks,
			CPUsPerRank: j.Spec.Resources.CPUsPerRank,
			GPUsPerRank: j.Spec.Resources.GPUsPerRank,
			SpotOK:      j.Spec.Resources.Spot,
			Excluded:    j.ExcludedNodes,
		})
	}
	if len(jobs) == 0 {
		return nil
	}
	var nodes []scheduler.Node
	for _, w := range s.State().Workers() {
		nodes = append(nodes, schedulerNode(w))
	}
	res, err := scheduler.Schedule(jobs, nodes)
	if err != nil {
		return fmt.Errorf("schedule: %w", err)
	}
	for _, p := range res.Pending {
		s.log.Debug("job waits", "job", p.JobID, "cause", p.Cause, "reason", p.Reason)
	}
	if len(res.Placements) == 0 {
		return nil
	}
	now := time.Now().UTC()
	batch := &structs.JobPlaceBatchRequest{Places: make([]structs.JobPlaceRequest, 0, len(res.Placements))}
	for _, p := range res.Placements {
		j := pending[p.JobID]
		req := structs.JobPlaceRequest{
			JobID:      j.ID,
			Attempt:    len(j.Attempts) + 1,
			ResumeFrom: j.LatestCheckpoint,
			Time:       now,
		}
		if len(p.Nodes) > 1 {
			secret, err := attemptSecret()
			if err != nil {
				return err
			}
			req.Secret = secret
		}
		per := structs.Resources{Cores: j.Spec.Resources.CPUsPerRank, GPUs: j.Spec.Resources.GPUsPerRank}
		for rank, node := range p.Nodes {
			req.Placements = append(req.Placements, structs.Placement{Rank: rank, WorkerID: node, Resources: per})
		}
		batch.Places = append(batch.Places, req)
	}
	resp, err := s.raftApply(ctx, structs.JobPlaceBatchRequestType, batch)
	if err != nil {
		return fmt.Errorf("place %d jobs: %w", len(batch.Places), err)
	}
	br, ok := resp.(*structs.JobPlaceBatchResponse)
	if !ok || len(br.Results) != len(batch.Places) {
		return fmt.Errorf("place %d jobs: unexpected response %T", len(batch.Places), resp)
	}
	var firstErr error
	for i, r := range br.Results {
		req := &batch.Places[i]
		switch {
		case r.Err == nil:
			s.log.Info("placed job", "job", req.JobID, "attempt", req.Attempt, "nodes", res.Placements[i].Nodes, "resume_from", req.ResumeFrom)
		case errors.Is(r.Err, structs.ErrConflict), errors.Is(r.Err, structs.ErrNotFound):
			s.log.Debug("placement no longer fits", "job", req.JobID, "err", r.Err)
		default:
			s.log.Warn("placement rejected", "job", req.JobID, "err", r.Err)
			if firstErr == nil {
				firstErr = fmt.Errorf("place job %s: %w", req.JobID, r.Err)
			}
		}
	}
	return firstErr
}

// schedulerNode is a worker as the scheduler sees it.
func schedulerNode(w *structs.Worker) scheduler.Node {
	n := scheduler.Node{
		ID:       w.ID,
		CPUs:     max(w.Meta.Cores, 0),
		GPUs:     max(w.Meta.GPUs, 0),
		Spot:     w.Meta.Spot,
		Zone:     w.Meta.Zone,
		Status:   scheduler.StatusAlive,
		Draining: w.Status == structs.WorkerDraining,
	}
	// Free exceeds the total, or goes negative, when a worker re-registers
	// with less capacity than its running ranks hold.
	n.FreeCPUs = min(max(w.Free.Cores, 0), n.CPUs)
	n.FreeGPUs = min(max(w.Free.GPUs, 0), n.GPUs)
	switch w.Status {
	case structs.WorkerSuspect, structs.WorkerDead:
		n.Status = scheduler.StatusFailed
	case structs.WorkerLeft:
		n.Status = scheduler.StatusLeft
	}
	return n
}

// endAttempt commits the end of a job's running attempt. A failed or lost
// attempt goes through scheduler.NextAttempt: requeued excluding node, or
// the job fails once max_restarts are used up; a preempted one is requeued
// without counting; a succeeded one finishes the job. It kicks the
// scheduler, since capacity was freed.
func (s *Server) endAttempt(ctx context.Context, j *structs.Job, attempt int, kind scheduler.EndKind, state structs.AttemptState, node, msg string) (*structs.Job, error) {
	req := &structs.AttemptUpdateRequest{
		JobID:   j.ID,
		Attempt: attempt,
		State:   state,
		Error:   msg,
		Time:    time.Now().UTC(),
	}
	if state == structs.AttemptFailed {
		d := scheduler.NextAttempt(scheduler.Retry{Restarts: j.Restarts, Excluded: j.ExcludedNodes},
			scheduler.AttemptEnd{Kind: kind, Node: node}, j.Spec.MaxRestarts)
		req.Retry = d.Requeue
		req.FailedNode = node
		if msg == "" {
			req.Error = d.Reason
		} else {
			req.Error = msg + " (" + d.Reason + ")"
		}
	}
	resp, err := s.raftApply(ctx, structs.AttemptUpdateRequestType, req)
	if err != nil {
		return nil, err
	}
	s.kickScheduler()
	out := resp.(*structs.Job)
	s.kickSweepsFor(out)
	return out, nil
}

// attemptSecret draws the shared secret of a data-parallel attempt's ranks:
// 32 random bytes, hex. The leader draws it before proposing the
// placement, so every voter applies the same one.
func attemptSecret() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("attempt secret: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}
