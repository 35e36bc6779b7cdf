package coordinator

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/trainctl/trainctl/api"
	"github.com/trainctl/trainctl/membership"
)

// fastGossip is a membership configuration on the loopback interface with
// small timings.
func fastGossip() membership.Config {
	c := membership.DefaultConfig()
	c.BindAddr = "127.0.0.1"
	c.ProbeInterval = 100 * time.Millisecond
	c.ProbeTimeout = 50 * time.Millisecond
	c.SuspicionMult = 2
	c.GossipInterval = 20 * time.Millisecond
	c.PushPullInterval = 500 * time.Millisecond
	c.TCPTimeout = time.Second
	c.JoinRetryInterval = 50 * time.Millisecond
	c.Logger = testLogger()
	return c
}

// gossipWorker starts a worker's gossip member joined to the coordinator at
// join; the test ends it unless it did so itself.
func gossipWorker(t *testing.T, name string, cores int, join string) *membership.Member {
	t.Helper()
	cfg := fastGossip()
	cfg.NodeName = name
	cfg.Meta = membership.NodeMeta{Role: membership.RoleWorker, Cores: cores, Version: "test"}
	cfg.Join = []string{join}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := membership.Start(ctx, cfg)
	if err != nil {
		t.Fatalf("start worker %s: %v", name, err)
	}
	t.Cleanup(func() { m.Shutdown() })
	return m
}

func workerStatus(s *Server, id string, want api.WorkerStatus) func() error {
	return func() error {
		w, err := s.State().Worker(id)
		if err != nil {
			return err
		}
		if api.WorkerStatus(w.Status) != want {
			return fmt.Errorf("worker %s is %s, want %s", id, w.Status, want)
		}
		return nil
	}
}

func TestGossipWorkersBecomeRaftCommands(t *testing.T) {
	const lease = 1500 * time.Millisecond
	c := newCluster(t, 1, func(cfg *Config) {
		g := fastGossip()
		cfg.Gossip = &g
		cfg.WorkerLease = lease
	})
	s := c.nodes[0].srv
	cl := c.client()

	// A worker that joins gossip is registered from its metadata and runs
	// jobs without any HTTP heartbeat.
	leaver := gossipWorker(t, "g1", 2, s.GossipAddr())
	waitFor(t, 10*time.Second, "g1 registered", workerStatus(s, "g1", api.WorkerAlive))
	if w, _ := s.State().Worker("g1"); w.Meta.Cores != 2 || w.Meta.Version != "test" {
		t.Fatalf("worker meta %+v", w.Meta)
	}
	j1 := submit(t, cl, testSpec("on-leaver"))
	waitJob(t, s, j1.ID, "j1 placed on g1", inState(api.JobRunning))

	// A graceful leave hands the attempt back at once, without counting.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := leaver.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	leaver.Shutdown()
	waitFor(t, 10*time.Second, "g1 left", workerStatus(s, "g1", api.WorkerLeft))
	got := waitJob(t, s, j1.ID, "j1 handed back", inState(api.JobPending))
	if got.Attempts[0].State != api.AttemptPreempted || got.Restarts != 0 {
		t.Fatalf("after the leave: attempt %+v, restarts %d", got.Attempts[0], got.Restarts)
	}

	// A worker that dies keeps its attempt until its lease runs out; then
	// the attempt is lost and counted against the job.
	dier := gossipWorker(t, "g2", 2, s.GossipAddr())
	waitFor(t, 10*time.Second, "g2 registered", workerStatus(s, "g2", api.WorkerAlive))
	got = waitJob(t, s, j1.ID, "j1 placed on g2", inState(api.JobRunning))
	if n := got.CurrentAttempt().Nodes[0]; n != "g2" {
		t.Fatalf("attempt 2 on %s", n)
	}
	dier.Shutdown() // no leave: a crash as gossip sees it
	waitFor(t, 10*time.Second, "g2 dead", workerStatus(s, "g2", api.WorkerDead))
	got = waitJob(t, s, j1.ID, "j1 lost", inState(api.JobPending))
	if a := got.Attempts[1]; a.State != api.AttemptFailed || a.FailedNode != "g2" || got.Restarts != 1 {
		t.Fatalf("after the death: attempt %+v, restarts %d", a, got.Restarts)
	}
}
