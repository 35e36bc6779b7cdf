package coordinator

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// raftTransportTimeout bounds one Raft RPC's I/O.
const raftTransportTimeout = 10 * time.Second

// setupRaft opens the on-disk stores, starts the transport and Raft, and
// bootstraps a new cluster when asked to. It reports whether Raft state
// existed on disk before (a restart).
func (s *Server) setupRaft() (existing bool, err error) {
	dir := filepath.Join(s.cfg.DataDir, "raft")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, fmt.Errorf("raft dir: %w", err)
	}
	s.logStore, err = raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, "raft.db")})
	if err != nil {
		return false, fmt.Errorf("open raft log: %w", err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(filepath.Join(dir, "snapshots"), s.cfg.SnapshotsRetained, s.hclog.Named("snapshots"))
	if err != nil {
		return false, fmt.Errorf("open snapshot store: %w", err)
	}

	ln, err := net.Listen("tcp", s.cfg.RaftAddr)
	if err != nil {
		return false, fmt.Errorf("raft listen: %w", err)
	}
	advertise := ln.Addr()
	if s.cfg.RaftAdvertise != "" {
		if err := checkAdvertise(s.cfg.RaftAdvertise); err != nil {
			ln.Close()
			return false, fmt.Errorf("raft advertise address: %w", err)
		}
		advertise = advertiseAddr(s.cfg.RaftAdvertise)
	} else if a, ok := advertise.(*net.TCPAddr); !ok || a.IP.IsUnspecified() {
		ln.Close()
		return false, fmt.Errorf("raft address %s is not advertisable: set RaftAdvertise", advertise)
	}
	var stream raft.StreamLayer = &tcpStreamLayer{Listener: ln, advertise: advertise}
	if s.cfg.wrapStream != nil {
		stream = s.cfg.wrapStream(stream)
	}
	s.transport = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  stream,
		MaxPool: 3,
		Timeout: raftTransportTimeout,
		Logger:  s.hclog.Named("transport"),
	})

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(s.cfg.NodeID)
	rc.Logger = s.hclog
	rc.HeartbeatTimeout = s.cfg.HeartbeatTimeout
	rc.ElectionTimeout = s.cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = s.cfg.LeaderLeaseTimeout
	rc.CommitTimeout = s.cfg.CommitTimeout
	rc.SnapshotInterval = s.cfg.SnapshotInterval
	rc.SnapshotThreshold = s.cfg.SnapshotThreshold
	rc.TrailingLogs = s.cfg.TrailingLogs
	rc.NotifyCh = s.leaderCh
	if err := raft.ValidateConfig(rc); err != nil {
		return false, fmt.Errorf("raft config: %w", err)
	}

	existing, err = raft.HasExistingState(s.logStore, s.logStore, snaps)
	if err != nil {
		return false, fmt.Errorf("raft state: %w", err)
	}
	if s.cfg.Bootstrap && !existing {
		cfg := raft.Configuration{Servers: []raft.Server{{
			Suffrage: raft.Voter,
			ID:       rc.LocalID,
			Address:  s.transport.LocalAddr(),
		}}}
		if err := raft.BootstrapCluster(rc, s.logStore, s.logStore, snaps, s.transport, cfg); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
			return false, fmt.Errorf("bootstrap: %w", err)
		}
	}
	s.raft, err = raft.NewRaft(rc, s.fsm, s.logStore, s.logStore, snaps, s.transport)
	if err != nil {
		return false, fmt.Errorf("start raft: %w", err)
	}
	return existing, nil
}

// tcpStreamLayer is Raft's stream layer over plain TCP.
type tcpStreamLayer struct {
	net.Listener
	advertise net.Addr
}

// Dial implements raft.StreamLayer.
func (t *tcpStreamLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return net.DialTimeout("tcp", string(addr), timeout)
}

// Addr returns the advertised address.
func (t *tcpStreamLayer) Addr() net.Addr { return t.advertise }

// advertiseAddr is a Raft address as the operator gave it. A DNS name stays
// a name in the Raft configuration and is resolved at every dial, so a
// server that comes back on a new IP under the same name (a restarted pod
// or container) is still reached; resolving it once at start would pin
// the old IP in every peer's configuration for good.
type advertiseAddr string

// Network implements net.Addr.
func (a advertiseAddr) Network() string { return "tcp" }

// String implements net.Addr.
func (a advertiseAddr) String() string { return string(a) }

// checkAdvertise checks that addr is host:port with a numeric port and a
// host other peers can dial (not empty, not an unspecified IP).
func checkAdvertise(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
		return fmt.Errorf("%q: port %q is not a number in 1..65535", addr, port)
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		return fmt.Errorf("%q: host %q cannot be dialled by other servers", addr, host)
	}
	return nil
}
