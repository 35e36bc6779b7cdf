package coordinator

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trainctl/trainctl/api"
	"github.com/trainctl/trainctl/coordinator/state"
	"github.com/trainctl/trainctl/coordinator/structs"
)

// gcLoad is a load of finished jobs for the garbage collection test and
// benchmark: what the endpoints would commit for each job, committed by the
// leader directly (so thousands of jobs take seconds), with the step points
// posted over HTTP to the coordinators in turn, as workers would.
type gcLoad struct {
	jobs, steps, epochs int
	// legacy commits each step point as a replicated report, as every
	// report was before the metrics store: the baseline.
	legacy bool
	// end is when the jobs end.
	end time.Time
}

// gcTune is the configuration of the GC test and benchmark: no automatic
// scheduling or collection (the test calls collect), no automatic
// snapshots (measure takes them), a short trailing log.
func gcTune(cfg *Config) {
	cfg.SchedulerInterval = time.Hour
	cfg.GC.Interval = time.Hour
	cfg.GC.JobRetention = time.Hour
	cfg.GC.ProgressInterval = time.Hour
	cfg.SnapshotInterval = time.Hour
	cfg.SnapshotThreshold = 1 << 40
	cfg.TrailingLogs = 1024
	cfg.ApplyTimeout = 30 * time.Second
	// The load saturates this machine's cores: Raft timings that do not
	// take that for a dead leader.
	cfg.HeartbeatTimeout = 2 * time.Second
	cfg.ElectionTimeout = 2 * time.Second
	cfg.LeaderLeaseTimeout = time.Second
}

// drive commits the load through leader l of c.
func (ld gcLoad) drive(tb testing.TB, c *testCluster, l *node) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	s := l.srv
	must := func(resp any, err error) any {
		if err != nil {
			tb.Fatal(err)
		}
		return resp
	}
	must(s.raftApply(ctx, structs.WorkerUpsertRequestType, &structs.WorkerUpsertRequest{
		ID: "load-w", Addr: "load-w:1", Meta: structs.WorkerMeta{Cores: 1 << 30}, Time: ld.end,
	}))
	var clients []*api.Client
	for _, n := range c.live() {
		clients = append(clients, api.New(n.srv.HTTPAddr()))
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for range 32 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= ld.jobs || ctx.Err() != nil {
					return
				}
				if err := ld.job(ctx, s, clients[i%len(clients)], i); err != nil {
					errs <- fmt.Errorf("job %d: %w", i, err)
					cancel()
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		tb.Fatal(err)
	}
}

func (ld gcLoad) job(ctx context.Context, s *Server, cl *api.Client, i int) error {
	id := fmt.Sprintf("load-%06d", i)
	spec := testSpec(id)
	cmds := []struct {
		t   structs.MessageType
		req any
	}{
		{structs.JobSubmitRequestType, &structs.JobSubmitRequest{JobID: id, RequestID: "req-" + id, Spec: structs.NewJobSpec(spec), DatasetVersionID: shapesV1, SubmitTime: ld.end}},
		{structs.JobPlaceRequestType, &structs.JobPlaceRequest{JobID: id, Attempt: 1, Time: ld.end,
			Placements: []structs.Placement{{Rank: 0, WorkerID: "load-w", Resources: structs.Resources{Cores: 1}}}}},
	}
	for _, c := range cmds {
		if _, err := s.raftApply(ctx, c.t, c.req); err != nil {
			return err
		}
	}
	steps := make([]api.Metric, ld.steps)
	for k := range steps {
		steps[k] = api.Metric{Kind: api.MetricStep, Attempt: 1, Epoch: k * ld.epochs / ld.steps, Step: int64(k * 10), Time: ld.end,
			Values: map[string]float64{"loss": 1 / float64(k+1), "mean_loss": 1 / float64(k+1), "images_per_sec": 100}}
	}
	if ld.legacy {
		for _, m := range steps {
			m.JobID = id
			if _, err := s.raftApply(ctx, structs.MetricsReportRequestType, &structs.MetricsReportRequest{JobID: id, Metrics: []structs.Metric{serverMetric(m)}}); err != nil {
				return err
			}
		}
	} else if _, err := cl.ReportMetrics(ctx, id, steps); err != nil {
		return err
	}
	for e := range ld.epochs {
		m := structs.Metric{JobID: id, Attempt: 1, Epoch: e, Step: int64((e + 1) * ld.steps * 10 / ld.epochs), Time: ld.end,
			Values: map[string]float64{"train_loss": 0.5, "val_loss": 0.6, "val_mean_iou": 0.7, "val_pixel_accuracy": 0.9}}
		if _, err := s.raftApply(ctx, structs.MetricsReportRequestType, &structs.MetricsReportRequest{JobID: id, Metrics: []structs.Metric{m}}); err != nil {
			return err
		}
	}
	last := []struct {
		t   structs.MessageType
		req any
	}{
		{structs.CheckpointRegisterRequestType, &structs.CheckpointRegisterRequest{Checkpoint: structs.Checkpoint{
			Digest: fmt.Sprintf("sha256:%064x", i+1), JobID: id, Attempt: 1, Step: int64(ld.steps * 10), Epoch: ld.epochs - 1, Size: 1 << 20, Time: ld.end}}},
		{structs.AttemptUpdateRequestType, &structs.AttemptUpdateRequest{JobID: id, Attempt: 1, State: structs.AttemptSucceeded, Time: ld.end}},
	}
	for _, c := range last {
		if _, err := s.raftApply(ctx, c.t, c.req); err != nil {
			return err
		}
	}
	return nil
}

// gcMeasure is the size of a leader's replicated state.
type gcMeasure struct {
	// Entries is the number of entries in the Raft log, and RaftDB the
	// size of its file, before the snapshot measure takes; Compacted the
	// entries left after it.
	Entries, Compacted uint64
	RaftDB             int64
	// Snapshot is the size of the snapshot, Restore the time to restore a
	// fresh FSM from it.
	Snapshot int64
	Restore  time.Duration
	// HeapInuse and RSS (after a GC that returns freed memory to the OS)
	// are the test process's, which runs all three coordinators.
	HeapInuse, RSS            uint64
	Jobs, Checkpoints, Points int
}

// measure snapshots leader l and measures its state.
func measure(tb testing.TB, l *node) gcMeasure {
	tb.Helper()
	var m gcMeasure
	s := l.srv
	entries := func() uint64 {
		first, err1 := s.logStore.FirstIndex()
		last, err2 := s.logStore.LastIndex()
		if err1 != nil || err2 != nil || last == 0 {
			tb.Fatalf("log indexes: %v %v", err1, err2)
		}
		return last - first + 1
	}
	m.Entries = entries()
	fi, err := os.Stat(filepath.Join(l.cfg.DataDir, "raft", "raft.db"))
	if err != nil {
		tb.Fatal(err)
	}
	m.RaftDB = fi.Size()
	f := s.raft.Snapshot()
	if err := f.Error(); err != nil {
		tb.Fatalf("snapshot: %v", err)
	}
	_, rc, err := f.Open()
	if err != nil {
		tb.Fatal(err)
	}
	data, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		tb.Fatal(err)
	}
	m.Snapshot = int64(len(data))
	m.Compacted = entries()
	fsm := state.NewFSM(testLogger())
	start := time.Now()
	if err := fsm.Restore(io.NopCloser(bytes.NewReader(data))); err != nil {
		tb.Fatal(err)
	}
	m.Restore = time.Since(start)
	data = nil
	debug.FreeOSMemory() // a GC, and the freed memory back to the OS: RSS as it can be
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m.HeapInuse = ms.HeapInuse
	m.RSS = vmRSS()
	m.Jobs = len(s.State().Jobs())
	m.Checkpoints = len(s.State().Checkpoints(""))
	for _, n := range []*Server{s} {
		m.Points += n.metrics.Stats().Points
	}
	return m
}

// vmRSS returns the process's resident set size from /proc (0 elsewhere).
func vmRSS() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func (m gcMeasure) String() string {
	return fmt.Sprintf("log %d entries (%d after snapshot), raft.db %.1f MiB, snapshot %.2f MiB, restore %v, heap in use %.0f MiB, RSS %.0f MiB, %d jobs, %d checkpoints, %d step points on the leader",
		m.Entries, m.Compacted, mib(m.RaftDB), mib(m.Snapshot), m.Restore.Round(time.Millisecond), mib(int64(m.HeapInuse)), mib(int64(m.RSS)), m.Jobs, m.Checkpoints, m.Points)
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

// runGCLoad drives a load through a fresh 3-node cluster, measures, collects
// everything (the jobs ended two hours before now, past the hour of
// retention), measures again and checks that all nodes converged.
func runGCLoad(tb testing.TB, ld gcLoad) (before, after gcMeasure) {
	c := newCluster(tb, 3, gcTune)
	l := c.leader(nil)
	now := time.Now().UTC()
	ld.end = now.Add(-2 * time.Hour)
	start := time.Now()
	ld.drive(tb, c, l)
	tb.Logf("drove %d jobs in %v", ld.jobs, time.Since(start).Round(time.Millisecond))
	before = measure(tb, l)
	st, err := l.srv.collect(context.Background(), now)
	if err != nil {
		tb.Fatal(err)
	}
	if st.Jobs != ld.jobs || st.Checkpoints != ld.jobs {
		tb.Fatalf("collected %+v, want %d jobs and checkpoints", st, ld.jobs)
	}
	after = measure(tb, l)
	c.converged(c.live())
	return before, after
}

// TestGCLoad is the garbage collection benchmark in small: 200 jobs, all
// collected, the same state on every node, and a smaller snapshot.
func TestGCLoad(t *testing.T) {
	before, after := runGCLoad(t, gcLoad{jobs: 200, steps: 20, epochs: 3})
	t.Logf("before GC: %v", before)
	t.Logf("after GC:  %v", after)
	if after.Jobs != 0 || after.Checkpoints != 0 || before.Jobs != 200 {
		t.Fatalf("jobs %d→%d, checkpoints %d→%d", before.Jobs, after.Jobs, before.Checkpoints, after.Checkpoints)
	}
	if after.Snapshot >= before.Snapshot {
		t.Fatalf("snapshot %d bytes after GC, %d before", after.Snapshot, before.Snapshot)
	}
}

// TestGCBenchmark is the garbage collection benchmark of BENCHMARKS.md:
// TRAINCTL_GC_BENCH=N jobs (10000 in `make bench`) through a 3-node
// cluster, measured before and after GC; with TRAINCTL_GC_BENCH_LEGACY=1
// every step point is also committed as a replicated report, as before
// the metrics store. It does not run without the variable.
func TestGCBenchmark(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("TRAINCTL_GC_BENCH"))
	if n <= 0 {
		t.Skip("set TRAINCTL_GC_BENCH=N to run (make bench)")
	}
	legacy := os.Getenv("TRAINCTL_GC_BENCH_LEGACY") == "1"
	before, after := runGCLoad(t, gcLoad{jobs: n, steps: 20, epochs: 3, legacy: legacy})
	fmt.Printf("gc-bench jobs=%d steps=20 epochs=3 legacy=%v\n  before GC: %v\n  after GC:  %v\n", n, legacy, before, after)
}
