package coordinator

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/trainctl/trainctl/api"
	"github.com/trainctl/trainctl/coordinator/structs"
	"github.com/trainctl/trainctl/jobspec"
)

// fakeWorker is a worker agent driven by a test through the HTTP API.
type fakeWorker struct {
	t    testing.TB
	id   string
	meta api.WorkerMeta
	cl   *api.Client
}

// addWorker registers a worker with the given cores through all live
// servers.
func (c *testCluster) addWorker(id string, cores int) *fakeWorker {
	c.t.Helper()
	w := &fakeWorker{t: c.t, id: id, meta: api.WorkerMeta{Cores: cores}, cl: c.client()}
	w.register(context.Background())
	return w
}

func (w *fakeWorker) register(ctx context.Context) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if _, err := w.cl.RegisterWorker(ctx, api.RegisterWorkerBody{ID: w.id, Addr: w.id + ":1", Meta: w.meta}); err != nil {
		w.t.Fatalf("register %s: %v", w.id, err)
	}
}

// heartbeat registers the worker every interval until the returned stop
// is called or the test ends.
func (w *fakeWorker) heartbeat(interval time.Duration) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	stop = func() { cancel(); <-done }
	w.t.Cleanup(stop)
	go func() {
		defer close(done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			body := api.RegisterWorkerBody{ID: w.id, Addr: w.id + ":1", Meta: w.meta}
			if _, err := w.cl.RegisterWorker(ctx, body); err != nil && ctx.Err() == nil {
				w.t.Errorf("heartbeat %s: %v", w.id, err)
			}
		}
	}()
	return stop
}

// assignment waits until the worker has an assignment of attempt n of job.
func (w *fakeWorker) assignment(jobID string, n int) api.WorkerAssignment {
	w.t.Helper()
	var got api.WorkerAssignment
	waitFor(w.t, 10*time.Second, fmt.Sprintf("attempt %d of job %s on %s", n, jobID, w.id), func() error {
		as, err := w.cl.Assignments(context.Background(), w.id)
		if err != nil {
			return err
		}
		for _, a := range as {
			if a.JobID == jobID && a.Attempt == n {
				got = a
				return nil
			}
		}
		return fmt.Errorf("assignments %+v", as)
	})
	return got
}

// report ends or updates attempt n of a job.
func (w *fakeWorker) report(jobID string, n int, state api.AttemptState, msg string) *api.Job {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	j, err := w.cl.ReportAttempt(ctx, jobID, n, api.AttemptReportBody{WorkerID: w.id, State: state, Error: msg})
	if err != nil {
		w.t.Fatalf("%s reports %s of job %s: %v", w.id, state, jobID, err)
	}
	return j
}

func submit(t *testing.T, cl *api.Client, spec jobspec.Spec) *api.Job {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	j, err := cl.SubmitJob(ctx, "req-"+spec.Name, spec)
	if err != nil {
		t.Fatalf("submit %s: %v", spec.Name, err)
	}
	return j
}

// waitJob waits until cond holds for the job as the given server sees it.
func waitJob(t *testing.T, s *Server, id string, what string, cond func(*api.Job) error) *api.Job {
	t.Helper()
	var j *api.Job
	waitFor(t, 10*time.Second, what, func() error {
		sj, err := s.State().Job(id)
		if err != nil {
			return err
		}
		j = convertPtr(sj, apiJob)
		return cond(j)
	})
	return j
}

func inState(want api.JobState) func(*api.Job) error {
	return func(j *api.Job) error {
		if j.State != want {
			return fmt.Errorf("job %s is %s, want %s", j.ID, j.State, want)
		}
		return nil
	}
}

func TestSchedulePlacesJob(t *testing.T) {
	c := newCluster(t, 1, nil)
	s := c.nodes[0].srv
	w := c.addWorker("w1", 4)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	j := submit(t, w.cl, testSpec("place"))
	if j.DatasetVersionID != shapesV1 {
		t.Fatalf("dataset version %q, want %q", j.DatasetVersionID, shapesV1)
	}
	a := w.assignment(j.ID, 1)
	if a.Rank != 0 || !slices.Equal(a.Nodes, []string{"w1"}) || a.DatasetVersionID != shapesV1 || a.Spec.Name != "place" || a.ResumeFrom != "" {
		t.Fatalf("assignment %+v", a)
	}
	if wk, _ := s.State().Worker("w1"); wk.Free.Cores != 3 {
		t.Fatalf("free cores %d after placing one rank, want 3", wk.Free.Cores)
	}

	// Progress, a metrics batch and a checkpoint.
	if _, err := w.cl.ReportAttempt(ctx, j.ID, 1, api.AttemptReportBody{WorkerID: "w1", State: api.AttemptRunning, Step: 10, Metrics: map[string]float64{"loss": 0.5}}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.cl.ReportMetrics(ctx, j.ID, []api.Metric{{Attempt: 1, Epoch: 1, Step: 20, Values: map[string]float64{"loss": 0.4}}}); err != nil {
		t.Fatal(err)
	}
	ckpt := testCheckpoint("checkpoint at step 20")
	digest := uploadBlob(t, s.HTTPAddr(), ckpt)
	cp, err := w.cl.RegisterCheckpoint(ctx, api.RegisterCheckpointBody{Digest: digest, JobID: j.ID, Attempt: 1, Step: 20, Epoch: 1})
	if err != nil {
		t.Fatal(err)
	}
	if cp.Size != int64(len(ckpt)) {
		t.Fatalf("checkpoint size %d", cp.Size)
	}

	done := w.report(j.ID, 1, api.AttemptSucceeded, "")
	if done.State != api.JobSucceeded || done.Progress.Step != 20 || done.LatestCheckpoint != digest {
		t.Fatalf("job after success: state %s, progress %+v, checkpoint %q", done.State, done.Progress, done.LatestCheckpoint)
	}
	if ms, _ := w.cl.JobMetrics(ctx, j.ID); len(ms) != 2 {
		t.Fatalf("metrics %+v, want 2 reports", ms)
	}
	// A retried report is answered with the job; another outcome conflicts.
	w.report(j.ID, 1, api.AttemptSucceeded, "")
	if _, err := w.cl.ReportAttempt(ctx, j.ID, 1, api.AttemptReportBody{WorkerID: "w1", State: api.AttemptFailed}); !errors.Is(err, api.ErrConflict) {
		t.Fatalf("failing a finished attempt: %v, want a conflict", err)
	}
	if wk, _ := s.State().Worker("w1"); wk.Free.Cores != 4 {
		t.Fatalf("free cores %d after the job ended, want 4", wk.Free.Cores)
	}
}

func TestGangWaitsUntilAllRanksFit(t *testing.T) {
	c := newCluster(t, 1, nil)
	s := c.nodes[0].srv
	w1 := c.addWorker("w1", 2)
	spec := testSpec("gang")
	spec.Resources = jobspec.Resources{Ranks: 2, CPUsPerRank: 2}
	j := submit(t, w1.cl, spec)

	// One pass, run here, decides while only one rank fits: nothing is placed.
	if err := s.schedulePass(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.State().Job(j.ID); got.State != structs.JobPending || len(got.Attempts) != 0 {
		t.Fatalf("job %s with %d attempts, want pending with none", got.State, len(got.Attempts))
	}
	if as := s.State().Assignments(""); len(as) != 0 {
		t.Fatalf("assignments %+v while the gang does not fit", as)
	}

	w2 := c.addWorker("w2", 2)
	a1, a2 := w1.assignment(j.ID, 1), w2.assignment(j.ID, 1)
	if a1.Rank == a2.Rank || len(a1.Nodes) != 2 {
		t.Fatalf("ranks %d and %d on nodes %v", a1.Rank, a2.Rank, a1.Nodes)
	}
}

func TestFailedAttemptRetriesElsewhere(t *testing.T) {
	c := newCluster(t, 1, nil)
	s := c.nodes[0].srv
	workers := map[string]*fakeWorker{}
	for _, id := range []string{"w1", "w2", "w3"} {
		workers[id] = c.addWorker(id, 1)
	}
	spec := testSpec("flaky")
	spec.MaxRestarts = 1
	j := submit(t, workers["w1"].cl, spec)

	var failed []string
	for n := 1; n <= 2; n++ {
		got := waitJob(t, s, j.ID, fmt.Sprintf("attempt %d placed", n), func(j *api.Job) error {
			if len(j.Attempts) != n {
				return fmt.Errorf("%d attempts", len(j.Attempts))
			}
			return nil
		})
		node := got.Attempts[n-1].Nodes[0]
		if slices.Contains(failed, node) {
			t.Fatalf("attempt %d placed on %s, which failed the job before", n, node)
		}
		w := workers[node]
		w.assignment(j.ID, n)
		after := w.report(j.ID, n, api.AttemptFailed, "trainer crashed")
		failed = append(failed, node)
		if a := after.Attempts[n-1]; a.State != api.AttemptFailed || a.FailedNode != node {
			t.Fatalf("attempt %d after its failure: %+v", n, a)
		}
		if n == 1 && (after.State != api.JobPending || !slices.Contains(after.ExcludedNodes, node)) {
			t.Fatalf("after the first failure: job %s excluding %v, want pending excluding %s", after.State, after.ExcludedNodes, node)
		}
		if n == 2 && after.State != api.JobFailed {
			t.Fatalf("after max_restarts: job %s, want failed", after.State)
		}
	}
	final, _ := s.State().Job(j.ID)
	if final.Restarts != 1 || len(final.Attempts) != 2 || final.Error == "" {
		t.Fatalf("final job: restarts %d, %d attempts, error %q", final.Restarts, len(final.Attempts), final.Error)
	}
	// A failed job is not placed again.
	if err := s.schedulePass(context.Background()); err != nil {
		t.Fatal(err)
	}
	if again, _ := s.State().Job(j.ID); len(again.Attempts) != 2 {
		t.Fatalf("failed job placed again: %d attempts", len(again.Attempts))
	}
}

func TestPreemptedAttemptRequeuesWithoutCounting(t *testing.T) {
	c := newCluster(t, 1, nil)
	s := c.nodes[0].srv
	w := c.addWorker("w1", 1)
	spec := testSpec("spot")
	spec.MaxRestarts = 0
	j := submit(t, w.cl, spec)
	w.assignment(j.ID, 1)
	digest := uploadBlob(t, s.HTTPAddr(), testCheckpoint("checkpoint on notice"))
	if _, err := w.cl.RegisterCheckpoint(context.Background(), api.RegisterCheckpointBody{Digest: digest, JobID: j.ID, Attempt: 1, Step: 7}); err != nil {
		t.Fatal(err)
	}
	w.report(j.ID, 1, api.AttemptPreempted, "")
	a := w.assignment(j.ID, 2) // the same node: a preemption excludes nothing
	if a.ResumeFrom != digest {
		t.Fatalf("attempt 2 resumes from %q, want %q", a.ResumeFrom, digest)
	}
	if got, _ := s.State().Job(j.ID); got.Restarts != 0 || len(got.ExcludedNodes) != 0 {
		t.Fatalf("preemption counted: restarts %d, excluded %v", got.Restarts, got.ExcludedNodes)
	}
}

func TestPriorityOrdersPlacements(t *testing.T) {
	c := newCluster(t, 1, nil)
	s := c.nodes[0].srv
	cl := c.client()
	low, high := testSpec("low"), testSpec("high")
	low.Priority, high.Priority = 10, 90
	jl := submit(t, cl, low)
	jh := submit(t, cl, high)

	w := c.addWorker("w1", 1) // room for one job at a time
	w.assignment(jh.ID, 1)
	if got, _ := s.State().Job(jl.ID); got.State != structs.JobPending {
		t.Fatalf("low-priority job %s while the high one holds the only core", got.State)
	}
	w.report(jh.ID, 1, api.AttemptSucceeded, "")
	w.assignment(jl.ID, 1)
}

// TestPassCommitsOneEntry: the placements of one pass are one JobPlaceBatch
// entry, so every assignment it made has the same CreateIndex.
func TestPassCommitsOneEntry(t *testing.T) {
	c := newCluster(t, 1, nil)
	s := c.nodes[0].srv
	cl := c.client()
	var ids []string
	for i := range 3 {
		ids = append(ids, submit(t, cl, testSpec(fmt.Sprintf("batch-%d", i))).ID)
	}
	c.addWorker("w1", 4) // room for all three: the pass it kicks places them
	for _, id := range ids {
		waitJob(t, s, id, "running", inState(api.JobRunning))
	}
	as := s.State().Assignments("w1")
	if len(as) != 3 {
		t.Fatalf("assignments %+v, want 3", as)
	}
	for _, a := range as[1:] {
		if a.CreateIndex != as[0].CreateIndex {
			t.Fatalf("assignments created at indexes %d and %d, want one entry", as[0].CreateIndex, a.CreateIndex)
		}
	}
}

func TestSchedulingSurvivesFailover(t *testing.T) {
	c := newCluster(t, 3, nil)
	w := c.addWorker("w1", 2)
	w.heartbeat(100 * time.Millisecond)
	j1 := submit(t, w.cl, testSpec("before"))
	w.assignment(j1.ID, 1)

	old := c.leader(nil)
	c.stop(slices.Index(c.nodes, old))
	l := c.leader(nil)
	t.Logf("leader %s -> %s", old.cfg.NodeID, l.cfg.NodeID)

	j2 := submit(t, w.cl, testSpec("after"))
	w.assignment(j2.ID, 1)
	w.report(j1.ID, 1, api.AttemptSucceeded, "")
	w.report(j2.ID, 1, api.AttemptSucceeded, "")
	for _, n := range c.live() {
		waitJob(t, n.srv, j2.ID, "job done everywhere", inState(api.JobSucceeded))
	}
}

func TestExpiredLeaseRequeuesAttempts(t *testing.T) {
	const lease = 1500 * time.Millisecond
	c := newCluster(t, 1, func(cfg *Config) { cfg.WorkerLease = lease })
	s := c.nodes[0].srv
	silent := c.addWorker("w1", 1)
	stop := silent.heartbeat(lease / 10)
	spec := testSpec("lost")
	spec.MaxRestarts = 1
	j := submit(t, silent.cl, spec)
	silent.assignment(j.ID, 1)
	stop() // and silent from now on

	live := c.addWorker("w2", 1)
	live.heartbeat(lease / 10)
	live.assignment(j.ID, 2)

	wk, _ := s.State().Worker("w1")
	got, _ := s.State().Job(j.ID)
	if wk.Status != structs.WorkerDead || got.Restarts != 1 || !slices.Equal(got.ExcludedNodes, []string{"w1"}) ||
		got.Attempts[0].State != structs.AttemptFailed || got.Attempts[0].FailedNode != "w1" {
		t.Fatalf("worker %s; job restarts %d, excluded %v, attempt 1 %+v", wk.Status, got.Restarts, got.ExcludedNodes, got.Attempts[0])
	}
	if w2, _ := s.State().Worker("w2"); w2.Status != structs.WorkerAlive {
		t.Fatalf("heartbeating worker is %s", w2.Status)
	}

	// A dead worker that comes back is alive again.
	silent.register(context.Background())
	if wk, _ := s.State().Worker("w1"); wk.Status != structs.WorkerAlive {
		t.Fatalf("re-registered worker is %s", wk.Status)
	}
}

// uploadBlob puts b into the artifact store of the server at addr and
// returns its digest.
func uploadBlob(t *testing.T, addr string, b []byte) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d := artifactDigest(b)
	if err := newArtifactClient().Push(ctx, addr, d, bytes.NewReader(b), int64(len(b))); err != nil {
		t.Fatalf("upload blob to %s: %v", addr, err)
	}
	return d
}
