package worker

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trainctl/trainctl/api"
	"github.com/trainctl/trainctl/artifact"
	"github.com/trainctl/trainctl/coordinator"
	"github.com/trainctl/trainctl/dataset"
	"github.com/trainctl/trainctl/trainer"
)

// startCoordinator starts a single-voter coordinator on loopback ports and
// waits for it to lead.
func startCoordinator(t testing.TB, tune ...func(*coordinator.Config)) *coordinator.Server {
	t.Helper()
	cfg := coordinator.DefaultConfig()
	cfg.NodeID = "c1"
	cfg.DataDir = t.TempDir()
	cfg.RaftAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Bootstrap = true
	cfg.HeartbeatTimeout, cfg.ElectionTimeout = 300*time.Millisecond, 300*time.Millisecond
	cfg.LeaderLeaseTimeout, cfg.CommitTimeout = 150*time.Millisecond, 5*time.Millisecond
	cfg.RetryInterval = 50 * time.Millisecond
	cfg.SchedulerInterval = 100 * time.Millisecond
	cfg.BlobCatchUpInterval = 100 * time.Millisecond
	cfg.Logger = quietLogger()
	for _, f := range tune {
		f(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	srv, err := coordinator.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown() })
	waitUntil(t, 15*time.Second, "the coordinator to lead", func() error {
		if !srv.IsLeader() {
			return errors.New("not leader")
		}
		if _, err := srv.State().Server("c1"); err != nil {
			return err
		}
		return nil
	})
	return srv
}

// waitUntil polls cond until it returns nil, failing after timeout.
func waitUntil(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// uploadShapes uploads the test dataset to the coordinator as shapes@v1.
func uploadShapes(t testing.TB, ac *api.Client) dataset.Manifest {
	t.Helper()
	st, man := shapesStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	v, err := ac.UploadDataset(ctx, "shapes", st.DataPath(man.ID))
	if err != nil {
		t.Fatal(err)
	}
	if v.ID != man.ID || v.Seq != 1 || v.Blob == "" {
		t.Fatalf("uploaded version %+v, want id %s seq 1 with a blob", v, man.ID)
	}
	again, err := ac.UploadDataset(ctx, "shapes", st.DataPath(man.ID))
	if err != nil || again.ID != v.ID || again.Seq != 1 {
		t.Fatalf("second upload: %+v, %v", again, err)
	}
	return man
}

// testAgent is a running Agent.
type testAgent struct {
	agent *Agent
	stop  func() // the stop notice; waits for Run to return
}

// startAgent runs an agent with the tiny model until the test ends or stop.
func startAgent(t *testing.T, id string, srv *coordinator.Server, hook func(trainer.Progress)) *testAgent {
	return startAgentDir(t, id, t.TempDir(), srv, hook, nil)
}

// runContexts is a DatasetSource that records the context of each run
// (Runner.Run passes its own to Open).
type runContexts struct {
	DatasetSource
	ctxs chan context.Context
}

func (r *runContexts) Open(ctx context.Context, ref, id string) (*dataset.Version, string, error) {
	select {
	case r.ctxs <- ctx:
	default:
	}
	return r.DatasetSource.Open(ctx, ref, id)
}

func startAgentDir(t testing.TB, id, dir string, srv *coordinator.Server, hook func(trainer.Progress), runs *runContexts, tune ...func(*AgentConfig)) *testAgent {
	t.Helper()
	cfg := AgentConfig{
		ID: id, Coordinators: []string{srv.HTTPAddr()}, Cores: 2, WorkDir: dir,
		HeartbeatInterval: 200 * time.Millisecond, PollInterval: 50 * time.Millisecond,
		Grace: 20 * time.Second, ReportEvery: 2, ReportInterval: time.Hour, Logger: quietLogger(),
		tuneRunner: func(c *RunnerConfig) {
			c.model = tinyModel()
			c.stepHook = hook
			if runs != nil {
				runs.DatasetSource = c.Datasets
				c.Datasets = runs
			}
		},
	}
	for _, f := range tune {
		f(&cfg)
	}
	a, err := NewAgent(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var once sync.Once
	ta := &testAgent{agent: a, stop: func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("agent %s: Run: %v", id, err)
				}
			case <-time.After(30 * time.Second):
				t.Errorf("agent %s did not stop within 30s of its notice", id)
			}
		})
	}}
	t.Cleanup(ta.stop)
	return ta
}

func submit(t *testing.T, ac *api.Client, epochs int) *api.Job {
	t.Helper()
	spec := testSpec()
	spec.Hyperparameters.Epochs = epochs
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	j, err := ac.SubmitJob(ctx, "req-"+t.Name(), spec)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func waitJob(t *testing.T, ac *api.Client, id string, want api.JobState) *api.Job {
	t.Helper()
	var j *api.Job
	waitUntil(t, 60*time.Second, "job "+id+" "+string(want), func() error {
		var err error
		if j, err = ac.Job(context.Background(), id); err != nil {
			return err
		}
		if j.State != want {
			if j.State.Terminal() {
				t.Fatalf("job %s ended %s (%s), want %s", id, j.State, j.Error, want)
			}
			return fmt.Errorf("state %s", j.State)
		}
		return nil
	})
	return j
}

// TestAgentRunsJob: a dataset uploaded to a one-node cluster, a job
// submitted, and an agent that runs it to success, reporting metrics and
// checkpoints whose blobs land in the coordinator's artifact store.
func TestAgentRunsJob(t *testing.T) {
	srv := startCoordinator(t)
	ac := api.New(srv.HTTPAddr())
	man := uploadShapes(t, ac)
	startAgent(t, "w1", srv, nil)
	j := submit(t, ac, 1)
	if j.DatasetVersionID != man.ID {
		t.Fatalf("job dataset version %s, want %s", j.DatasetVersionID, man.ID)
	}
	j = waitJob(t, ac, j.ID, api.JobSucceeded)
	if len(j.Attempts) != 1 || j.Attempts[0].Nodes[0] != "w1" || j.Attempts[0].State != api.AttemptSucceeded {
		t.Errorf("attempts %+v", j.Attempts)
	}
	if j.Progress.Step != testStepsEpoch || j.Progress.Metrics["val_mean_iou"] <= 0 {
		t.Errorf("progress %+v, want step %d with val_mean_iou", j.Progress, testStepsEpoch)
	}
	ctx := context.Background()
	ms, err := ac.JobMetrics(ctx, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	var epochReports int
	for _, m := range ms {
		if _, ok := m.Values["val_mean_iou"]; ok && m.Attempt == 1 {
			epochReports++
		}
	}
	if epochReports < 1 {
		t.Errorf("metrics %+v: no epoch report", ms)
	}
	cps, err := ac.Checkpoints(ctx, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(cps) == 0 || j.LatestCheckpoint == "" {
		t.Fatalf("checkpoints %+v, latest %q", cps, j.LatestCheckpoint)
	}
	blobs := artifact.NewClient(artifact.ClientConfig{})
	for _, c := range cps {
		if size, err := blobs.Stat(ctx, srv.HTTPAddr(), c.Digest); err != nil || size != c.Size {
			t.Errorf("checkpoint %s step %d: blob size %d, %v (record says %d)", c.Digest, c.Step, size, err, c.Size)
		}
	}
	// The coordinator serves the version over Flight from its own store.
	if !srv.DatasetStore().HasObject(man.ID) {
		t.Errorf("coordinator's dataset store lacks %s", man.ID)
	}
}

// TestAgentPreemptResume: an agent stopped (its notice) mid-run
// checkpoints and hands the job back; a second agent resumes it from that
// checkpoint, continuing at the next step, and finishes it.
func TestAgentPreemptResume(t *testing.T) {
	srv := startCoordinator(t)
	ac := api.New(srv.HTTPAddr())
	uploadShapes(t, ac)

	const stopAt = 3
	reached := make(chan struct{})
	var once sync.Once
	release := make(chan struct{})
	a := startAgent(t, "w1", srv, func(p trainer.Progress) {
		if p.Step == stopAt {
			once.Do(func() { close(reached) })
			<-release // hold the trainer at step 3 until the notice
		}
	})
	j := submit(t, ac, 2)
	select {
	case <-reached:
	case <-time.After(60 * time.Second):
		t.Fatal("the first agent did not reach step 3")
	}
	go func() {
		// The notice cancels the run's context before the trainer takes
		// another step; release the hook once the agent is stopping.
		waitWithdrawn(t, ac)
		close(release)
	}()
	a.stop()

	j = waitJob(t, ac, j.ID, api.JobPending)
	if len(j.Attempts) != 1 || j.Attempts[0].State != api.AttemptPreempted {
		t.Fatalf("after the notice: attempts %+v", j.Attempts)
	}
	if j.Restarts != 0 {
		t.Errorf("a preemption counted as a restart: %d", j.Restarts)
	}
	cp := latestCheckpoint(t, ac, j)
	if cp.Step != stopAt {
		t.Errorf("preempted at step %d, latest checkpoint step %d", stopAt, cp.Step)
	}

	var first atomic.Int64
	startAgent(t, "w2", srv, func(p trainer.Progress) { first.CompareAndSwap(0, p.Step) })
	j = waitJob(t, ac, j.ID, api.JobSucceeded)
	if len(j.Attempts) != 2 || j.Attempts[1].Nodes[0] != "w2" || j.Attempts[1].ResumeFrom != cp.Digest {
		t.Errorf("attempts %+v, want a second one on w2 resuming from %s", j.Attempts, cp.Digest)
	}
	if got := first.Load(); got != stopAt+1 {
		t.Errorf("the resumed run's first step is %d, want %d", got, stopAt+1)
	}
	if j.Progress.Step != testSteps {
		t.Errorf("final step %d, want %d", j.Progress.Step, testSteps)
	}
}

// waitWithdrawn waits until worker w1 advertises no capacity (its stop
// notice was taken).
func waitWithdrawn(t *testing.T, ac *api.Client) {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		ws, err := ac.Workers(context.Background())
		if err == nil {
			for _, w := range ws {
				if w.ID == "w1" && w.Meta.Cores == 0 {
					return
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Errorf("worker w1 never withdrew its capacity")
}

func latestCheckpoint(t *testing.T, ac *api.Client, j *api.Job) *api.Checkpoint {
	t.Helper()
	cps, err := ac.Checkpoints(context.Background(), j.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cps {
		if c.Digest == j.LatestCheckpoint {
			return c
		}
	}
	t.Fatalf("latest checkpoint %q not among %+v", j.LatestCheckpoint, cps)
	return nil
}

// TestAgentJobCancelled: cancelling a job in the cluster stops its run on
// the agent at its next poll, without an outcome report.
func TestAgentJobCancelled(t *testing.T) {
	srv := startCoordinator(t)
	ac := api.New(srv.HTTPAddr())
	uploadShapes(t, ac)

	runs := &runContexts{ctxs: make(chan context.Context, 1)}
	reached := make(chan struct{})
	var once sync.Once
	var lastStep atomic.Int64
	dir := t.TempDir()
	startAgentDir(t, "w1", dir, srv, func(p trainer.Progress) {
		lastStep.Store(p.Step)
		if p.Step == 2 {
			once.Do(func() { close(reached) })
			ctx := <-runs.ctxs
			select { // hold the trainer until the agent stops the run
			case <-ctx.Done():
			case <-time.After(30 * time.Second):
				t.Error("the agent did not stop the run of the cancelled job")
			}
		}
	}, runs)
	j := submit(t, ac, 2)
	select {
	case <-reached:
	case <-time.After(60 * time.Second):
		t.Fatal("the agent did not reach step 2")
	}
	if _, err := ac.CancelJob(context.Background(), j.ID); err != nil {
		t.Fatal(err)
	}
	attemptDir := filepath.Join(dir, "runs", j.ID, "attempt-1")
	waitUntil(t, 30*time.Second, "the run to stop and its directory to go", func() error {
		if _, err := os.Stat(attemptDir); !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%s: %v", attemptDir, err)
		}
		return nil
	})
	if got := lastStep.Load(); got >= testSteps {
		t.Errorf("the cancelled run went on to step %d", got)
	}
	j, err := ac.Job(context.Background(), j.ID)
	if err != nil {
		t.Fatal(err)
	}
	if j.State != api.JobCancelled || j.Attempts[0].State != api.AttemptCancelled {
		t.Errorf("job %s, attempt %s; want both cancelled", j.State, j.Attempts[0].State)
	}
}
