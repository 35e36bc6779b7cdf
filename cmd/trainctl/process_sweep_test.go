//go:build unix

package main

// The end-to-end sweep test with real processes: `trainctl up` (a
// single-voter coordinator and a worker in one process), a tiny shapes
// dataset generated and pushed with the CLI, and a UNet sweep run to the end
// with `trainctl sweep --wait`; then the sweep, its model version and its
// replay as the CLI shows them. Helpers are in process_helpers_test.go.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/trainctl/trainctl/api"
)

// processSweepSpec is a small UNet sweep: random search over lr, ASHA
// (η 3: judged at epoch 1, the top third goes on to 3), 4 trials, 2 at a
// time on the worker's 2 cores. On 64 images of 16x16 (48 train, 16 val)
// an epoch is 6 steps, so the sweep takes seconds of training.
const processSweepSpec = `name: proc-sweep
job:
  name: proc-trial
  dataset: shapes@v1
  hyperparameters: {batch: 8, seed: 1}
  resources: {cpus_per_rank: 1}
  checkpoint_every: 0
search_space:
  lr: {type: loguniform, low: 0.0005, high: 0.01}
objective: {metric: val_mean_iou, mode: max}
searcher: {name: random}
scheduler: {name: asha, reduction_factor: 3}
max_trials: 4
max_concurrent: 2
budget: {unit: epochs, min: 1, max: 3}
seed: 5
`

// upProc is one `trainctl up` process.
type upProc struct {
	addr    string // its coordinator API
	logPath string
	cmd     *exec.Cmd
	done    chan struct{}
}

// startUp starts `trainctl up` on free loopback ports with --cores 2 and
// waits until it prints its API address. Cleanup interrupts it (Ctrl-C),
// kills it if it has not stopped 30 s later, and prints its output if the
// test failed.
func startUp(t *testing.T, bin, dataDir string) *upProc {
	t.Helper()
	p := &upProc{logPath: filepath.Join(t.TempDir(), "up.log"), done: make(chan struct{})}
	logf, err := os.Create(p.logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	p.cmd = exec.Command(bin, "--data-dir", dataDir, "up", "--http-addr", "127.0.0.1:0", "--raft-addr", "127.0.0.1:0",
		"--flight-addr", "127.0.0.1:0", "--cores", "2", "--log-level", "info")
	p.cmd.Env = childEnv()
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start up: %v", err)
	}
	go func() {
		_ = p.cmd.Wait() // the exit status is in cmd.ProcessState
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGINT) // fails only if it has exited
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			t.Errorf("up (pid %d) did not stop 30s after Ctrl-C; killing it", p.cmd.Process.Pid)
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			b, _ := os.ReadFile(p.logPath)
			if len(b) > maxLogTail {
				b = append([]byte("[...]"), b[len(b)-maxLogTail:]...)
			}
			t.Logf("--- output of trainctl up ---\n%s", b)
		}
	})
	procWait(t, 60*time.Second, "up to print its address", func() error {
		b, err := os.ReadFile(p.logPath)
		if err != nil {
			return err
		}
		if m := upAddrRE.FindSubmatch(b); m != nil {
			p.addr = string(m[1])
			return nil
		}
		select {
		case <-p.done:
			t.Fatalf("up exited (%v) before serving:\n%s", p.cmd.ProcessState, b)
		default:
		}
		return errors.New("no address yet")
	})
	return p
}

// runBin runs the trainctl binary with the global --data-dir and returns
// its stdout, its stderr and its error (an *exec.ExitError for a non-zero
// exit). It gives up after timeout.
func runBin(t *testing.T, timeout time.Duration, bin, dataDir string, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"--data-dir", dataDir}, args...)...)
	cmd.Env = childEnv()
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("trainctl %s: still running after %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), timeout, out.String(), errOut.String())
	}
	return out.String(), errOut.String(), err
}

// mustBin is runBin that fails the test on a non-zero exit.
func mustBin(t *testing.T, timeout time.Duration, bin, dataDir string, args ...string) string {
	t.Helper()
	out, errOut, err := runBin(t, timeout, bin, dataDir, args...)
	if err != nil {
		t.Fatalf("trainctl %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// TestProcessSweepUp runs a UNet sweep end to end on `trainctl up` with the
// real binary: it completes, every trial ends, the best checkpoint is set
// and registered as version 1 of the model named after the sweep, the
// replay of its log is identical, resubmitting with the same request id
// returns the same sweep, and an unknown sweep id is an error naming it.
func TestProcessSweepUp(t *testing.T) {
	bin := trainctlBinary(t)
	t0 := time.Now()
	dataDir := t.TempDir()
	up := startUp(t, bin, dataDir)
	t.Logf("up serving at %s after %v", up.addr, time.Since(t0).Round(time.Millisecond))
	cl := []string{"--coordinator", up.addr}

	mustBin(t, 60*time.Second, bin, dataDir, "dataset", "gen", "--name", "shapes", "--n", "64", "--size", "16", "--seed", "3", "--val-fraction", "0.25")
	mustBin(t, 60*time.Second, bin, dataDir, append([]string{"dataset", "push"}, append(cl, "shapes@v1")...)...)

	t.Logf("dataset pushed after %v", time.Since(t0).Round(time.Millisecond))
	spec := filepath.Join(t.TempDir(), "sweep.yaml")
	if err := os.WriteFile(spec, []byte(processSweepSpec), 0o644); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	out, errOut, err := runBin(t, 3*time.Minute, bin, dataDir, append([]string{"sweep", "-f", spec, "--wait", "--request-id", "proc-sweep-1", "--poll-interval", "200ms"}, cl...)...)
	if err != nil {
		t.Fatalf("sweep --wait: %v\nstdout:\n%s\nstderr:\n%s", err, out, errOut)
	}
	t.Logf("sweep --wait took %v:\n%s", time.Since(start).Round(time.Millisecond), out)
	id := strings.SplitN(out, "\n", 2)[0]
	if !regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(id) {
		t.Fatalf("first line %q is not a sweep id", id)
	}
	for _, re := range []string{
		`(?m)^\d\d:\d\d:\d\d  trial 0 started: lr=\S+ \(job ` + id + `-t0\)$`,
		`(?m)^\d\d:\d\d:\d\d  trial \d epoch 1: val_mean_iou=\S+ → (promote|stop)$`,
		`(?m)^\d\d:\d\d:\d\d  sweep ` + id + ` completed$`,
		`(?m)^TRIAL +PARAMS +EPOCHS +BEST VAL_MEAN_IOU +STATE +CHECKPOINT +JOB$`,
		`(?m)^best checkpoint: sha256:[0-9a-f]{64} \(trial \d, job ` + id + `-t\d, val_mean_iou=\S+\)$`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("sweep --wait output does not match %s", re)
		}
	}

	var sw api.Sweep
	if err := json.Unmarshal([]byte(mustBin(t, 30*time.Second, bin, dataDir, append([]string{"-o", "json", "sweeps", "get"}, append(cl, id)...)...)), &sw); err != nil {
		t.Fatalf("sweeps get -o json: %v", err)
	}
	if sw.ID != id || sw.State != api.SweepCompleted || sw.RequestID != "proc-sweep-1" {
		t.Fatalf("sweep %s state %s request id %q, want %s completed proc-sweep-1 (error %q)", sw.ID, sw.State, sw.RequestID, id, sw.Error)
	}
	if len(sw.Trials) != 4 {
		t.Errorf("%d trials, want max_trials 4", len(sw.Trials))
	}
	ran := map[api.TrialState]int{}
	for _, tr := range sw.Trials {
		ran[tr.State]++
		if !tr.State.Terminal() {
			t.Errorf("trial %d is %s in a completed sweep", tr.Number, tr.State)
		}
		if tr.State == api.TrialFailed || tr.State == api.TrialCancelled {
			t.Errorf("trial %d %s: %s", tr.Number, tr.State, tr.Error)
		}
		if !tr.HasValue || tr.Budget < 1 {
			t.Errorf("trial %d has no result (budget %d)", tr.Number, tr.Budget)
		}
		if tr.State == api.TrialCompleted && tr.Budget != 3 {
			t.Errorf("trial %d completed at budget %d, want budget.max 3", tr.Number, tr.Budget)
		}
	}
	if ran[api.TrialCompleted] == 0 {
		t.Errorf("no trial completed: %v", ran)
	}
	if sw.Best == nil || !regexp.MustCompile(`^sha256:[0-9a-f]{64}$`).MatchString(sw.Best.Checkpoint) {
		t.Fatalf("best %+v, want a checkpoint", sw.Best)
	}
	if b := sw.Trials[sw.Best.Trial]; b.BestCheckpoint != sw.Best.Checkpoint {
		t.Errorf("best is trial %d's checkpoint %s, but the trial's best checkpoint is %s", sw.Best.Trial, sw.Best.Checkpoint, b.BestCheckpoint)
	}
	for _, tr := range sw.Trials {
		if tr.BestCheckpoint != "" && tr.BestCheckpointValue > sw.Best.Value {
			t.Errorf("trial %d's checkpoint has %s %v, better than the best %v", tr.Number, sw.Spec.Objective.Metric, tr.BestCheckpointValue, sw.Best.Value)
		}
	}
	// The best checkpoint's value is a result the scheduler judged (not,
	// say, one a stopped trial reached before its job was cancelled).
	judged := false
	for _, r := range sw.Results {
		judged = judged || (r.Trial == sw.Best.Trial && r.Value == sw.Best.Value)
	}
	if !judged {
		t.Errorf("best %+v: trial %d has no judged result of that value (results %+v)", *sw.Best, sw.Best.Trial, sw.Results)
	}

	// The leaderboard lists every trial, best first.
	var board []api.Trial
	if err := json.Unmarshal([]byte(mustBin(t, 30*time.Second, bin, dataDir, append([]string{"-o", "json", "sweeps", "trials"}, append(cl, id)...)...)), &board); err != nil {
		t.Fatalf("sweeps trials -o json: %v", err)
	}
	// The trial with the best result has its checkpoint recorded, so it
	// leads the leaderboard and holds the best checkpoint.
	if len(board) != 4 {
		t.Fatalf("leaderboard of %d trials, want 4: %+v", len(board), board)
	}
	if board[0].Number != sw.Best.Trial {
		t.Errorf("leaderboard led by trial %d (best %v, checkpoint %q), but the best checkpoint is trial %d's: %+v",
			board[0].Number, board[0].BestValue, board[0].BestCheckpoint, sw.Best.Trial, board)
	}
	for i := 1; i < len(board); i++ {
		if board[i].HasValue && board[i].BestValue > board[i-1].BestValue {
			t.Errorf("leaderboard not best first: trial %d (%v) after trial %d (%v)", board[i].Number, board[i].BestValue, board[i-1].Number, board[i-1].BestValue)
		}
	}

	// The completed sweep registered its best as version 1 of its model.
	var vs []api.ModelVersion
	if err := json.Unmarshal([]byte(mustBin(t, 30*time.Second, bin, dataDir, append([]string{"-o", "json", "models", "get"}, append(cl, "proc-sweep")...)...)), &vs); err != nil {
		t.Fatalf("models get -o json: %v", err)
	}
	if len(vs) != 1 || vs[0].Version != 1 || vs[0].Checkpoint != sw.Best.Checkpoint || vs[0].SweepID != id {
		t.Errorf("model versions %+v, want version 1 of checkpoint %s from sweep %s", vs, sw.Best.Checkpoint, id)
	}

	if out := mustBin(t, 30*time.Second, bin, dataDir, append([]string{"sweeps", "replay"}, append(cl, id)...)...); !regexp.MustCompile(`^sweep ` + id + `: replayed \d+ decisions and 4 suggestions: identical\n$`).MatchString(out) {
		t.Errorf("sweeps replay: %q", out)
	}

	// The same request id returns the same sweep; no new trials start.
	if out := mustBin(t, 30*time.Second, bin, dataDir, append([]string{"sweep", "-f", spec, "--request-id", "proc-sweep-1"}, cl...)...); strings.TrimSpace(out) != id {
		t.Errorf("resubmission printed %q, want the same sweep %s", out, id)
	}
	if out := mustBin(t, 30*time.Second, bin, dataDir, append([]string{"sweeps", "ls"}, cl...)...); strings.Count(out, "proc-sweep") != 1 {
		t.Errorf("sweeps ls after a resubmission:\n%s", out)
	}

	_, errOut, err = runBin(t, 30*time.Second, bin, dataDir, append([]string{"sweeps", "get"}, append(cl, "0123456789abcdef")...)...)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || !strings.Contains(errOut, `no sweep "0123456789abcdef" in the cluster`) {
		t.Errorf("sweeps get of an unknown id: %v, stderr %q", err, errOut)
	}
	t.Logf("checks done after %v", time.Since(t0).Round(time.Millisecond))
}
