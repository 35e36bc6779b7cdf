package worker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/trainctl/trainctl/membership"
)

// gossipConfig is the agent's membership configuration: cfg.Gossip with
// the worker's id as node name and its capacity as metadata. The join
// addresses are left out: the agent joins after it knows its own gossip
// address (startGossip).
func (a *Agent) gossipConfig() membership.Config {
	mc := *a.cfg.Gossip
	mc.NodeName = a.cfg.ID
	mc.Meta = membership.NodeMeta{
		Role: membership.RoleWorker, Cores: a.cfg.Cores, GPUs: a.cfg.GPUs,
		Spot: a.cfg.Spot, Zone: a.cfg.Zone, Version: a.cfg.Version, APIAddr: a.cfg.Addr,
	}
	mc.Join = nil
	if mc.Logger == nil {
		mc.Logger = a.log
	}
	return mc
}

// startGossip starts the worker's gossip member (bound, not yet joined)
// when cfg.Gossip is set. Without cfg.Addr, the worker is listed at its
// gossip address, which its registrations then carry too (the leader
// upserts a gossip member at that address; registering another would make
// the two disagree).
func (a *Agent) startGossip(ctx context.Context) error {
	if a.cfg.Gossip == nil {
		return nil
	}
	m, err := membership.Start(ctx, a.gossipConfig())
	if err != nil {
		return fmt.Errorf("worker %s: gossip: %w", a.cfg.ID, err)
	}
	a.member.Store(m)
	if a.addr == "" {
		a.addr = m.Addr()
	}
	// Events must be drained for as long as the member runs; the agent
	// acts on none (the coordinators' leader does).
	go func() {
		for range m.Events() {
		}
	}()
	return nil
}

// joinGossip joins the coordinators' gossip, retrying until one answers or
// ctx ends.
func (a *Agent) joinGossip(ctx context.Context) error {
	m := a.member.Load()
	if m == nil {
		return nil
	}
	if err := m.Join(ctx, a.cfg.Gossip.Join); err != nil {
		return fmt.Errorf("worker %s: gossip: %w", a.cfg.ID, err)
	}
	a.log.Info("joined gossip", "addr", m.Addr(), "join", a.cfg.Gossip.Join)
	return nil
}

// keepJoined rejoins the configured gossip addresses whenever the member
// sees no coordinator (they all restarted, or a partition outlasted the
// failure detection), checking every HeartbeatInterval until ctx ends:
// memberlist does not reconnect to members it declared dead.
func (a *Agent) keepJoined(ctx context.Context) {
	m := a.member.Load()
	if m == nil {
		return
	}
	t := time.NewTicker(a.cfg.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if slices.ContainsFunc(m.Members(), func(n membership.Node) bool {
			return n.MetaErr == nil && n.Meta.Role == membership.RoleCoordinator
		}) {
			continue
		}
		jctx, cancel := context.WithTimeout(ctx, a.cfg.HeartbeatInterval)
		err := m.Join(jctx, a.cfg.Gossip.Join)
		cancel()
		if err == nil {
			a.log.Info("no coordinator in gossip; rejoined", "join", a.cfg.Gossip.Join)
		}
	}
}

// withdrawGossip gossips the worker's metadata with no capacity, like the
// withdrawing registration, so that a leader reconciling from the member
// list does not advertise it again.
func (a *Agent) withdrawGossip(ctx context.Context) {
	m := a.member.Load()
	if m == nil {
		return
	}
	meta := m.Meta()
	meta.Cores, meta.GPUs = 0, 0
	if err := m.UpdateMeta(ctx, meta); err != nil {
		a.log.Warn("withdrawing the worker's capacity from gossip failed", "err", err)
	}
}

// leaveGossip announces the worker's leave, bounded by ctx (what is left
// of the grace period), and stops gossip. A leave that could not be
// announced is seen by the others as a failure: the worker's lease then
// decides.
func (a *Agent) leaveGossip(ctx context.Context) {
	m := a.member.Load()
	if m == nil {
		return
	}
	if err := m.Leave(ctx); err != nil && !errors.Is(err, membership.ErrShutdown) {
		a.log.Warn("leaving gossip failed; the coordinators will see the worker fail and wait for its lease", "err", err)
	} else if err == nil {
		a.log.Info("left gossip")
	}
	if err := m.Shutdown(); err != nil {
		a.log.Warn("stopping gossip", "err", err)
	}
}

// stopGossip stops gossip without a leave (Run failed to start).
func (a *Agent) stopGossip() {
	if m := a.member.Load(); m != nil {
		_ = m.Shutdown()
	}
}

// GossipAddr returns the worker's gossip address (host:port) once Run has
// started gossip, else "" (also without AgentConfig.Gossip).
func (a *Agent) GossipAddr() string {
	if m := a.member.Load(); m != nil {
		return m.Addr()
	}
	return ""
}
