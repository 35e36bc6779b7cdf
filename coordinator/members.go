package coordinator

import (
	"context"
	"fmt"
	"time"

	"github.com/trainctl/trainctl/coordinator/structs"
	"github.com/trainctl/trainctl/membership"
)

// startMembership joins the gossip cluster when cfg.Gossip is set, with this
// server's role and addresses as its metadata. Every server drains the
// member's events (pumpMemberEvents); only the leader acts on them.
func (s *Server) startMembership(ctx context.Context) error {
	if s.cfg.Gossip == nil {
		return nil
	}
	mc := *s.cfg.Gossip
	mc.NodeName = s.cfg.NodeID
	mc.Meta = membership.NodeMeta{
		Role:     membership.RoleCoordinator,
		APIAddr:  s.httpAddr,
		RaftAddr: string(s.transport.LocalAddr()),
	}
	if mc.Logger == nil {
		mc.Logger = s.log
	}
	m, err := membership.Start(ctx, mc)
	if err != nil {
		return fmt.Errorf("gossip: %w", err)
	}
	s.member = m
	s.goFunc(func() { s.pumpMemberEvents(s.ctx) })
	return nil
}

// GossipAddr returns the server's gossip address (host:port) for workers
// and other coordinators to join, or "" when it runs without gossip.
func (s *Server) GossipAddr() string {
	if s.member == nil {
		return ""
	}
	return s.member.Addr()
}

// pumpMemberEvents reads the member's events for as long as the server
// runs (they must be drained) and hands each to the leader's reconciler
// when this server leads; elsewhere they are dropped, and a new leader
// reconciles from the member list instead.
func (s *Server) pumpMemberEvents(ctx context.Context) {
	events := s.member.Events()
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-events:
			if !ok {
				return
			}
			if h := s.memberHandler.Load(); h != nil {
				(*h)(e)
			}
		}
	}
}

// runMembership is the leader's membership reconciler: it brings every
// worker gossip sees alive into the state, then turns worker events into
// Raft commands until ctx ends with the leadership. A join or metadata
// update upserts the worker and renews its lease; a graceful leave marks it
// left and hands its attempts back at once; a failure only stops the lease
// renewals, so the worker is marked dead when its lease runs out
// (runLeases), which rides out a short partition.
func (s *Server) runMembership(ctx context.Context, l *membership.Lease) {
	h := func(e membership.Event) {
		if err := s.handleMemberEvent(ctx, l, e); err != nil && ctx.Err() == nil {
			s.log.Warn("membership event", "event", e.Type.String(), "member", e.Node.Name, "err", err)
		}
	}
	s.memberHandler.Store(&h)
	defer s.memberHandler.Store(nil)
	for _, n := range s.member.Members() {
		if err := s.handleMemberEvent(ctx, l, membership.Event{Type: membership.EventJoin, Node: n}); err != nil && ctx.Err() == nil {
			s.log.Warn("reconcile member", "member", n.Name, "err", err)
		}
	}
	<-ctx.Done()
}

// handleMemberEvent applies one membership event of a worker; events of
// coordinators and of members with undecodable metadata are ignored.
func (s *Server) handleMemberEvent(ctx context.Context, l *membership.Lease, e membership.Event) error {
	n := e.Node
	if n.MetaErr != nil || n.Meta.Role != membership.RoleWorker {
		return nil
	}
	switch e.Type {
	case membership.EventJoin, membership.EventUpdate:
		if n.Meta.Leaving || n.State != membership.StateAlive {
			return nil // its leave follows
		}
		addr := n.Meta.APIAddr
		if addr == "" {
			addr = n.Addr
		}
		meta := structs.WorkerMeta{Cores: n.Meta.Cores, GPUs: n.Meta.GPUs, Spot: n.Meta.Spot, Zone: n.Meta.Zone, Version: n.Meta.Version}
		_, err := s.upsertWorker(ctx, n.Name, addr, meta)
		return err
	case membership.EventLeave:
		w, err := s.State().Worker(n.Name)
		if err != nil || !workerUp(w) {
			l.Forget(n.Name)
			return nil
		}
		_, err = s.raftApply(ctx, structs.WorkerDownRequestType, &structs.WorkerDownRequest{
			ID: n.Name, Status: structs.WorkerLeft, Reason: "left the gossip cluster", Time: time.Now().UTC(),
		})
		if err != nil {
			return fmt.Errorf("worker %s left: %w", n.Name, err)
		}
		l.Forget(n.Name)
		s.log.Info("worker left", "worker", n.Name)
		return s.endLostAttempts(ctx)
	case membership.EventFailed:
		s.log.Warn("worker failed gossip probes; its lease decides", "worker", n.Name, "lease", l.TTL())
	}
	return nil
}
