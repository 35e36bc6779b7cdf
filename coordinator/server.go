package coordinator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"

	"github.com/trainctl/trainctl/api"
	"github.com/trainctl/trainctl/artifact"
	"github.com/trainctl/trainctl/coordinator/metrics"
	"github.com/trainctl/trainctl/coordinator/state"
	"github.com/trainctl/trainctl/membership"
)

// Server is one coordinator: a Raft voter with its FSM and state store, and
// the /v1/ HTTP API.
type Server struct {
	cfg   Config
	log   *slog.Logger
	hclog hclog.Logger

	fsm       *state.FSM
	raft      *raft.Raft
	logStore  *raftboltdb.BoltStore
	transport *raft.NetworkTransport
	leaderCh  chan bool

	httpLn   net.Listener
	httpSrv  *http.Server
	httpAddr string // advertised

	// endpoints are the API, which the HTTP handler adapts
	// (endpoint.go, http.go).
	endpoints *Endpoints
	// proxyTransport forwards writes to the leader (forward.go);
	// longProxyTransport forwards those the leader may take minutes over
	// (longForward).
	proxyTransport, longProxyTransport *http.Transport

	// blobs is this server's artifact store, served at /v1/blobs/;
	// replicator copies blobs between coordinators (blobs.go).
	blobs      *artifact.Store
	replicator *artifact.Replicator
	// datasets is the dataset store and its Flight server
	// (datasets_flight.go).
	datasets *datasetService
	// metrics holds the step points this server received (metrics_endpoint.go).
	metrics *metrics.Store

	// schedKick asks the leader's scheduler for a pass (schedule.go).
	schedKick chan struct{}
	// replaySem holds one token per sweep replay running (one at a time).
	replaySem chan struct{}
	// sweepKick asks the leader's sweep controller for a pass (sweep.go).
	sweepKick chan struct{}
	// lease tracks worker heartbeats; set while this server leads
	// (lease.go).
	lease atomic.Pointer[membership.Lease]
	// leaderReady is set while this server leads and has applied
	// everything earlier leaders committed (the barrier) and registered
	// itself: only then does leaderOnly let writes through (leader.go).
	leaderReady atomic.Bool

	// member is this server's gossip membership, nil without
	// cfg.Gossip; memberHandler is the leader's handler of its events,
	// nil when not leading (members.go).
	member        *membership.Member
	memberHandler atomic.Pointer[func(membership.Event)]

	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	shutdown sync.Once
	closeErr error
}

// New starts a coordinator server: it opens (or creates) the Raft state under
// cfg.DataDir, starts Raft and the HTTP API, bootstraps a new cluster or joins
// an existing one, and returns. A server restarted on the same data directory
// replays its snapshot and log and catches up from the leader. ctx bounds the
// start (joining in particular), not the server's life: call Shutdown.
func New(ctx context.Context, cfg Config) (*Server, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	logger = logger.With("node", cfg.NodeID)
	s := &Server{
		cfg:                cfg,
		log:                logger,
		hclog:              newHCLogAdapter(logger, "raft"),
		fsm:                state.NewFSM(logger.With("component", "fsm")),
		leaderCh:           make(chan bool, 8),
		schedKick:          make(chan struct{}, 1),
		replaySem:          make(chan struct{}, 1),
		sweepKick:          make(chan struct{}, 1),
		proxyTransport:     newProxyTransport(cfg.limits.withDefaults().proxyHeaderTimeout(cfg)),
		longProxyTransport: newProxyTransport(longForwardTimeout),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.endpoints = newEndpoints(s)

	var err error
	if s.httpLn, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
		s.cancel()
		return nil, fmt.Errorf("http listen: %w", err)
	}
	s.httpAddr = s.httpLn.Addr().String()
	if cfg.HTTPAdvertise != "" {
		s.httpAddr = cfg.HTTPAdvertise
	} else if a, ok := s.httpLn.Addr().(*net.TCPAddr); !ok || a.IP.IsUnspecified() {
		s.httpLn.Close()
		s.cancel()
		return nil, fmt.Errorf("http address %s is not advertisable: set HTTPAdvertise", s.httpAddr)
	}
	if s.blobs, err = artifact.OpenStore(artifact.StoreDir(cfg.DataDir), logger.With("component", "artifact")); err != nil {
		s.httpLn.Close()
		s.cancel()
		return nil, fmt.Errorf("artifact store: %w", err)
	}
	s.replicator = artifact.NewReplicator(s.blobs, artifact.ReplicatorConfig{
		Client: artifact.ClientConfig{ResponseHeaderTimeout: cfg.ApplyTimeout + 5*time.Second, MaxBlobSize: cfg.MaxBlobBytes},
		Logger: logger.With("component", "artifact"),
	})
	s.initMetrics()
	s.fsm.State().OnRemoved(s.removeArtifacts)
	if err := s.startDatasets(); err != nil {
		s.Shutdown()
		return nil, fmt.Errorf("datasets: %w", err)
	}
	existing, err := s.setupRaft()
	if err != nil {
		s.Shutdown()
		return nil, err
	}

	s.httpSrv = &http.Server{
		Handler:           s.routes(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       httpIdleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
	}
	s.goFunc(func() {
		if err := s.httpSrv.Serve(s.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("http server stopped", "err", err)
		}
	})
	if err := s.startMembership(ctx); err != nil {
		s.Shutdown()
		return nil, err
	}
	s.goFunc(func() { s.monitorLeadership(s.ctx) })
	s.goFunc(func() { s.keepRegistered(s.ctx) })
	s.goFunc(func() { s.catchUpBlobs(s.ctx) })
	s.log.Info("coordinator started", "raft", s.transport.LocalAddr(), "http", s.httpAddr, "existing_state", existing)

	if len(cfg.Join) > 0 && !existing {
		if err := s.join(ctx); err != nil {
			s.Shutdown()
			return nil, err
		}
	}
	return s, nil
}

func (s *Server) goFunc(f func()) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
}

// join asks the servers in cfg.Join (but itself) to add this server as a
// voter, retrying until one accepts or ctx ends.
func (s *Server) join(ctx context.Context) error {
	var addrs []string
	for _, a := range s.cfg.Join {
		if a != s.httpAddr {
			addrs = append(addrs, a)
		}
	}
	if len(addrs) == 0 {
		return fmt.Errorf("join %v: no address but this server's own", s.cfg.Join)
	}
	c := api.New(addrs...)
	req := s.joinRequest()
	for {
		err := c.Join(ctx, req)
		if err == nil {
			s.log.Info("joined cluster", "via", s.cfg.Join)
			return nil
		}
		s.log.Warn("join failed, retrying", "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("join %v: %w (last error: %w)", s.cfg.Join, ctx.Err(), err)
		case <-time.After(s.cfg.RetryInterval):
		}
	}
}

func (s *Server) joinRequest() api.JoinRequest {
	return api.JoinRequest{ID: s.cfg.NodeID, RaftAddr: string(s.transport.LocalAddr()), HTTPAddr: s.httpAddr}
}

// Shutdown stops the server: the HTTP API, Raft, the transport and the
// on-disk stores. It is safe to call more than once; later calls return the
// first call's result.
func (s *Server) Shutdown() error {
	s.shutdown.Do(func() {
		s.cancel()
		s.stopDatasets()
		var errs []error
		if s.raft != nil {
			if err := s.raft.Shutdown().Error(); err != nil {
				errs = append(errs, fmt.Errorf("raft shutdown: %w", err))
			}
		}
		if s.httpSrv != nil {
			errs = append(errs, s.httpSrv.Close())
		} else if s.httpLn != nil {
			errs = append(errs, s.httpLn.Close())
		}
		if s.transport != nil {
			errs = append(errs, s.transport.Close())
		}
		s.wg.Wait()
		s.saveMetrics()
		if s.member != nil {
			errs = append(errs, s.member.Shutdown())
		}
		if s.logStore != nil {
			errs = append(errs, s.logStore.Close())
		}
		s.proxyTransport.CloseIdleConnections()
		s.longProxyTransport.CloseIdleConnections()
		if s.replicator != nil {
			s.replicator.Client().CloseIdleConnections()
		}
		s.closeErr = errors.Join(errs...)
		s.log.Info("coordinator stopped")
	})
	return s.closeErr
}

// NodeID returns the server's Raft id.
func (s *Server) NodeID() string { return s.cfg.NodeID }

// HTTPAddr returns the advertised address of the HTTP API.
func (s *Server) HTTPAddr() string { return s.httpAddr }

// RaftAddr returns the advertised address of the Raft transport.
func (s *Server) RaftAddr() string { return string(s.transport.LocalAddr()) }

// State returns the server's state store. Its contents lag the leader's by
// the entries not yet applied here.
func (s *Server) State() *state.Store { return s.fsm.State() }

// IsLeader reports whether this server is the Raft leader.
func (s *Server) IsLeader() bool { return s.raft.State() == raft.Leader }

// Status returns the server's view of the cluster.
func (s *Server) Status() (*api.ClusterStatus, error) {
	_, leaderID := s.raft.LeaderWithID()
	st := &api.ClusterStatus{
		NodeID:       s.cfg.NodeID,
		RaftAddr:     s.RaftAddr(),
		HTTPAddr:     s.httpAddr,
		State:        s.raft.State().String(),
		LeaderID:     string(leaderID),
		LastIndex:    s.raft.LastIndex(),
		AppliedIndex: s.raft.AppliedIndex(),
		CommitIndex:  s.raft.CommitIndex(),
		StateIndex:   s.State().Index(),
		Term:         s.raft.CurrentTerm(),
	}
	if leaderID != "" {
		if srv, err := s.State().Server(string(leaderID)); err == nil {
			st.LeaderHTTPAddr = srv.HTTPAddr
		}
	}
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, fmt.Errorf("raft configuration: %w", err)
	}
	for _, rs := range f.Configuration().Servers {
		v := api.VoterInfo{
			ID:       string(rs.ID),
			RaftAddr: string(rs.Address),
			Suffrage: rs.Suffrage.String(),
			Leader:   rs.ID == leaderID,
		}
		if srv, err := s.State().Server(v.ID); err == nil {
			v.HTTPAddr = srv.HTTPAddr
		}
		st.Voters = append(st.Voters, v)
	}
	return st, nil
}
