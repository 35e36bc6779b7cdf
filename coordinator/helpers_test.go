package coordinator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/trainctl/trainctl/api"
	"github.com/trainctl/trainctl/jobspec"
)

// testLogger discards logs unless TRAINCTL_TEST_LOG is set.
func testLogger() *slog.Logger {
	if os.Getenv("TRAINCTL_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func testSpec(name string) jobspec.Spec {
	s := jobspec.Defaults()
	s.Name, s.Dataset = name, "shapes@v1"
	return s
}

// waitFor polls cond until it returns nil, failing the test with cond's last
// error after timeout.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		<-tick.C
	}
}

// cutStream wraps a Raft stream layer so a test can cut the server off the
// network: while cut, dials fail, accepted connections are closed at once
// and open connections are closed.
type cutStream struct {
	raft.StreamLayer
	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]struct{}
}

var errCut = errors.New("test: network cut")

func (c *cutStream) track(conn net.Conn) (net.Conn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cut {
		conn.Close()
		return nil, errCut
	}
	if c.conns == nil {
		c.conns = make(map[net.Conn]struct{})
	}
	tc := &trackedConn{Conn: conn, s: c}
	c.conns[tc] = struct{}{}
	return tc, nil
}

func (c *cutStream) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	conn, err := c.StreamLayer.Dial(addr, timeout)
	if err != nil {
		return nil, err
	}
	return c.track(conn)
}

func (c *cutStream) Accept() (net.Conn, error) {
	for {
		conn, err := c.StreamLayer.Accept()
		if err != nil {
			return nil, err
		}
		if tc, err := c.track(conn); err == nil {
			return tc, nil
		}
	}
}

func (c *cutStream) setCut(cut bool) {
	c.mu.Lock()
	c.cut = cut
	var open []net.Conn
	if cut {
		for conn := range c.conns {
			open = append(open, conn)
		}
	}
	c.mu.Unlock()
	for _, conn := range open {
		conn.Close()
	}
}

type trackedConn struct {
	net.Conn
	s *cutStream
}

func (t *trackedConn) Close() error {
	t.s.mu.Lock()
	delete(t.s.conns, t)
	t.s.mu.Unlock()
	return t.Conn.Close()
}

// node is one server of a test cluster, kept across restarts.
type node struct {
	cfg Config
	srv *Server // nil while stopped
	net *cutStream
}

type testCluster struct {
	t     testing.TB
	nodes []*node
}

func testConfig(id, dir string) Config {
	cfg := DefaultConfig()
	cfg.NodeID = id
	cfg.DataDir = dir
	cfg.RaftAddr = "127.0.0.1:0"
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.HeartbeatTimeout = 300 * time.Millisecond
	cfg.ElectionTimeout = 300 * time.Millisecond
	cfg.LeaderLeaseTimeout = 150 * time.Millisecond
	cfg.CommitTimeout = 5 * time.Millisecond
	cfg.ApplyTimeout = 3 * time.Second
	cfg.RetryInterval = 50 * time.Millisecond
	cfg.SchedulerInterval = 100 * time.Millisecond
	cfg.WorkerLease = time.Minute
	cfg.BlobCatchUpInterval = 100 * time.Millisecond
	cfg.Logger = testLogger()
	return cfg
}

// start starts (or restarts) node i.
func (c *testCluster) start(i int) {
	c.t.Helper()
	n := c.nodes[i]
	n.net = &cutStream{}
	cfg := n.cfg
	cfg.wrapStream = func(s raft.StreamLayer) raft.StreamLayer {
		n.net.StreamLayer = s
		return n.net
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	srv, err := New(ctx, cfg)
	if err != nil {
		c.t.Fatalf("start %s: %v", cfg.NodeID, err)
	}
	n.srv = srv
	// A restart binds the same addresses again: the Raft configuration
	// and the server registry name them.
	n.cfg.RaftAddr, n.cfg.HTTPAddr = srv.RaftAddr(), srv.HTTPAddr()
}

// stop shuts node i down.
func (c *testCluster) stop(i int) {
	c.t.Helper()
	if err := c.nodes[i].srv.Shutdown(); err != nil {
		c.t.Errorf("shutdown %s: %v", c.nodes[i].cfg.NodeID, err)
	}
	c.nodes[i].srv = nil
}

// newCluster starts n servers: the first bootstraps, the others join it.
func newCluster(t testing.TB, n int, tune func(*Config)) *testCluster {
	c := &testCluster{t: t}
	for i := range n {
		cfg := testConfig(fmt.Sprintf("c%d", i), t.TempDir())
		if tune != nil {
			tune(&cfg)
		}
		c.nodes = append(c.nodes, &node{cfg: cfg})
	}
	t.Cleanup(func() {
		for _, n := range c.nodes {
			if n.srv != nil {
				n.srv.Shutdown()
			}
		}
	})
	c.nodes[0].cfg.Bootstrap = true
	c.start(0)
	c.leader(nil)
	for i := 1; i < n; i++ {
		c.nodes[i].cfg.Join = []string{c.nodes[0].srv.HTTPAddr()}
		c.start(i)
	}
	waitFor(t, 10*time.Second, "all voters registered everywhere", func() error {
		for _, n := range c.live() {
			st, err := n.srv.Status()
			if err != nil {
				return err
			}
			if len(st.Voters) != len(c.nodes) || st.LeaderHTTPAddr == "" {
				return fmt.Errorf("%s: %d voters, leader %q at %q", n.cfg.NodeID, len(st.Voters), st.LeaderID, st.LeaderHTTPAddr)
			}
			for _, v := range st.Voters {
				if v.HTTPAddr == "" {
					return fmt.Errorf("%s: voter %s not registered", n.cfg.NodeID, v.ID)
				}
			}
		}
		return nil
	})
	// Jobs name a dataset version, resolved at submission.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.client().RegisterDataset(ctx, api.RegisterDatasetBody{
		Name: "shapes", ID: shapesV1, Manifest: json.RawMessage(`{"name":"shapes","id":"` + shapesV1 + `"}`),
	}); err != nil {
		t.Fatalf("register dataset: %v", err)
	}
	return c
}

// shapesV1 is the version id of the dataset newCluster registers as
// shapes@v1, which testSpec names.
const shapesV1 = "5ba9e0c4d1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c"

// client returns an API client of all live servers.
func (c *testCluster) client() *api.Client {
	var addrs []string
	for _, n := range c.live() {
		addrs = append(addrs, n.srv.HTTPAddr())
	}
	return api.New(addrs...)
}

// live returns the running nodes.
func (c *testCluster) live() []*node {
	var out []*node
	for _, n := range c.nodes {
		if n.srv != nil {
			out = append(out, n)
		}
	}
	return out
}

// leader waits until one server among those given (all live ones if nil)
// leads and the others follow it, and returns it.
func (c *testCluster) leader(among []*node) *node {
	c.t.Helper()
	if among == nil {
		among = c.live()
	}
	var leader *node
	waitFor(c.t, 15*time.Second, "a leader", func() error {
		leader = nil
		for _, n := range among {
			if n.srv.IsLeader() {
				leader = n
			}
		}
		if leader == nil {
			return errors.New("no leader")
		}
		for _, n := range among {
			if _, id := n.srv.raft.LeaderWithID(); string(id) != leader.cfg.NodeID {
				return fmt.Errorf("%s follows %q, not %s", n.cfg.NodeID, id, leader.cfg.NodeID)
			}
		}
		return nil
	})
	return leader
}

// followers returns the live nodes other than l.
func (c *testCluster) followers(l *node) []*node {
	var out []*node
	for _, n := range c.live() {
		if n != l {
			out = append(out, n)
		}
	}
	return out
}

func stateBytes(t testing.TB, s *Server) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := s.State().Encode(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// converged waits until the given servers have applied the same index and
// hold identical state bytes, and returns those bytes.
func (c *testCluster) converged(nodes []*node) []byte {
	c.t.Helper()
	var ref []byte
	waitFor(c.t, 15*time.Second, "identical state", func() error {
		first := nodes[0].srv
		ref = stateBytes(c.t, first)
		for _, n := range nodes[1:] {
			if a, b := first.raft.AppliedIndex(), n.srv.raft.AppliedIndex(); a != b {
				return fmt.Errorf("applied index %s=%d, %s=%d", first.NodeID(), a, n.cfg.NodeID, b)
			}
			if got := stateBytes(c.t, n.srv); !bytes.Equal(got, ref) {
				return fmt.Errorf("%s and %s differ at applied index %d", first.NodeID(), n.cfg.NodeID, first.raft.AppliedIndex())
			}
		}
		return nil
	})
	return ref
}
