package coordinator

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/trainctl/trainctl/api"
	"github.com/trainctl/trainctl/coordinator/structs"
)

// monitorLeadership runs leaderLoop while this server is the Raft leader and
// stops it when leadership is lost. Only code started from leaderLoop is
// leader-only work.
func (s *Server) monitorLeadership(ctx context.Context) {
	var (
		stop func()
		done chan struct{}
	)
	stopLeader := func() {
		if stop != nil {
			stop()
			<-done
			stop, done = nil, nil
		}
	}
	defer stopLeader()
	for {
		select {
		case <-ctx.Done():
			return
		case isLeader := <-s.leaderCh:
			if isLeader && stop == nil {
				lctx, cancel := context.WithCancel(ctx)
				stop, done = cancel, make(chan struct{})
				go func() {
					defer close(done)
					s.leaderLoop(lctx)
				}()
				s.log.Info("gained leadership")
			} else if !isLeader {
				stopLeader()
				s.log.Info("lost leadership")
			}
		}
	}
}

// leaderLoop waits for a barrier (everything committed by earlier leaders is
// applied here) and registers this server, then lets writes in
// (leaderReady, see leaderOnly) and enables the leader-only work: the scheduler
// (schedule.go), the sweep controller (sweep.go), the worker leases (lease.go) and, with gossip, the
// membership reconciler (members.go); they stop when ctx ends
// (leadership lost or shutdown) and leaderLoop returns once they have.
func (s *Server) leaderLoop(ctx context.Context) {
	if s.cfg.leaderHook != nil {
		s.cfg.leaderHook()
	}
	for {
		err := s.raft.Barrier(s.cfg.ApplyTimeout).Error()
		if err == nil {
			break
		}
		s.log.Warn("leader barrier failed", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(s.cfg.RetryInterval):
		}
	}
	for {
		err := s.establishLeadership(ctx)
		if err == nil {
			break
		}
		s.log.Warn("establish leadership", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(s.cfg.RetryInterval):
		}
	}
	// Writes may come in now: they see every earlier leader's.
	s.leaderReady.Store(true)
	defer s.leaderReady.Store(false)
	// The leader-only services; each ends when ctx does.
	lease := s.newLeaderLease()
	s.lease.Store(lease)
	defer s.lease.Store(nil)
	var wg sync.WaitGroup
	wg.Go(func() { s.runScheduler(ctx) })
	wg.Go(func() { s.runSweeps(ctx) })
	wg.Go(func() { s.runLeases(ctx, lease) })
	wg.Go(func() { s.runGC(ctx) })
	if s.member != nil {
		wg.Go(func() { s.runMembership(ctx, lease) })
	}
	wg.Wait()
}

// establishLeadership is the leader's first work after the barrier: make
// sure followers can find its HTTP address to forward writes to it.
func (s *Server) establishLeadership(ctx context.Context) error {
	return s.registerServer(ctx, s.joinRequest())
}

// registerServer records a server in the registry unless its entry is
// already current. The caller is the leader.
func (s *Server) registerServer(ctx context.Context, req api.JoinRequest) error {
	if srv, err := s.State().Server(req.ID); err == nil && srv.RaftAddr == req.RaftAddr && srv.HTTPAddr == req.HTTPAddr {
		return nil
	}
	_, err := s.raftApply(ctx, structs.ServerRegisterRequestType, &structs.ServerRegisterRequest{
		ID: req.ID, RaftAddr: req.RaftAddr, HTTPAddr: req.HTTPAddr,
	})
	return err
}

// addVoter makes a server a voter (unless it already is one at that address)
// and records it in the registry, once the server has shown it is the one
// the join names (verifyJoiner); a join that changes nothing needs no
// check. The caller is the leader.
func (s *Server) addVoter(ctx context.Context, req api.JoinRequest) error {
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return raftError(err)
	}
	present := false
	for _, rs := range f.Configuration().Servers {
		if string(rs.ID) == req.ID && string(rs.Address) == req.RaftAddr && rs.Suffrage == raft.Voter {
			present = true
		}
	}
	if srv, err := s.State().Server(req.ID); present && err == nil && srv.RaftAddr == req.RaftAddr && srv.HTTPAddr == req.HTTPAddr {
		return nil // nothing to change
	}
	// The join changes the configuration or the registry: only a server
	// that answers as the join says may do that.
	if err := s.verifyJoiner(ctx, req); err != nil {
		return err
	}
	if !present {
		timeout := s.applyTimeout(ctx)
		if err := s.raft.AddVoter(raft.ServerID(req.ID), raft.ServerAddress(req.RaftAddr), 0, timeout).Error(); err != nil {
			return fmt.Errorf("add voter %s: %w", req.ID, raftError(err))
		}
		s.log.Info("added voter", "id", req.ID, "raft", req.RaftAddr)
	}
	return s.registerServer(ctx, req)
}

// keepRegistered keeps this server's registry entry current on followers
// (a restarted server may come back with a new HTTP address): when the entry
// is missing or stale and a leader is known, it asks the leader to join it
// again, which is a no-op for Raft and updates the registry. It goes
// through the Cluster endpoint, which forwards to the leader's HTTP
// address: no server calls its own HTTP API.
func (s *Server) keepRegistered(ctx context.Context) {
	t := time.NewTicker(s.cfg.RetryInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		req := s.joinRequest()
		srv, err := s.State().Server(req.ID)
		if err == nil && srv.RaftAddr == req.RaftAddr && srv.HTTPAddr == req.HTTPAddr {
			continue
		}
		if s.IsLeader() {
			continue // establishLeadership registers the leader
		}
		rctx, cancel := context.WithTimeout(ctx, s.cfg.ApplyTimeout)
		if err := s.joinVia(rctx, req); err != nil && ctx.Err() == nil {
			s.log.Debug("refresh registry entry", "err", err)
		}
		cancel()
	}
}

// joinVia sends a join to the Cluster endpoint, passing it on to the
// leader over HTTP when this server is not the leader.
func (s *Server) joinVia(ctx context.Context, req api.JoinRequest) error {
	_, err := s.endpoints.Cluster.Join(ctx, Identity{Name: s.cfg.NodeID}, &req)
	var nl *notLeaderError
	if errors.As(err, &nl) && nl.LeaderID != s.cfg.NodeID {
		return api.NewWithConfig(api.Config{Addrs: []string{nl.Addr}}).Join(ctx, req)
	}
	return err
}

// raftApply commits one command and returns the FSM's response. Errors from
// Raft that mean "try the leader" wrap structs.ErrNotLeader; an FSM error
// response is returned as is.
func (s *Server) raftApply(ctx context.Context, t structs.MessageType, req any) (any, error) {
	buf, err := structs.Encode(t, req)
	if err != nil {
		return nil, err
	}
	f := s.raft.Apply(buf, s.applyTimeout(ctx))
	if err := f.Error(); err != nil {
		return nil, fmt.Errorf("apply %s: %w", t, raftError(err))
	}
	if err, ok := f.Response().(error); ok {
		return nil, err
	}
	return f.Response(), nil
}

// applyTimeout is cfg.ApplyTimeout, shortened to ctx's deadline.
func (s *Server) applyTimeout(ctx context.Context) time.Duration {
	d := s.cfg.ApplyTimeout
	if dl, ok := ctx.Deadline(); ok {
		d = min(d, time.Until(dl))
	}
	return max(d, time.Millisecond)
}

// raftError maps Raft's errors for "not the leader (any more)" to
// structs.ErrNotLeader, so the API answers 503 and the client retries.
func raftError(err error) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader),
		errors.Is(err, raft.ErrLeadershipLost),
		errors.Is(err, raft.ErrLeadershipTransferInProgress),
		errors.Is(err, raft.ErrRaftShutdown),
		errors.Is(err, raft.ErrEnqueueTimeout),
		errors.Is(err, raft.ErrAbortedByRestore):
		return fmt.Errorf("%w: %w", structs.ErrNotLeader, err)
	}
	return err
}
