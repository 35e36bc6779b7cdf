//go:build unix

package main

// The sweep fault test with real processes: three `trainctl coordinator`
// processes and one `trainctl worker` run a UNet sweep submitted with the
// CLI; the leader is killed with SIGKILL mid-sweep, and the survivors must
// finish the sweep, agree on every byte of it and replay it to the same
// decisions. Helpers are in process_helpers_test.go.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/trainctl/trainctl/api"
)

// killSweepSpec is a small UNet sweep on uploadShapes' dataset (%s): 6
// trials of random search, 2 at a time, ASHA η 3 judging at epoch 1 and
// promoting a third to epoch 3; TPE suggests the trials after the first
// three from their results, so trials suggested after the kill exercise the
// new leader's searcher. An epoch is 5 steps of 8 images of 32x32: the
// sweep trains for 5-10 s on the worker's 2 cores (12-18 results, as
// asynchronous ASHA's decisions depend on the order results arrive in),
// and the kill comes after the second.
const killSweepSpec = `name: kill-sweep
job:
  name: kill-trial
  dataset: %s
  hyperparameters: {batch: 8, seed: 1}
  resources: {cpus_per_rank: 1}
  checkpoint_every: 0
search_space:
  lr: {type: loguniform, low: 0.0005, high: 0.01}
objective: {metric: val_mean_iou, mode: max}
searcher: {name: tpe, n_startup: 3}
scheduler: {name: asha, reduction_factor: 3}
max_trials: 6
max_concurrent: 2
budget: {unit: epochs, min: 1, max: 3}
seed: 11
`

// TestProcessSweepLeaderSIGKILL: the leader dies (SIGKILL) after the sweep
// has recorded two results; the new leader's controller continues it from
// the log to completion. Both survivors then hold the identical sweep, it
// replays to identical decisions and suggestions on each, no trial failed
// or was judged twice at one budget, decisions were made after the kill,
// and the best checkpoint is registered as the model's version 1.
func TestProcessSweepLeaderSIGKILL(t *testing.T) {
	bin := trainctlBinary(t)
	dataDir := t.TempDir()
	fast := []string{"--worker-lease", workerLease.String(), "--scheduler-interval", "200ms"}
	c1 := startCoord(t, bin, dataDir, "c1", append([]string{"--bootstrap"}, fast...)...)
	c2 := startCoord(t, bin, dataDir, "c2", append([]string{"--join", c1.httpAddr}, fast...)...)
	c3 := startCoord(t, bin, dataDir, "c3", append([]string{"--join", c1.httpAddr + "," + c2.httpAddr}, fast...)...)
	procs := []*coordProc{c1, c2, c3}
	waitLeader(t, procs, 3)
	addrs := strings.Join([]string{c1.httpAddr, c2.httpAddr, c3.httpAddr}, ",")
	ac := retryingClient(procs...)
	ds := uploadShapes(t, ac)
	startWorker(t, bin, dataDir, addrs, "w1", "--cores", "2", "--heartbeat", "250ms")

	spec := filepath.Join(t.TempDir(), "sweep.yaml")
	if err := os.WriteFile(spec, fmt.Appendf(nil, killSweepSpec, ds), 0o644); err != nil {
		t.Fatal(err)
	}
	out := mustBin(t, 60*time.Second, bin, dataDir, "sweep", "-f", spec, "--request-id", "kill-sweep-1", "--coordinator", addrs)
	id := strings.TrimSpace(strings.SplitN(out, "\n", 2)[0])
	if !regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(id) {
		t.Fatalf("sweep printed %q, want a sweep id first", out)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var before *api.Sweep
	procWait(t, 3*time.Minute, "two results before the kill", func() error {
		sw, err := ac.Sweep(ctx, id)
		if err != nil {
			return err
		}
		if sw.State.Terminal() {
			t.Fatalf("sweep ended %s before the kill (%d results); the test needs a longer sweep", sw.State, len(sw.Results))
		}
		if len(sw.Results) < 2 {
			return fmt.Errorf("%d results", len(sw.Results))
		}
		before = sw
		return nil
	})
	leader := currentLeader(t, procs)
	leader.kill()
	killed := time.Now()
	survivors := others(procs, leader)
	t.Logf("killed leader %s at %d results and %d trials", leader.id, len(before.Results), len(before.Trials))

	sapi := retryingClient(survivors...)
	var done *api.Sweep
	procWait(t, 4*time.Minute, "the sweep to end on the survivors", func() error {
		sw, err := sapi.Sweep(ctx, id)
		if err != nil {
			return err
		}
		if !sw.State.Terminal() {
			return fmt.Errorf("%s with %d results and %d trials", sw.State, len(sw.Results), len(sw.Trials))
		}
		done = sw
		return nil
	})
	t.Logf("sweep %s %v after the kill: %d trials, %d results", done.State, time.Since(killed).Round(time.Millisecond), len(done.Trials), len(done.Results))
	if done.State != api.SweepCompleted {
		t.Fatalf("sweep %s: %s", done.State, done.Error)
	}
	if len(done.Trials) != 6 {
		t.Errorf("%d trials, want max_trials 6", len(done.Trials))
	}
	if len(done.Results) <= len(before.Results) {
		t.Errorf("no result was judged after the kill (%d before, %d at the end)", len(before.Results), len(done.Results))
	}
	// What was recorded before the kill is a prefix of the final log: the
	// new leader neither lost nor rewrote a committed decision.
	for i, r := range before.Results {
		if f := done.Results[i]; f.Trial != r.Trial || f.Budget != r.Budget || f.Value != r.Value || f.Decision != r.Decision {
			t.Errorf("results[%d] was %+v before the kill, %+v after", i, r, f)
		}
	}
	lastBudget := map[int]int{}
	for i, r := range done.Results {
		if r.Budget <= lastBudget[r.Trial] {
			t.Errorf("results[%d]: trial %d judged at budget %d after budget %d", i, r.Trial, r.Budget, lastBudget[r.Trial])
		}
		lastBudget[r.Trial] = r.Budget
	}
	for _, tr := range done.Trials {
		if tr.State == api.TrialFailed || tr.State == api.TrialCancelled {
			t.Errorf("trial %d %s: %s", tr.Number, tr.State, tr.Error)
		}
	}

	// Both survivors hold the same sweep (once both applied the last
	// entry), and each replays it from its own log to identical decisions.
	procWait(t, 30*time.Second, "the survivors to hold the same sweep", func() error {
		var views [][]byte
		for _, p := range survivors {
			sw, err := p.client(0).Sweep(ctx, id)
			if err != nil {
				return fmt.Errorf("%s: %w", p.id, err)
			}
			b, err := json.Marshal(sw)
			if err != nil {
				return err
			}
			views = append(views, b)
		}
		if !bytes.Equal(views[0], views[1]) {
			return fmt.Errorf("%s and %s differ", survivors[0].id, survivors[1].id)
		}
		return nil
	})
	for _, p := range survivors {
		rep, err := p.client(0).ReplaySweep(ctx, id)
		if err != nil {
			t.Fatalf("replay on %s: %v", p.id, err)
		}
		if !rep.OK() || rep.Results != len(done.Results) || rep.Suggestions != len(done.Trials) {
			t.Errorf("replay on %s: %d decisions, %d suggestions, mismatches %v; want %d, %d, none",
				p.id, rep.Results, rep.Suggestions, rep.Mismatches, len(done.Results), len(done.Trials))
		}
	}

	if done.Best == nil {
		t.Fatal("a completed sweep with no best checkpoint")
	}
	vs, err := sapi.Models(ctx, "kill-sweep")
	if err != nil {
		t.Fatalf("models get kill-sweep: %v", err)
	}
	if len(vs) != 1 || vs[0].Version != 1 || vs[0].Checkpoint != done.Best.Checkpoint || vs[0].SweepID != id {
		t.Errorf("model versions %+v, want version 1 of checkpoint %s from sweep %s", vs, done.Best.Checkpoint, id)
	}
}
