//go:build unix

package main

// Worker fault tests with real processes (issue 4): one `trainctl
// coordinator` and two `trainctl worker` processes; the worker running a
// training job is killed with SIGKILL, or sent SIGTERM (a spot preemption
// notice), and the job must resume on the other worker from its last
// checkpoint and finish. Helpers are in process_helpers_test.go.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/trainctl/trainctl/api"
	"github.com/trainctl/trainctl/dataset"
	"github.com/trainctl/trainctl/jobspec"
)

const (
	// workerLease is the coordinator's --worker-lease: a worker silent for
	// that long is dead and its attempt is requeued.
	workerLease = 2 * time.Second
	// workerGrace is the workers' --grace after SIGTERM.
	workerGrace = 20 * time.Second
	// minResumeStep is the checkpoint (SIGKILL) or reported (SIGTERM) step
	// the job must have reached before the signal. A fresh start reports
	// its first metrics at step 20 at the latest (the runner flushes every
	// 20 steps and at every epoch end), so a new attempt whose metrics all
	// lie beyond a checkpoint at step >= 20 did resume from it.
	minResumeStep = 20
)

// workerCluster is one bootstrapped coordinator and two idle workers, w1
// and w2, with one core each, and a small dataset version uploaded.
type workerCluster struct {
	coord   *coordProc
	ac      *api.Client // retrying, for writes
	workers []*workerProc
	dataset string // NAME@vN of the uploaded version
}

// startWorkerCluster starts the coordinator (short worker lease, frequent
// scheduling passes), uploads the dataset and starts w1 and w2, and waits
// until the coordinator lists both alive with a free core.
func startWorkerCluster(tb testing.TB) *workerCluster {
	tb.Helper()
	bin := trainctlBinary(tb)
	dataDir := tb.TempDir()
	coord := startCoord(tb, bin, dataDir, "c1", "--bootstrap",
		"--worker-lease", workerLease.String(), "--scheduler-interval", "200ms")
	wc := &workerCluster{coord: coord, ac: retryingClient(coord)}
	wc.dataset = uploadShapes(tb, wc.ac)
	for _, id := range []string{"w1", "w2"} {
		wc.workers = append(wc.workers, startWorker(tb, bin, dataDir, coord.httpAddr, id,
			"--cores", "1", "--grace", workerGrace.String(), "--heartbeat", "250ms"))
	}
	procWait(tb, 60*time.Second, "w1 and w2 alive in the cluster", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ws, err := coord.client(0).Workers(ctx)
		if err != nil {
			return err
		}
		alive := 0
		for _, w := range ws {
			if w.Status == api.WorkerAlive && w.Free.Cores >= 1 {
				alive++
			}
		}
		if alive != 2 {
			return fmt.Errorf("%d of 2 workers alive with a free core: %+v", alive, ws)
		}
		return nil
	})
	return wc
}

// stop kills every process of the cluster now (cleanup would too, at the
// end of the test or benchmark).
func (wc *workerCluster) stop() {
	for _, w := range wc.workers {
		w.kill()
	}
	wc.coord.kill()
}

// worker returns the worker process with the given id.
func (wc *workerCluster) worker(tb testing.TB, id string) *workerProc {
	tb.Helper()
	for _, w := range wc.workers {
		if w.id == id {
			return w
		}
	}
	tb.Fatalf("no worker %q", id)
	return nil
}

// other returns the id of the worker that is not id.
func (wc *workerCluster) other(id string) string {
	for _, w := range wc.workers {
		if w.id != id {
			return w.id
		}
	}
	return ""
}

// uploadShapes generates a small shapes dataset (48 examples of 32x32:
// 38 train, 10 val) in a local store and uploads it, as `trainctl dataset
// push` does; it returns the version's reference in the cluster.
func uploadShapes(tb testing.TB, ac *api.Client) string {
	tb.Helper()
	store, err := dataset.OpenStore(dataset.StoreDir(tb.TempDir()))
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cfg := dataset.ShapesConfig{N: 48, Size: 32, Seed: 5, Workers: 1}
	m, _, err := store.Register(ctx, "shapes", cfg.Meta(), func(yield func(dataset.Example) error) (dataset.Provenance, error) {
		return dataset.Provenance{Source: cfg.Source()}, dataset.GenerateShapes(ctx, cfg, yield)
	})
	if err != nil {
		tb.Fatal(err)
	}
	v, err := ac.UploadDataset(ctx, m.Name, store.DataPath(m.ID))
	if err != nil {
		tb.Fatalf("upload dataset: %v", err)
	}
	return fmt.Sprintf("%s@v%d", v.Name, v.Seq)
}

// workerJobSpec is a job of about 100 steps (10 epochs of 10 steps, a
// few seconds on one core) that checkpoints every 5 steps.
func workerJobSpec(name, ds string) jobspec.Spec {
	s := jobspec.Defaults()
	s.Name, s.Dataset = name, ds
	s.Hyperparameters.Epochs, s.Hyperparameters.Batch = 10, 4
	s.CheckpointEvery = 5
	s.MaxRestarts = 3
	s.Resources.CPUsPerRank = 1
	return s
}

// submit submits spec once (idempotent by request id) and returns the job
// id.
func (wc *workerCluster) submit(tb testing.TB, rid string, spec jobspec.Spec) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	j, err := wc.ac.SubmitJob(ctx, rid, spec)
	if err != nil {
		tb.Fatalf("submit %s: %v", rid, err)
	}
	return j.ID
}

// jobView is what the coordinator says about a job at one moment.
type jobView struct {
	job         *api.Job
	checkpoints []*api.Checkpoint
	metrics     []api.Metric
}

// view reads a job, and with full its checkpoints and metrics, from the
// coordinator without retries.
func (wc *workerCluster) view(id string, full bool) (*jobView, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c := wc.coord.client(0)
	j, err := c.Job(ctx, id)
	if err != nil {
		return nil, err
	}
	v := &jobView{job: j}
	if !full {
		return v, nil
	}
	if v.checkpoints, err = c.Checkpoints(ctx, id); err != nil {
		return nil, err
	}
	if v.metrics, err = c.JobMetrics(ctx, id); err != nil {
		return nil, err
	}
	return v, nil
}

// waitJob polls the job (with its checkpoints and metrics when full) until
// cond accepts it and returns that view.
func (wc *workerCluster) waitJob(tb testing.TB, id string, timeout time.Duration, what string, full bool, cond func(*jobView) error) *jobView {
	tb.Helper()
	var v *jobView
	procWait(tb, timeout, what, func() error {
		var err error
		if v, err = wc.view(id, full); err != nil {
			return err
		}
		if j := v.job; j.State == api.JobFailed || j.State == api.JobCancelled {
			tb.Fatalf("job %s ended %s (%s) while waiting for %s; attempts %+v", j.ID, j.State, j.Error, what, j.Attempts)
		}
		return cond(v)
	})
	return v
}

// runningOn is the worker of the job's current attempt if that attempt is
// running, else "".
func runningOn(j *api.Job) (worker string, attempt int) {
	a := j.CurrentAttempt()
	if a == nil || a.State != api.AttemptRunning || len(a.Nodes) != 1 {
		return "", 0
	}
	return a.Nodes[0], a.Number
}

// latestCheckpoint is the checkpoint of the given attempt at the highest
// step, or nil.
func latestCheckpoint(cps []*api.Checkpoint, attempt int) *api.Checkpoint {
	var best *api.Checkpoint
	for _, c := range cps {
		if c.Attempt == attempt && (best == nil || c.Step > best.Step) {
			best = c
		}
	}
	return best
}

// attemptSteps returns the steps of the attempt's metric reports, in
// commit order.
func attemptSteps(ms []api.Metric, attempt int) []int64 {
	var steps []int64
	for _, m := range ms {
		if m.Attempt == attempt {
			steps = append(steps, m.Step)
		}
	}
	return steps
}

// checkResumed checks that attempt 2 of the finished job resumed from
// attempt 1's newest checkpoint and returns that checkpoint: attempt 2's
// ResumeFrom is its digest, it is at step >= minStep, and every metric
// attempt 2 reported is past it.
func checkResumed(tb testing.TB, v *jobView, minStep int64) *api.Checkpoint {
	tb.Helper()
	j := v.job
	if len(j.Attempts) != 2 {
		tb.Fatalf("job %s has %d attempts, want 2: %+v", j.ID, len(j.Attempts), j.Attempts)
	}
	last := latestCheckpoint(v.checkpoints, 1)
	if last == nil {
		tb.Fatalf("attempt 1 of job %s registered no checkpoint", j.ID)
	}
	if last.Step < minStep {
		tb.Fatalf("attempt 1's newest checkpoint is at step %d, before step %d", last.Step, minStep)
	}
	if got := j.Attempts[1].ResumeFrom; got != last.Digest {
		tb.Fatalf("attempt 2 resumed from %q, want attempt 1's newest checkpoint %s (step %d)", got, last.Digest, last.Step)
	}
	steps := attemptSteps(v.metrics, 2)
	if len(steps) == 0 {
		tb.Fatalf("attempt 2 reported no metrics")
	}
	if first := slices.Min(steps); first <= last.Step {
		tb.Fatalf("attempt 2 reported step %d, not past the checkpoint it resumed from (step %d): it restarted; steps %v", first, last.Step, steps)
	}
	return last
}

// killRecovery is what one SIGKILL of a worker cost.
type killRecovery struct {
	placed  time.Duration // SIGKILL to the job's next attempt running on the other worker
	resumed time.Duration // SIGKILL to that attempt's first metrics report
}

// sigkillRunningWorker runs a job on wc, SIGKILLs the worker running it
// once it has a checkpoint at step >= minResumeStep, and checks that the
// job is rescheduled on the other worker, resumes from the newest
// checkpoint and succeeds.
func sigkillRunningWorker(tb testing.TB, wc *workerCluster, rid string) killRecovery {
	tb.Helper()
	id := wc.submit(tb, rid, workerJobSpec(rid, wc.dataset))

	var victim string
	var before *api.Checkpoint
	wc.waitJob(tb, id, 90*time.Second, fmt.Sprintf("job %s running with a checkpoint at step >= %d", id, minResumeStep), true, func(v *jobView) error {
		w, n := runningOn(v.job)
		if n != 1 {
			return fmt.Errorf("job %s is %s, attempt %d", id, v.job.State, n)
		}
		if c := latestCheckpoint(v.checkpoints, 1); c == nil || c.Step < minResumeStep {
			return fmt.Errorf("job %s on %s: no checkpoint at step >= %d yet (%d checkpoints)", id, w, minResumeStep, len(v.checkpoints))
		}
		victim, before = w, latestCheckpoint(v.checkpoints, 1)
		return nil
	})
	survivor := wc.other(victim)
	killedAt := time.Now()
	wc.worker(tb, victim).kill()
	tb.Logf("SIGKILLed %s running job %s; its newest checkpoint was at step %d", victim, id, before.Step)

	var rec killRecovery
	wc.waitJob(tb, id, 60*time.Second, "job "+id+" running on "+survivor, false, func(v *jobView) error {
		if w, n := runningOn(v.job); w != survivor || n < 2 {
			return fmt.Errorf("job %s is %s on %q, attempt %d", id, v.job.State, w, n)
		}
		rec.placed = time.Since(killedAt)
		return nil
	})
	wc.waitJob(tb, id, 60*time.Second, "metrics of job "+id+" from "+survivor, true, func(v *jobView) error {
		if len(attemptSteps(v.metrics, 2)) == 0 && v.job.State != api.JobSucceeded {
			return errors.New("attempt 2 has reported no metrics")
		}
		rec.resumed = time.Since(killedAt)
		return nil
	})
	tb.Logf("job %s running on %s %v after the SIGKILL, reporting progress after %v (worker lease %v)",
		id, survivor, rec.placed.Round(time.Millisecond), rec.resumed.Round(time.Millisecond), workerLease)

	v := wc.waitJob(tb, id, 120*time.Second, "job "+id+" to succeed", true, func(v *jobView) error {
		if v.job.State != api.JobSucceeded {
			return fmt.Errorf("job %s is %s at step %d", id, v.job.State, v.job.Progress.Step)
		}
		return nil
	})
	j := v.job
	if a := j.Attempts[0]; a.State != api.AttemptFailed || a.FailedNode != victim {
		tb.Fatalf("attempt 1 on the killed %s ended %s, failed node %q; want failed on %s", victim, a.State, a.FailedNode, victim)
	}
	if j.Restarts != 1 || !slices.Equal(j.ExcludedNodes, []string{victim}) {
		tb.Fatalf("job %s: restarts %d, excluded %v; want 1 and [%s]", id, j.Restarts, j.ExcludedNodes, victim)
	}
	if a := j.Attempts[1]; a.State != api.AttemptSucceeded || !slices.Equal(a.Nodes, []string{survivor}) {
		tb.Fatalf("attempt 2: %s on %v, want succeeded on %s", a.State, a.Nodes, survivor)
	}
	// A checkpoint upload in flight at the kill may still have been
	// registered: the resume point is attempt 1's newest checkpoint,
	// at least the one seen before the kill.
	last := checkResumed(tb, v, before.Step)
	tb.Logf("attempt 2 resumed from step %d (newest checkpoint seen before the kill: step %d); first steps reported %v",
		last.Step, before.Step, attemptSteps(v.metrics, 2)[:min(3, len(attemptSteps(v.metrics, 2)))])
	return rec
}

// TestProcessWorkerSIGKILL kills the worker running a job with SIGKILL:
// after the worker lease the job runs on the other worker, resumes from
// the last checkpoint it registered and succeeds.
func TestProcessWorkerSIGKILL(t *testing.T) {
	wc := startWorkerCluster(t)
	sigkillRunningWorker(t, wc, "sigkill")
}

// BenchmarkProcessWorkerKillRecovery measures the time from a worker's
// SIGKILL to its job running again on another worker (recovery-ms: the
// new attempt placed there; resume-ms: its first metrics report), each
// iteration on a fresh cluster with a 2 s worker lease, which dominates.
//
//	go test -run '^$' -bench ProcessWorkerKillRecovery -benchtime 5x ./cmd/trainctl/
func BenchmarkProcessWorkerKillRecovery(b *testing.B) {
	var placed, resumed []time.Duration
	for b.Loop() {
		wc := startWorkerCluster(b)
		r := sigkillRunningWorker(b, wc, fmt.Sprintf("bench-%d", len(placed)))
		wc.stop()
		placed, resumed = append(placed, r.placed), append(resumed, r.resumed)
	}
	ms := func(ds []time.Duration) (median, worst float64) {
		slices.Sort(ds)
		return float64(ds[len(ds)/2]) / 1e6, float64(ds[len(ds)-1]) / 1e6
	}
	med, mx := ms(placed)
	b.ReportMetric(med, "recovery-ms")
	b.ReportMetric(mx, "recovery-max-ms")
	med, mx = ms(resumed)
	b.ReportMetric(med, "resume-ms")
	b.ReportMetric(mx, "resume-max-ms")
}

// TestProcessWorkerSIGTERM sends SIGTERM (a preemption notice) to the
// worker running a job: it checkpoints at or after the last step it
// reported, hands the attempt back as preempted (no restart counted) and
// exits 0 within its grace period; the job resumes on the other worker
// from that checkpoint and succeeds.
func TestProcessWorkerSIGTERM(t *testing.T) {
	wc := startWorkerCluster(t)
	id := wc.submit(t, "sigterm", workerJobSpec("sigterm", wc.dataset))

	var victim string
	wc.waitJob(t, id, 90*time.Second, fmt.Sprintf("job %s running and past step %d", id, minResumeStep), false, func(v *jobView) error {
		w, n := runningOn(v.job)
		if n != 1 || v.job.Progress.Step < minResumeStep {
			return fmt.Errorf("job %s is %s on %q, attempt %d, at step %d", id, v.job.State, w, n, v.job.Progress.Step)
		}
		victim = w
		return nil
	})
	// The last step reported before the notice: read it just before it.
	v, err := wc.view(id, false)
	if err != nil {
		t.Fatal(err)
	}
	reported := v.job.Progress.Step
	if w, n := runningOn(v.job); w != victim || n != 1 {
		t.Fatalf("job %s moved to %q (attempt %d) before the notice", id, w, n)
	}
	survivor := wc.other(victim)
	w := wc.worker(t, victim)
	noticeAt := time.Now()
	w.signal(syscall.SIGTERM)
	t.Logf("SIGTERM to %s running job %s, last reported step %d", victim, id, reported)

	st := w.waitExit(workerGrace + 10*time.Second)
	exitAfter := time.Since(noticeAt)
	switch {
	case st == nil:
		t.Fatalf("worker %s still running %v after SIGTERM (grace %v)", victim, exitAfter.Round(time.Millisecond), workerGrace)
	case st.ExitCode() != 0:
		t.Fatalf("worker %s exited %v after SIGTERM, want status 0", victim, st)
	case exitAfter > workerGrace:
		t.Fatalf("worker %s exited %v after SIGTERM, beyond its grace %v", victim, exitAfter.Round(time.Millisecond), workerGrace)
	}

	wc.waitJob(t, id, 60*time.Second, "job "+id+" running on "+survivor, false, func(v *jobView) error {
		if w, n := runningOn(v.job); w != survivor || n < 2 {
			return fmt.Errorf("job %s is %s on %q, attempt %d", id, v.job.State, w, n)
		}
		return nil
	})
	movedAfter := time.Since(noticeAt)
	t.Logf("%s exited 0 %v after SIGTERM; job %s running on %s %v after it",
		victim, exitAfter.Round(time.Millisecond), id, survivor, movedAfter.Round(time.Millisecond))

	v = wc.waitJob(t, id, 120*time.Second, "job "+id+" to succeed", true, func(v *jobView) error {
		if v.job.State != api.JobSucceeded {
			return fmt.Errorf("job %s is %s at step %d", id, v.job.State, v.job.Progress.Step)
		}
		return nil
	})
	j := v.job
	if a := j.Attempts[0]; a.State != api.AttemptPreempted || a.FailedNode != "" {
		t.Fatalf("attempt 1 on %s ended %s (failed node %q, %s); want preempted", victim, a.State, a.FailedNode, a.Error)
	}
	if j.Restarts != 0 || len(j.ExcludedNodes) != 0 {
		t.Fatalf("job %s: restarts %d, excluded %v after a preemption; want none", id, j.Restarts, j.ExcludedNodes)
	}
	if a := j.Attempts[1]; a.State != api.AttemptSucceeded || !slices.Equal(a.Nodes, []string{survivor}) {
		t.Fatalf("attempt 2: %s on %v, want succeeded on %s", a.State, a.Nodes, survivor)
	}
	// The stop checkpoint is at or after the last reported step: no step
	// reported before the notice is lost.
	last := checkResumed(t, v, reported)
	// Stronger: every step attempt 1 reported, including the batch it
	// flushed after the notice, is in the checkpoint it handed back.
	stoppedAt := slices.Max(attemptSteps(v.metrics, 1))
	if last.Step < stoppedAt {
		t.Fatalf("attempt 1 reported step %d but handed back a checkpoint at step %d", stoppedAt, last.Step)
	}
	t.Logf("attempt 1 stopped at step %d and checkpointed it (last reported before the notice: %d); attempt 2 resumed from it, first steps %v",
		stoppedAt, reported, attemptSteps(v.metrics, 2)[:min(3, len(attemptSteps(v.metrics, 2)))])
}
