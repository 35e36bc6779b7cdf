package worker

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/trainctl/trainctl/api"
	"github.com/trainctl/trainctl/trainer"
	"github.com/trainctl/trainctl/trainer/collective"
)

// DefaultRendezvousTimeout bounds how long a rank waits for its peers to
// register their addresses: they may still be fetching the dataset.
const DefaultRendezvousTimeout = 5 * time.Minute

// Ring is one rank's connection to the other ranks of its attempt: the
// trainer's collective, closed when the run ends.
type Ring interface {
	trainer.Collective
	Close() error
}

// RingConnector connects one rank of a data-parallel attempt to its peers
// (docs/architecture.md, "Data-parallel training"). The Runner calls it
// once the rank has its dataset, just before training.
type RingConnector interface {
	Connect(ctx context.Context, a Assignment) (Ring, error)
}

// agentRing is the agent's RingConnector: each rank listens on a port,
// registers the address with the coordinators, waits for the attempt's
// rendezvous (every rank's address and the attempt's secret) and connects
// into the ring with collective.New.
type agentRing struct{ a *Agent }

// Connect implements RingConnector.
func (r *agentRing) Connect(ctx context.Context, asg Assignment) (Ring, error) {
	a := r.a
	log := a.log.With("job", asg.JobID, "attempt", asg.Attempt, "rank", asg.Rank)
	host, err := a.ringHost()
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return nil, fmt.Errorf("ring: listen on %s: %w", host, err)
	}
	addr := ln.Addr().String()
	log.Info("ring: listening for peers", "addr", addr, "ranks", asg.Ranks)
	rv, err := r.rendezvous(ctx, asg, addr, log)
	if err != nil {
		ln.Close()
		return nil, err
	}
	secret, err := hex.DecodeString(rv.Secret)
	if err != nil || len(secret) < 16 {
		ln.Close()
		return nil, fmt.Errorf("ring: the coordinators' secret for attempt %d is not 16+ bytes of hex", asg.Attempt)
	}
	log.Info("ring: every rank registered; connecting", "peers", rv.Addrs)
	comm, err := collective.New(ctx, collective.Config{
		Rank: asg.Rank, Size: asg.Ranks, Peers: rv.Addrs, Listener: ln, Secret: secret,
		Session: asg.JobID + "/attempt-" + strconv.Itoa(asg.Attempt),
		Timeout: a.cfg.CollectiveTimeout, Logger: log,
	})
	if err != nil {
		return nil, fmt.Errorf("ring: %w", err)
	}
	log.Info("ring: connected", "ranks", asg.Ranks)
	a.reportRing(ctx, asg, api.RingConnected, 0, 0)
	return comm, nil
}

// rendezvous registers addr as the rank's address and waits, with blocking
// queries, until every rank of the attempt has one. A rank that never
// registers within RendezvousTimeout is blamed.
func (r *agentRing) rendezvous(ctx context.Context, asg Assignment, addr string, log *slog.Logger) (*api.Rendezvous, error) {
	a := r.a
	ctx, cancel := context.WithTimeout(ctx, a.cfg.RendezvousTimeout)
	defer cancel()
	body := api.RegisterRankBody{WorkerID: a.cfg.ID, Addr: addr}
	w := &api.Watch{Wait: 30 * time.Second, MinBackoff: a.cfg.PollInterval / 4, MaxBackoff: a.cfg.PollInterval}
	var rv *api.Rendezvous
	for {
		var err error
		rv, err = a.api.RegisterRank(ctx, asg.JobID, asg.Attempt, asg.Rank, body)
		if err == nil {
			break
		}
		if errors.Is(err, api.ErrConflict) || errors.Is(err, api.ErrNotFound) || errors.Is(err, api.ErrInvalid) {
			return nil, fmt.Errorf("ring: register rank %d at %s: %w", asg.Rank, addr, err)
		}
		log.Warn("ring: registering the rank's address failed; retrying", "err", err)
		if w.Pause(ctx, a.cfg.PollInterval) != nil {
			return nil, r.missing(ctx, asg, rv)
		}
	}
	for !rv.Ready {
		next, meta, err := a.api.RendezvousQuery(ctx, asg.JobID, asg.Attempt, w.Options())
		if err == nil {
			rv = next
		}
		// A conflict: the attempt ended. (Not found is retried: a
		// coordinator that has not applied the placement yet answers so.)
		if errors.Is(err, api.ErrConflict) {
			return nil, fmt.Errorf("ring: rendezvous: %w", err)
		}
		if ctx.Err() != nil {
			return nil, r.missing(ctx, asg, rv)
		}
		_, pause := w.Done(meta, err)
		if w.Pause(ctx, pause) != nil {
			return nil, r.missing(ctx, asg, rv)
		}
	}
	if len(rv.Addrs) != asg.Ranks {
		return nil, fmt.Errorf("ring: the rendezvous lists %d ranks, the assignment %d", len(rv.Addrs), asg.Ranks)
	}
	return rv, nil
}

// missing is the error of a rendezvous that ended before every rank
// registered: the first rank without an address is blamed.
func (r *agentRing) missing(ctx context.Context, asg Assignment, rv *api.Rendezvous) error {
	if rv != nil {
		for rank, addr := range rv.Addrs {
			if addr == "" {
				return &collective.RankError{Rank: rank, Op: "rendezvous",
					Err: fmt.Errorf("%w: rank %d did not register an address within %v", collective.ErrTimeout, rank, r.a.cfg.RendezvousTimeout)}
			}
		}
	}
	return fmt.Errorf("ring: rendezvous: %w", context.Cause(ctx))
}

// ringHost is the host ranks listen on: RingHost, else the local address
// this machine reaches the first coordinator from (no packet is sent).
func (a *Agent) ringHost() (string, error) {
	if a.cfg.RingHost != "" {
		return a.cfg.RingHost, nil
	}
	c, err := net.Dial("udp", a.cfg.Coordinators[0])
	if err != nil {
		return "", fmt.Errorf("ring: find the local address towards %s (set the ring host): %w", a.cfg.Coordinators[0], err)
	}
	defer c.Close()
	host, _, err := net.SplitHostPort(c.LocalAddr().String())
	return host, err
}

// reportRing tells the coordinators a rank's ring state, step and
// throughput (shown per rank by `jobs get`); failures are logged only.
func (a *Agent) reportRing(ctx context.Context, asg Assignment, ring api.RingState, step int64, ips float64) {
	body := api.AttemptReportBody{WorkerID: a.cfg.ID, State: api.AttemptRunning, Rank: asg.Rank, Ring: ring, Step: step, ImagesPerSec: ips}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := a.api.ReportAttempt(rctx, asg.JobID, asg.Attempt, body); err != nil && ctx.Err() == nil {
		a.log.Warn("ring state report failed", "job", asg.JobID, "attempt", asg.Attempt, "rank", asg.Rank, "err", err)
	}
}
