package coordinator

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/trainctl/trainctl/api"
	"github.com/trainctl/trainctl/coordinator/scheduler"
	"github.com/trainctl/trainctl/coordinator/structs"
)

// The benchmarks below are the numbers of BENCHMARKS.md. They start real
// servers in-process (TCP on 127.0.0.1, bbolt under b.TempDir()) and
// report their own metrics; ns/op is the cost of one iteration of each
// (one kill and recovery, one submission, one fill of a queue), not the
// number to read. Run them with a fixed iteration count, for example
//
//	go test ./coordinator/ -run '^$' -bench 'LeaderFailover' -benchtime 10x
//	go test ./coordinator/ -run '^$' -bench 'Submit' -benchtime 500x
//	go test ./coordinator/ -run '^$' -bench 'Placements/loop' -benchtime 3x
//	go test ./coordinator/ -run '^$' -bench 'Placements/pure'
//
// BenchmarkLeaderFailover takes about a minute at 10x.

// failoverTimings are the Raft timeouts BenchmarkLeaderFailover runs with.
var failoverTimings = []struct {
	name string
	tune func(*Config)
}{
	// testConfig's timeouts, which the fault tests run with: heartbeat and
	// election 300 ms, leader lease 150 ms, commit 5 ms.
	{"tuned", nil},
	// Half of tuned: heartbeat and election 150 ms, lease 75 ms, commit
	// 5 ms; faster, and closer to electing spuriously under load.
	{"aggressive", func(cfg *Config) {
		cfg.HeartbeatTimeout, cfg.ElectionTimeout = 150*time.Millisecond, 150*time.Millisecond
		cfg.LeaderLeaseTimeout = 75 * time.Millisecond
	}},
	// The defaults before BENCHMARKS.md moved DefaultConfig to tuned's
	// heartbeat, election and lease: 500 ms, 500 ms, 250 ms, commit 20 ms.
	{"slow", func(cfg *Config) {
		cfg.HeartbeatTimeout, cfg.ElectionTimeout = 500*time.Millisecond, 500*time.Millisecond
		cfg.LeaderLeaseTimeout, cfg.CommitTimeout = 250*time.Millisecond, 20*time.Millisecond
	}},
}

// failoverKills are the ways BenchmarkLeaderFailover kills a leader, each
// with how the killed node comes back.
var failoverKills = []struct {
	name   string
	kill   func(c *testCluster, i int)
	revive func(c *testCluster, i int)
}{
	// Shutdown, then a restart on the same data directory and addresses.
	{"shutdown",
		func(c *testCluster, i int) { c.stop(i) },
		func(c *testCluster, i int) { c.start(i) }},
	// Its Raft transport cut (its HTTP API stays up), then healed.
	{"cut",
		func(c *testCluster, i int) { c.nodes[i].net.setCut(true) },
		func(c *testCluster, i int) { c.nodes[i].net.setCut(false) }},
}

// failoverAck is a submission the failover writer had acknowledged.
type failoverAck struct {
	at    time.Time
	index uint64 // the job's CreateIndex
}

// BenchmarkLeaderFailover kills the leader of a 3-voter cluster while a
// client submits jobs back to back, once per iteration, and reports the
// time from the kill to the next acknowledged write: its median and max
// over the iterations (run with -benchtime 10x or more), and how many Raft
// terms each kill cost (1 when no election was spurious). Between kills the
// killed node comes back and the cluster settles, so every kill hits a
// steady cluster of 3.
//
// The acknowledged write that ends a failover is the first one whose job
// the new leader committed: its CreateIndex is above the old leader's last
// log index as of the kill. An acknowledgement of a write the old leader
// committed just before the kill (a retry answered from the new leader's
// state, say) does not count. The writer's client retries after 10 ms,
// backing off to 50 ms at most, so that its backoff adds little to what
// is measured; the default-client variant uses api.DefaultConfig's
// backoff (50 ms doubling up to 1 s), as the CLI does.
func BenchmarkLeaderFailover(b *testing.B) {
	for _, tm := range failoverTimings {
		for _, k := range failoverKills {
			b.Run(tm.name+"/"+k.name, func(b *testing.B) {
				benchFailover(b, tm.tune, k.kill, k.revive, fastRetries)
			})
		}
	}
	// What a client with DefaultConfig's backoff (the CLI's) sees.
	k := failoverKills[0]
	b.Run("tuned/"+k.name+"/default-client", func(b *testing.B) {
		benchFailover(b, nil, k.kill, k.revive, func(*api.Config) {})
	})
}

// fastRetries makes a client retry after 10 ms, backing off to 50 ms.
func fastRetries(cfg *api.Config) {
	cfg.RetryWait, cfg.MaxRetryWait = 10*time.Millisecond, 50*time.Millisecond
}

func benchFailover(b *testing.B, tune func(*Config), kill, revive func(*testCluster, int), retries func(*api.Config)) {
	c := newSettledCluster(b, 3, tune)
	ctx, cancel := context.WithCancel(context.Background())
	acks := make(chan failoverAck, 1<<14)
	werr := make(chan error, 1)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		cfg := api.DefaultConfig(c.addrs()...)
		retries(&cfg)
		cl := api.NewWithConfig(cfg)
		for i := 0; ctx.Err() == nil; i++ {
			rid := fmt.Sprintf("w-%d", i)
			j, err := cl.SubmitJob(ctx, rid, testSpec(rid))
			if err != nil {
				if ctx.Err() == nil {
					werr <- fmt.Errorf("submit %s: %w", rid, err)
				}
				return
			}
			select {
			case acks <- failoverAck{at: time.Now(), index: j.CreateIndex}:
			case <-ctx.Done():
				return
			}
		}
	}()
	// next returns the first acknowledgement that ok accepts, dropping
	// those before it.
	next := func(what string, ok func(failoverAck) bool) failoverAck {
		b.Helper()
		timeout := time.NewTimer(30 * time.Second)
		defer timeout.Stop()
		for {
			select {
			case a := <-acks:
				if ok(a) {
					return a
				}
			case err := <-werr:
				b.Fatalf("writer: %v", err)
			case <-timeout.C:
				b.Fatalf("no acknowledged write %s in 30 s", what)
			}
		}
	}

	var (
		samples   benchLatencies
		kills     int
		firstTerm = c.settled().srv.raft.CurrentTerm()
	)
	for b.Loop() {
		l := c.settled()
		settledAt := time.Now()
		next("after settling", func(a failoverAck) bool { return a.at.After(settledAt) })

		i, srv := c.index(l), l.srv
		killed := time.Now()
		kill(c, i)
		oldLast := srv.raft.LastIndex()
		a := next("after the kill", func(a failoverAck) bool { return a.index > oldLast })
		samples = append(samples, a.at.Sub(killed))
		kills++

		revive(c, i)
	}
	lastTerm := c.settled().srv.raft.CurrentTerm()
	b.ReportMetric(float64(samples.quantile(0.5).Microseconds())/1000, "median-ms")
	b.ReportMetric(float64(samples.quantile(1).Microseconds())/1000, "max-ms")
	b.ReportMetric(float64(kills), "kills")
	b.ReportMetric(float64(lastTerm-firstTerm)/float64(kills), "terms/kill")
	b.Logf("failover times: %v", samples)
}

// BenchmarkSubmit reports the latency of one job submission, acknowledged
// once committed, as its p50 and p99: on a single voter, and on three
// voters through the leader and through a follower (which forwards to the
// leader). No workers run, so the queue grows by one job per iteration and
// each submission triggers a scheduling pass over it.
func BenchmarkSubmit(b *testing.B) {
	for _, bc := range []struct {
		name     string
		voters   int
		follower bool
	}{
		{"1-node", 1, false},
		{"3-node/leader", 3, false},
		{"3-node/follower", 3, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			c := newSettledCluster(b, bc.voters, nil)
			target := c.settled()
			if bc.follower {
				target = c.followers(target)[0]
			}
			cl := api.New(target.srv.HTTPAddr())
			ctx := context.Background()
			var lat benchLatencies
			i := 0
			for b.Loop() {
				rid := fmt.Sprintf("s-%d", i)
				i++
				start := time.Now()
				if _, err := cl.SubmitJob(ctx, rid, testSpec(rid)); err != nil {
					b.Fatalf("submit %s: %v", rid, err)
				}
				lat = append(lat, time.Since(start))
			}
			b.ReportMetric(float64(lat.quantile(0.5).Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat.quantile(0.99).Microseconds())/1000, "p99-ms")
		})
	}
}

const (
	placementJobs    = 1000
	placementWorkers = 10
	placementCores   = 100 // per worker: room for every job, one core each
)

// BenchmarkPlacements reports how many placements per second the leader's
// scheduling loop commits when 1,000 queued jobs (one rank of one core
// each) meet enough workers: the time from the first of 10 fake workers
// registering through the client (100 cores each, no training) to every
// job placed, measured on the leader's state. Each iteration fills a new
// cluster's queue first. "pure" runs the scheduler alone over the same
// queue and workers, the part of a pass that commits nothing.
func BenchmarkPlacements(b *testing.B) {
	for _, voters := range []int{1, 3} {
		b.Run(fmt.Sprintf("loop/%d-node", voters), func(b *testing.B) {
			var total time.Duration
			for b.Loop() {
				total += placeAll(b, voters)
			}
			b.ReportMetric(float64(placementJobs*b.N)/total.Seconds(), "placements/s")
			b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "fill-ms")
		})
	}
	b.Run("pure", func(b *testing.B) {
		jobs := make([]scheduler.Job, placementJobs)
		for i := range jobs {
			jobs[i] = scheduler.Job{ID: fmt.Sprintf("job-%04d", i), Priority: 50, Index: uint64(i + 1), Ranks: 1, CPUsPerRank: 1}
		}
		nodes := make([]scheduler.Node, placementWorkers)
		for i := range nodes {
			nodes[i] = scheduler.Node{ID: fmt.Sprintf("w%02d", i), CPUs: placementCores, FreeCPUs: placementCores, Status: scheduler.StatusAlive}
		}
		placed := 0
		b.ReportAllocs()
		for b.Loop() {
			res, err := scheduler.Schedule(jobs, nodes)
			if err != nil {
				b.Fatal(err)
			}
			placed += len(res.Placements)
		}
		if placed != placementJobs*b.N {
			b.Fatalf("placed %d of %d", placed, placementJobs*b.N)
		}
		b.ReportMetric(float64(placed)/b.Elapsed().Seconds(), "placements/s")
	})
}

// placeAll starts a cluster of the given size, queues placementJobs jobs
// with no worker registered, then registers the workers and returns the
// time from the first registration to every job placed.
func placeAll(b *testing.B, voters int) time.Duration {
	b.StopTimer()
	defer b.StartTimer()
	c := newSettledCluster(b, voters, nil)
	defer func() {
		for i := range c.nodes {
			c.stop(i)
		}
	}()
	l := c.settled()
	cl := c.client()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	const submitters = 8
	var wg sync.WaitGroup
	errs := make(chan error, submitters)
	for g := range submitters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < placementJobs; i += submitters {
				rid := fmt.Sprintf("p-%d", i)
				if _, err := cl.SubmitJob(ctx, rid, testSpec(rid)); err != nil {
					errs <- fmt.Errorf("submit %s: %w", rid, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	pending := func() int {
		n := 0
		for _, j := range l.srv.State().Jobs() {
			if j.State == structs.JobPending {
				n++
			}
		}
		return n
	}
	if n := pending(); n != placementJobs {
		b.Fatalf("%d jobs pending before any worker, want %d", n, placementJobs)
	}

	b.StartTimer()
	start := time.Now()
	for i := range placementWorkers {
		id := fmt.Sprintf("w%02d", i)
		if _, err := cl.RegisterWorker(ctx, api.RegisterWorkerBody{
			ID: id, Addr: id + ":1", Meta: api.WorkerMeta{Cores: placementCores},
		}); err != nil {
			b.Fatalf("register %s: %v", id, err)
		}
	}
	waitFor(b, time.Minute, "every job placed", func() error {
		if n := pending(); n > 0 {
			return fmt.Errorf("%d jobs pending", n)
		}
		return nil
	})
	elapsed := time.Since(start)
	b.StopTimer()
	if !l.srv.IsLeader() {
		b.Fatalf("leadership moved from %s during the run", l.cfg.NodeID)
	}
	return elapsed
}
