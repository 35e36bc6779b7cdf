package coordinator

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/trainctl/trainctl/coordinator/scheduler"
	"github.com/trainctl/trainctl/coordinator/structs"
	"github.com/trainctl/trainctl/membership"
)

// newLeaderLease returns the lease tracker of a new leader, with a fresh
// lease for every worker that is up in the state, so each gets a full lease
// from the moment leadership changed.
func (s *Server) newLeaderLease() *membership.Lease {
	l := membership.NewLease(s.cfg.WorkerLease)
	now := time.Now()
	for _, w := range s.State().Workers() {
		if workerUp(w) {
			l.Renew(w.ID, now)
		}
	}
	return l
}

// runLeases is the leader's lease keeper. Leases are renewed on each
// heartbeat (upsertWorker) and, with gossip, on every tick for the workers
// gossip sees alive. On every tick it marks the workers whose lease ran out
// dead and ends the attempts that had ranks on dead or departed workers.
// It stops when ctx ends with the leadership.
func (s *Server) runLeases(ctx context.Context, l *membership.Lease) {
	t := time.NewTicker(max(s.cfg.WorkerLease/4, time.Millisecond))
	defer t.Stop()
	for {
		if s.member != nil {
			l.RenewAlive(s.member.Members(), time.Now())
		}
		if err := s.expireLeases(ctx, l); err != nil && ctx.Err() == nil {
			s.log.Warn("worker leases", "err", err)
		}
		if err := s.endLostAttempts(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("lost attempts", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// workerUp reports whether a worker may hold assignments.
func workerUp(w *structs.Worker) bool {
	switch w.Status {
	case structs.WorkerDead, structs.WorkerLeft:
		return false
	}
	return true
}

// renewLease records a heartbeat of a worker; a no-op unless this server
// leads.
func (s *Server) renewLease(id string) {
	if l := s.lease.Load(); l != nil {
		l.Renew(id, time.Now())
	}
}

// expireLeases commits a WorkerDown for each worker whose lease ran out.
func (s *Server) expireLeases(ctx context.Context, l *membership.Lease) error {
	var errs []error
	for _, id := range l.Expired(time.Now()) {
		w, err := s.State().Worker(id)
		if err != nil || !workerUp(w) {
			l.Forget(id)
			continue
		}
		_, err = s.raftApply(ctx, structs.WorkerDownRequestType, &structs.WorkerDownRequest{
			ID:     id,
			Status: structs.WorkerDead,
			Reason: fmt.Sprintf("no heartbeat for %s", l.TTL()),
			Time:   time.Now().UTC(),
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("worker %s down: %w", id, err))
			continue
		}
		l.Forget(id)
		s.log.Warn("worker lease expired", "worker", id, "lease", l.TTL())
	}
	return errors.Join(errs...)
}

// endLostAttempts ends every running attempt with a rank on a worker that
// is dead or left. On a dead worker the attempt is lost, which counts as a
// failure on that worker (scheduler.NextAttempt); a worker that left
// gracefully handed its work back, like a preemption, which counts nothing.
// Running it on every tick makes the reaction survive a leader change
// between the WorkerDown and the updates.
func (s *Server) endLostAttempts(ctx context.Context) error {
	lost := make(map[string]*structs.Worker) // job id -> first worker down
	for _, a := range s.State().Assignments("") {
		if _, seen := lost[a.JobID]; seen {
			continue
		}
		if w, err := s.State().Worker(a.WorkerID); err == nil && !workerUp(w) {
			lost[a.JobID] = w
		}
	}
	var errs []error
	for jobID, w := range lost {
		j, err := s.State().Job(jobID)
		if err != nil {
			continue
		}
		a := j.CurrentAttempt()
		if a == nil || a.State != structs.AttemptRunning {
			continue
		}
		kind, state, msg := scheduler.Lost, structs.AttemptFailed, fmt.Sprintf("worker %s lost", w.ID)
		if w.Status == structs.WorkerLeft {
			kind, state, msg = scheduler.Preempted, structs.AttemptPreempted, fmt.Sprintf("worker %s left", w.ID)
		}
		_, err = s.endAttempt(ctx, j, a.Number, kind, state, w.ID, msg)
		if err != nil && !errors.Is(err, structs.ErrConflict) {
			errs = append(errs, fmt.Errorf("job %s: %w", jobID, err))
		}
	}
	return errors.Join(errs...)
}
