package coordinator

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"testing"
	"time"
)

// newSettledCluster is newCluster followed by settled: what a benchmark
// that kills nodes over and over starts from.
func newSettledCluster(tb testing.TB, n int, tune func(*Config)) *testCluster {
	tb.Helper()
	c := newCluster(tb, n, tune)
	c.settled()
	return c
}

func (c *testCluster) index(n *node) int {
	return slices.Index(c.nodes, n)
}

// addrs returns the HTTP addresses of all nodes, running or not.
func (c *testCluster) addrs() []string {
	var out []string
	for _, n := range c.nodes {
		out = append(out, n.cfg.HTTPAddr)
	}
	return out
}

// settled waits until every node runs, all follow one leader that knows
// every voter's HTTP address, and every follower has applied what the
// leader had committed when the wait began: a steady cluster of
// len(c.nodes) voters. It returns the leader.
func (c *testCluster) settled() *node {
	c.t.Helper()
	l := c.leader(nil)
	target := l.srv.raft.CommitIndex()
	waitFor(c.t, 15*time.Second, "a settled cluster", func() error {
		if len(c.live()) != len(c.nodes) {
			return errors.New("a node is down")
		}
		if !l.srv.IsLeader() {
			l = c.leader(nil)
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
