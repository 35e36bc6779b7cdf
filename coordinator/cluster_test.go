package coordinator

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trainctl/trainctl/api"
	"github.com/trainctl/trainctl/coordinator/structs"
)

func TestClusterFormsAndForwards(t *testing.T) {
	c := newCluster(t, 3, nil)
	l := c.leader(nil)
	f := c.followers(l)[0]
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	cl := api.New(f.srv.HTTPAddr())
	st, err := cl.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.NodeID != f.cfg.NodeID || st.LeaderID != l.cfg.NodeID || len(st.Voters) != 3 || st.Term == 0 || st.LastIndex == 0 {
		t.Fatalf("status from follower: %+v", st)
	}

	j, err := cl.SubmitJob(ctx, "req-1", testSpec("forwarded"))
	if err != nil {
		t.Fatal(err)
	}
	again, err := cl.SubmitJob(ctx, "req-1", testSpec("forwarded"))
	if err != nil || again.ID != j.ID {
		t.Fatalf("resubmission: %v, job %+v, want id %s", err, again, j.ID)
	}
	cancelled, err := cl.CancelJob(ctx, j.ID)
	if err != nil || cancelled.State != api.JobCancelled {
		t.Fatalf("cancel via follower: %v, %+v", err, cancelled)
	}
	c.converged(c.live())
	for _, n := range c.live() {
		jobs := n.srv.State().Jobs()
		if len(jobs) != 1 || jobs[0].ID != j.ID || jobs[0].State != structs.JobCancelled {
			t.Fatalf("%s holds %+v", n.cfg.NodeID, jobs)
		}
	}
}

// TestLeaderFailover kills the leader while clients submit 200 jobs with
// retries; every acknowledged job must exist exactly once, and the
// surviving voters must hold identical state.
func TestLeaderFailover(t *testing.T) {
	tests := []struct {
		name string
		kill func(c *testCluster, n *node)
		// heal brings a cut leader back; nil when the kill is final.
		heal func(n *node)
	}{
		{name: "shutdown", kill: func(c *testCluster, n *node) {
			for i := range c.nodes {
				if c.nodes[i] == n {
					c.stop(i)
				}
			}
		}},
		{name: "transport cut",
			kill: func(_ *testCluster, n *node) { n.net.setCut(true) },
			heal: func(n *node) { n.net.setCut(false) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCluster(t, 3, nil)
			old := c.leader(nil)
			survivors := c.followers(old)
			var addrs []string
			for _, n := range c.nodes {
				addrs = append(addrs, n.srv.HTTPAddr())
			}

			const clients, perClient = 4, 50
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			var (
				acked   sync.Map // request id -> job id
				nAcked  atomic.Int64
				killNow = make(chan struct{})
				once    sync.Once
				wg      sync.WaitGroup
				errs    = make(chan error, clients)
			)
			for g := range clients {
				// Each client starts at a different coordinator.
				order := append(append([]string(nil), addrs[g%len(addrs):]...), addrs[:g%len(addrs)]...)
				cl := api.New(order...)
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range perClient {
						rid := fmt.Sprintf("g%d-%d", g, i)
						j, err := cl.SubmitJob(ctx, rid, testSpec(rid))
						if err != nil {
							errs <- fmt.Errorf("submit %s: %w", rid, err)
							return
						}
						acked.Store(rid, j.ID)
						if nAcked.Add(1) == 40 {
							once.Do(func() { close(killNow) })
						}
					}
				}()
			}
			select {
			case <-killNow:
			case <-ctx.Done():
				t.Fatal("no progress before the kill")
			}
			killed := time.Now()
			tt.kill(c, old)
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			if t.Failed() {
				return
			}
			newLeader := c.leader(survivors)
			t.Logf("200 submissions done %v after the kill; new leader %s", time.Since(killed).Round(time.Millisecond), newLeader.cfg.NodeID)

			checkJobs := func(n *node) {
				t.Helper()
				jobs := n.srv.State().Jobs()
				byRequest := make(map[string]int)
				for _, j := range jobs {
					byRequest[j.RequestID]++
				}
				if len(jobs) != clients*perClient {
					t.Errorf("%s holds %d jobs, want %d", n.cfg.NodeID, len(jobs), clients*perClient)
				}
				acked.Range(func(k, v any) bool {
					rid, id := k.(string), v.(string)
					if byRequest[rid] != 1 {
						t.Errorf("%s: request %s has %d jobs", n.cfg.NodeID, rid, byRequest[rid])
					}
					if j, err := n.srv.State().Job(id); err != nil || j.RequestID != rid {
						t.Errorf("%s: acknowledged job %s of %s: %v", n.cfg.NodeID, id, rid, err)
					}
					return true
				})
			}
			c.converged(survivors)
			for _, n := range survivors {
				checkJobs(n)
			}
			if tt.heal != nil {
				tt.heal(old)
				c.converged(c.live())
				checkJobs(old)
			}
		})
	}
}

func TestRestartCatchesUp(t *testing.T) {
	c := newCluster(t, 3, func(cfg *Config) {
		cfg.TrailingLogs = 4 // so the leader's log no longer covers what the stopped node missed
	})
	l := c.leader(nil)
	var fi int
	for i, n := range c.nodes {
		if n != l {
			fi = i
		}
	}
	c.stop(fi)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl := api.New(l.srv.HTTPAddr())
	for i := range 20 {
		if _, err := cl.SubmitJob(ctx, fmt.Sprintf("r%d", i), testSpec("while-down")); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.srv.raft.Snapshot().Error(); err != nil {
		t.Fatalf("snapshot: %v", err)
	}

	// It comes back on a new HTTP port: the registry must follow, or
	// writes could not be forwarded to it once it leads.
	c.nodes[fi].cfg.HTTPAddr = "127.0.0.1:0"
	c.start(fi)
	restarted := c.nodes[fi].srv
	c.converged(c.live())
	if n := len(restarted.State().Jobs()); n != 20 {
		t.Fatalf("restarted node holds %d jobs, want 20", n)
	}
	waitFor(t, 10*time.Second, "the new HTTP address in the registry", func() error {
		for _, n := range c.live() {
			srv, err := n.srv.State().Server(restarted.NodeID())
			if err != nil {
				return err
			}
			if srv.HTTPAddr != restarted.HTTPAddr() {
				return fmt.Errorf("%s has %s at %s, want %s", n.cfg.NodeID, srv.ID, srv.HTTPAddr, restarted.HTTPAddr())
			}
		}
		return nil
	})

	// And a restart of the whole cluster replays snapshot and log from disk.
	for i := range c.nodes {
		c.stop(i)
	}
	for i := range c.nodes {
		c.start(i)
	}
	c.leader(nil)
	ref := c.converged(c.live())
	for _, n := range c.live() {
		if got := len(n.srv.State().Jobs()); got != 20 {
			t.Fatalf("%s holds %d jobs after a full restart, want 20 (state %d bytes)", n.cfg.NodeID, got, len(ref))
		}
	}
}

func TestMinorityAcceptsNoWrites(t *testing.T) {
	c := newCluster(t, 3, nil)
	l := c.leader(nil)
	fs := c.followers(l)
	cut, other := fs[0], fs[1]
	cut.net.setCut(true)
	waitFor(t, 10*time.Second, "the cut node to lose its leader", func() error {
		if _, id := cut.srv.raft.LeaderWithID(); id != "" {
			return fmt.Errorf("still follows %s", id)
		}
		return nil
	})

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cfg := api.DefaultConfig(cut.srv.HTTPAddr())
	cfg.RetryTimeout = 0
	_, err := api.NewWithConfig(cfg).SubmitJob(ctx, "minority", testSpec("minority"))
	var apiErr *api.APIError
	if !errors.Is(err, api.ErrNoLeader) || !errors.As(err, &apiErr) || apiErr.Status != http.StatusServiceUnavailable {
		t.Fatalf("write on the minority: %v, want 503 no_leader", err)
	}
	resp, err := http.Post("http://"+cut.srv.HTTPAddr()+"/v1/workers/w1/drain", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("drain on the minority: %s, Retry-After %q", resp.Status, resp.Header.Get("Retry-After"))
	}

	// The majority goes on.
	j, err := api.New(other.srv.HTTPAddr(), l.srv.HTTPAddr()).SubmitJob(ctx, "majority", testSpec("majority"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cut.srv.State().Job(j.ID); !errors.Is(err, structs.ErrNotFound) {
		t.Fatalf("the cut node applied a write: %v", err)
	}
	cut.net.setCut(false)
	c.converged(c.live())
	if _, err := cut.srv.State().Job(j.ID); err != nil {
		t.Fatalf("after healing: %v", err)
	}
	if _, err := cut.srv.State().JobByRequestID("minority"); !errors.Is(err, structs.ErrNotFound) {
		t.Fatal("the refused write exists")
	}
}
