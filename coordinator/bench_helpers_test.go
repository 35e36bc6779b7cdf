package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/trainctl/trainctl/coordinator/client"
	"github.com/trainctl/trainctl/coordinator/structs"
)

// benchCluster is testCluster for benchmarks: the same nodes (testConfig,
// cutStream), built on testing.TB. testCluster takes a *testing.T, so
// benchmarks cannot use it directly.
type benchCluster struct {
	tb    testing.TB
	nodes []*node
}

// newBenchCluster starts n servers with testConfig timings adjusted by tune:
// the first bootstraps, the others join it; it waits until every voter is
// registered everywhere and registers the dataset testSpec names.
func newBenchCluster(tb testing.TB, n int, tune func(*Config)) *benchCluster {
	tb.Helper()
	c := &benchCluster{tb: tb}
	for i := range n {
		cfg := testConfig(fmt.Sprintf("c%d", i), tb.TempDir())
		if tune != nil {
			tune(&cfg)
		}
		c.nodes = append(c.nodes, &node{cfg: cfg})
	}
	tb.Cleanup(func() {
		for _, n := range c.nodes {
			if n.srv != nil {
				n.srv.Shutdown()
			}
		}
	})
	c.nodes[0].cfg.Bootstrap = true
	c.start(0)
	c.leader()
	for i := 1; i < n; i++ {
		c.nodes[i].cfg.Join = []string{c.nodes[0].srv.HTTPAddr()}
		c.start(i)
	}
	c.settled()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.client().RegisterDataset(ctx, structs.RegisterDatasetBody{
		Name: "shapes", ID: shapesV1, Manifest: json.RawMessage(`{"name":"shapes"}`),
	}); err != nil {
		tb.Fatalf("register dataset: %v", err)
	}
	return c
}

// start starts (or restarts, on the same data directory and addresses)
// node i.
func (c *benchCluster) start(i int) {
	c.tb.Helper()
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
		c.tb.Fatalf("start %s: %v", cfg.NodeID, err)
	}
	n.srv = srv
	n.cfg.RaftAddr, n.cfg.HTTPAddr = srv.RaftAddr(), srv.HTTPAddr()
}

// stop shuts node i down.
func (c *benchCluster) stop(i int) {
	c.tb.Helper()
	if err := c.nodes[i].srv.Shutdown(); err != nil {
		c.tb.Errorf("shutdown %s: %v", c.nodes[i].cfg.NodeID, err)
	}
	c.nodes[i].srv = nil
}

func (c *benchCluster) index(n *node) int {
	return slices.Index(c.nodes, n)
}

// live returns the running nodes.
func (c *benchCluster) live() []*node {
	var out []*node
	for _, n := range c.nodes {
		if n.srv != nil {
			out = append(out, n)
		}
	}
	return out
}

// addrs returns the HTTP addresses of all nodes, running or not.
func (c *benchCluster) addrs() []string {
	var out []string
	for _, n := range c.nodes {
		out = append(out, n.cfg.HTTPAddr)
	}
	return out
}

// client returns an API client of all live servers.
func (c *benchCluster) client() *client.Client {
	var addrs []string
	for _, n := range c.live() {
		addrs = append(addrs, n.srv.HTTPAddr())
	}
	return client.New(addrs...)
}

// leader waits until one live server leads and every live one follows it.
func (c *benchCluster) leader() *node {
	c.tb.Helper()
	var leader *node
	waitFor(c.tb, 15*time.Second, "a leader", func() error {
		leader = nil
		live := c.live()
		for _, n := range live {
			if n.srv.IsLeader() {
				leader = n
			}
		}
		if leader == nil {
			return errors.New("no leader")
		}
		for _, n := range live {
			if _, id := n.srv.raft.LeaderWithID(); string(id) != leader.cfg.NodeID {
				return fmt.Errorf("%s follows %q, not %s", n.cfg.NodeID, id, leader.cfg.NodeID)
			}
		}
		return nil
	})
	return leader
}

// settled waits until every node runs, all follow one leader that knows
// every voter's HTTP address, and every follower has applied what the
// leader had committed when the wait began: a steady cluster of
// len(c.nodes) voters. It returns the leader.
func (c *benchCluster) settled() *node {
	c.tb.Helper()
	l := c.leader()
	target := l.srv.raft.CommitIndex()
	waitFor(c.tb, 15*time.Second, "a settled cluster", func() error {
		if len(c.live()) != len(c.nodes) {
			return errors.New("a node is down")
		}
		if !l.srv.IsLeader() {
			l = c.leader()
		}
		for _, n := range c.nodes {
			st, err := n.srv.Status()
			if err != nil {
				return err
			}
			if len(st.Voters) != len(c.nodes) || st.LeaderID != l.cfg.NodeID || st.LeaderHTTPAddr == "" {
				return fmt.Errorf("%s: %d voters, leader %q at %q", n.cfg.NodeID, len(st.Voters), st.LeaderID, st.LeaderHTTPAddr)
			}
			for _, v := range st.Voters {
				if v.HTTPAddr == "" {
					return fmt.Errorf("%s: voter %s not registered", n.cfg.NodeID, v.ID)
				}
			}
			if st.AppliedIndex < target {
				return fmt.Errorf("%s applied %d of %d", n.cfg.NodeID, st.AppliedIndex, target)
			}
		}
		return nil
	})
	return l
}

// followers returns the live nodes other than l.
func (c *benchCluster) followers(l *node) []*node {
	var out []*node
	for _, n := range c.live() {
		if n != l {
			out = append(out, n)
		}
	}
	return out
}

// benchLatencies collects durations and reports quantiles of them.
type benchLatencies []time.Duration

// quantile returns the q-quantile (0 ≤ q ≤ 1, nearest rank) of l, which
// it sorts.
func (l benchLatencies) quantile(q float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
	i := int(math.Ceil(q * float64(len(l))))
	return l[min(max(i-1, 0), len(l)-1)]
}
