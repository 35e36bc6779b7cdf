//go:build unix

package main

// Data-parallel training with real processes (issue 11): one `trainctl
// coordinator` and three `trainctl worker` processes train the same job on
// 1, 2 and 4 ranks; the final checkpoints must hold the same parameters
// and optimizer state, bit for bit. A 2-rank job whose rank's worker is
// SIGKILLed fails the step within the collective deadline on the other
// rank, resumes from its checkpoint and ends with the same weights.

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trainctl/trainctl/api"
	"github.com/trainctl/trainctl/artifact"
	"github.com/trainctl/trainctl/jobspec"
	"github.com/trainctl/trainctl/trainer"
)

const (
	// dpCollectiveTimeout is the workers' --collective-timeout.
	dpCollectiveTimeout = 3 * time.Second
	// dpWorkerLease is long, so that a SIGKILLed worker's attempt is ended
	// by its surviving rank's report, not by the lease.
	dpWorkerLease = 30 * time.Second
)

// startDPCluster starts a coordinator and three workers with two cores
// each.
func startDPCluster(tb testing.TB) *workerCluster {
	tb.Helper()
	bin := trainctlBinary(tb)
	dataDir := tb.TempDir()
	coord := startCoord(tb, bin, dataDir, "c1", "--bootstrap",
		"--worker-lease", dpWorkerLease.String(), "--scheduler-interval", "200ms")
	wc := &workerCluster{coord: coord, ac: retryingClient(coord)}
	wc.dataset = uploadShapes(tb, wc.ac)
	for _, id := range []string{"w1", "w2", "w3"} {
		wc.workers = append(wc.workers, startWorker(tb, bin, dataDir, coord.httpAddr, id,
			"--cores", "2", "--grace", workerGrace.String(), "--heartbeat", "250ms",
			"--ring-host", "127.0.0.1", "--collective-timeout", dpCollectiveTimeout.String()))
	}
	return wc
}

// dpJobSpec is workerJobSpec on ranks ranks of cpus cores each: 6 epochs
// of 10 steps of a global batch of 4 (the last batch of each epoch holds
// 2 examples).
func dpJobSpec(name, ds string, ranks, cpus int) jobspec.Spec {
	s := workerJobSpec(name, ds)
	s.Hyperparameters.Epochs = 6
	s.Resources.Ranks, s.Resources.CPUsPerRank = ranks, cpus
	return s
}

// finalState downloads the job's newest checkpoint and returns a digest of
// its parameters and optimizer state (not of the file, whose header holds
// times) and its step.
func finalState(tb testing.TB, wc *workerCluster, j *api.Job) (string, int64) {
	tb.Helper()
	if j.LatestCheckpoint == "" {
		tb.Fatalf("job %s has no checkpoint", j.ID)
	}
	path := filepath.Join(tb.TempDir(), "final.ckpt")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	blobs := artifact.NewClient(artifact.ClientConfig{})
	if err := blobs.FetchFile(ctx, []string{wc.coord.httpAddr}, j.LatestCheckpoint, path); err != nil {
		tb.Fatalf("fetch checkpoint of job %s: %v", j.ID, err)
	}
	c, err := trainer.ReadCheckpoint(path)
	if err != nil {
		tb.Fatal(err)
	}
	h := sha256.New()
	var b [4]byte
	for _, p := range c.Params {
		binary.LittleEndian.PutUint32(b[:], math.Float32bits(p))
		h.Write(b[:])
	}
	h.Write(c.Optimizer)
	return hex.EncodeToString(h.Sum(nil)), c.Step
}

// waitSucceeded waits for job id to succeed and returns it.
func waitSucceeded(tb testing.TB, wc *workerCluster, id string, timeout time.Duration) *api.Job {
	tb.Helper()
	v := wc.waitJob(tb, id, timeout, "job "+id+" to succeed", false, func(v *jobView) error {
		if v.job.State != api.JobSucceeded {
			return fmt.Errorf("job %s is %s at step %d", id, v.job.State, v.job.Progress.Step)
		}
		return nil
	})
	return v.job
}

// TestProcessDataParallel trains one job on 1, 2 and 4 ranks across three
// worker processes and compares the final checkpoints; then SIGKILLs the
// worker of one rank of a 2-rank job mid-training.
func TestProcessDataParallel(t *testing.T) {
	wc := startDPCluster(t)
	// 2 ranks of 2 cores land on two workers; 4 ranks of 1 core on two or
	// three. The 1-rank job fits beside them or after.
	ids := map[int]string{}
	for _, ranks := range []int{4, 2, 1} {
		cpus := 1
		if ranks == 2 {
			cpus = 2
		}
		name := fmt.Sprintf("dp%d", ranks)
		ids[ranks] = wc.submit(t, name, dpJobSpec(name, wc.dataset, ranks, cpus))
	}
	want := map[int]string{}
	var step int64
	for _, ranks := range []int{1, 2, 4} {
		j := waitSucceeded(t, wc, ids[ranks], 5*time.Minute)
		a := j.CurrentAttempt()
		if len(a.Nodes) != ranks || len(j.Attempts) != 1 {
			t.Fatalf("job %s: %d attempts, the last on %v; want 1 attempt of %d ranks", j.ID, len(j.Attempts), a.Nodes, ranks)
		}
		want[ranks], step = finalState(t, wc, j)
		t.Logf("%d rank(s) on %v: final step %d, state digest %s", ranks, a.Nodes, step, want[ranks][:16])
	}
	if want[2] != want[1] || want[4] != want[1] {
		t.Fatalf("final states differ across ranks: 1 rank %s, 2 ranks %s, 4 ranks %s", want[1], want[2], want[4])
	}
	checkRankTable(t, wc, ids[4])

	// SIGKILL the worker of rank 1 of a 2-rank job (one rank per worker)
	// once it has a checkpoint, mid-epoch.
	id := wc.submit(t, "dpkill", dpJobSpec("dpkill", wc.dataset, 2, 2))
	var victim string
	wc.waitJob(t, id, 2*time.Minute, "job "+id+" running with a checkpoint at step >= 10", true, func(v *jobView) error {
		a := v.job.CurrentAttempt()
		if a == nil || a.State != api.AttemptRunning || len(a.Nodes) != 2 {
			return fmt.Errorf("job %s is %s", id, v.job.State)
		}
		if c := latestCheckpoint(v.checkpoints, 1); c == nil || c.Step < 10 {
			return fmt.Errorf("no checkpoint at step >= 10 yet")
		}
		victim = a.Nodes[1]
		return nil
	})
	killedAt := time.Now()
	wc.worker(t, victim).kill()
	t.Logf("SIGKILLed %s (rank 1 of job %s)", victim, id)
	wc.waitJob(t, id, dpCollectiveTimeout+30*time.Second, "attempt 1 of "+id+" to fail", false, func(v *jobView) error {
		if a := v.job.Attempts[0]; a.State != api.AttemptFailed {
			return fmt.Errorf("attempt 1 is %s", a.State)
		}
		return nil
	})
	failedAfter := time.Since(killedAt)
	j := waitSucceeded(t, wc, id, 5*time.Minute)
	a1 := j.Attempts[0]
	if a1.FailedNode != victim || !strings.Contains(a1.Error, "rank 1") {
		t.Fatalf("attempt 1 failed on %q with %q; want it blamed on %s with an error naming rank 1", a1.FailedNode, a1.Error, victim)
	}
	// The surviving rank's report, not the 30 s worker lease, ended it.
	if failedAfter > dpCollectiveTimeout+15*time.Second {
		t.Fatalf("attempt 1 ended %v after the SIGKILL; the collective deadline is %v", failedAfter, dpCollectiveTimeout)
	}
	got, gotStep := finalState(t, wc, j)
	if len(j.Attempts) != 2 || j.Attempts[1].ResumeFrom == "" {
		t.Fatalf("job %s: attempts %+v; want a second attempt resumed from a checkpoint", id, j.Attempts)
	}
	if got != want[2] || gotStep != step {
		t.Fatalf("after the SIGKILL and resume: step %d digest %s; uninterrupted: step %d digest %s", gotStep, got, step, want[2])
	}
	t.Logf("attempt 1 failed %v after the SIGKILL (%s); resumed and ended with the uninterrupted weights",
		failedAfter.Round(time.Millisecond), a1.Error)
}

// checkRankTable checks what `jobs get` shows of a finished multi-rank
// job: every rank's worker and address.
func checkRankTable(t *testing.T, wc *workerCluster, id string) {
	t.Helper()
	v, err := wc.view(id, false)
	if err != nil {
		t.Fatal(err)
	}
	a := v.job.CurrentAttempt()
	if len(a.Ranks) != len(a.Nodes) {
		t.Fatalf("job %s attempt %d lists %d rank statuses for %d ranks: %+v", id, a.Number, len(a.Ranks), len(a.Nodes), a.Ranks)
	}
	for r, st := range a.Ranks {
		if st.Rank != r || st.Node != a.Nodes[r] || st.Addr == "" {
			t.Fatalf("rank %d status %+v; want its worker %s and an address", r, st, a.Nodes[r])
		}
	}
}

// dpSweepSpec is a 2-trial grid over lr whose trials run on the given
// number of ranks, one at a time on `trainctl up`'s worker.
func dpSweepSpec(ranks int) string {
	return fmt.Sprintf(`name: dp-sweep-%d
job:
  name: dp-trial
  dataset: shapes@v1
  hyperparameters: {batch: 8, seed: 1, flip: true}
  resources: {ranks: %d, cpus_per_rank: 1}
  checkpoint_every: 0
search_space:
  lr: {type: choice, values: [0.001, 0.004]}
objective: {metric: val_mean_iou, mode: max}
searcher: {name: grid}
max_trials: 2
max_concurrent: 1
budget: {unit: epochs, min: 2, max: 2}
seed: 5
`, ranks, ranks)
}

// TestProcessSweepDataParallel runs the same sweep with 1-rank and with
// 2-rank trials (both ranks on `trainctl up`'s one worker, over loopback)
// and compares the leaderboards: same trials, same results, bit for bit.
func TestProcessSweepDataParallel(t *testing.T) {
	bin := trainctlBinary(t)
	dataDir := t.TempDir()
	up := startUp(t, bin, dataDir)
	cl := []string{"--coordinator", up.addr}
	mustBin(t, 60*time.Second, bin, dataDir, "dataset", "gen", "--name", "shapes", "--n", "64", "--size", "16", "--seed", "3", "--val-fraction", "0.25")
	mustBin(t, 60*time.Second, bin, dataDir, append([]string{"dataset", "push"}, append(cl, "shapes@v1")...)...)

	boards := map[int][]api.Trial{}
	for _, ranks := range []int{1, 2} {
		spec := filepath.Join(t.TempDir(), "sweep.yaml")
		if err := os.WriteFile(spec, []byte(dpSweepSpec(ranks)), 0o644); err != nil {
			t.Fatal(err)
		}
		out, errOut, err := runBin(t, 4*time.Minute, bin, dataDir, append([]string{"sweep", "-f", spec, "--wait", "--poll-interval", "200ms"}, cl...)...)
		if err != nil {
			t.Fatalf("sweep of %d-rank trials: %v\nstdout:\n%s\nstderr:\n%s", ranks, err, out, errOut)
		}
		id := strings.SplitN(out, "\n", 2)[0]
		var board []api.Trial
		if err := json.Unmarshal([]byte(mustBin(t, 30*time.Second, bin, dataDir, append([]string{"-o", "json", "sweeps", "trials"}, append(cl, id)...)...)), &board); err != nil {
			t.Fatalf("sweeps trials -o json: %v", err)
		}
		if len(board) != 2 {
			t.Fatalf("%d-rank sweep: leaderboard of %d trials, want 2: %+v", ranks, len(board), board)
		}
		for _, tr := range board {
			if tr.State != api.TrialCompleted || !tr.HasValue {
				t.Fatalf("%d-rank sweep: trial %d is %s (%s)", ranks, tr.Number, tr.State, tr.Error)
			}
		}
		boards[ranks] = board
		t.Logf("%d-rank trials: %s", ranks, out)
	}
	for i := range boards[1] {
		a, b := boards[1][i], boards[2][i]
		if a.Number != b.Number || a.Params.String() != b.Params.String() || a.BestValue != b.BestValue || a.Budget != b.Budget {
			t.Errorf("leaderboard row %d: 1 rank: trial %d %s %v (budget %d); 2 ranks: trial %d %s %v (budget %d)",
				i, a.Number, a.Params, a.BestValue, a.Budget, b.Number, b.Params, b.BestValue, b.Budget)
		}
	}
}
