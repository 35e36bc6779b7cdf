package coordinator

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trainctl/trainctl/api"
	"github.com/trainctl/trainctl/coordinator/structs"
	"github.com/trainctl/trainctl/tuning"
)

// sweepMetric is the objective the test sweeps maximise.
const sweepMetric = "val_mean_iou"

// fastSweeps makes the sweep controller's periodic pass frequent; kicks
// trigger most passes anyway.
func fastSweeps(cfg *Config) { cfg.SweepInterval = 50 * time.Millisecond }

// testSweepSpec is a sweep over lr of testSpec's job, maximising
// sweepMetric, with budget 1..budgetMax epochs.
func testSweepSpec(name string, maxTrials, maxConcurrent, budgetMax int) tuning.Spec {
	s := tuning.Defaults()
	s.Name = name
	s.Job = testSpec(name)
	s.SearchSpace = tuning.Space{Params: []tuning.Param{{Name: "lr", Type: tuning.LogUniform, Low: 1e-4, High: 1e-1}}}
	s.Objective = tuning.Objective{Metric: sweepMetric, Mode: tuning.Maximize}
	s.MaxTrials, s.MaxConcurrent = maxTrials, maxConcurrent
	s.Budget = tuning.Budget{Unit: tuning.UnitEpochs, Min: 1, Max: budgetMax}
	return s
}

// objective is the deterministic learning curve of a trial with learning
// rate lr after epoch epochs: it rises towards a ceiling that peaks at
// lr = 10^-2.5.
func objective(lr float64, epoch int) float64 {
	d := math.Log10(lr) + 2.5
	return (1 - 0.1*d*d) * (1 - math.Exp(-float64(epoch)))
}

// apiStatus returns the HTTP status of an API error, 0 for nil or another
// error.
func apiStatus(err error) int {
	var apiErr *api.APIError
	if errors.As(err, &apiErr) {
		return apiErr.Status
	}
	return 0
}

// trialDriver plays a worker's trainer for sweep trials through the real
// HTTP API: for every assignment of its worker it trains epoch by epoch
// from where the attempt resumes, registering a checkpoint and reporting
// the objective after each epoch, and then waits for the sweep controller
// to judge the epoch before training on, as a real trainer, slower than the
// controller, would be judged. It stops an attempt whose job is no longer
// running it (stopped or cancelled) and reports success after the last
// epoch.
type trialDriver struct {
	t      *testing.T
	cl     *api.Client
	addrs  []string // every coordinator: checkpoint blobs go to each that answers
	worker string

	mu      sync.Mutex
	started map[string]bool // job/attempt
	wg      sync.WaitGroup
}

func newTrialDriver(t *testing.T, addrs []string, worker string) *trialDriver {
	return &trialDriver{t: t, cl: api.New(addrs...), addrs: addrs, worker: worker, started: make(map[string]bool)}
}

// run polls the worker's assignments and plays each new attempt in its own
// goroutine until ctx ends; it returns once every goroutine has.
func (d *trialDriver) run(ctx context.Context) {
	defer d.wg.Wait()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		as, err := d.cl.Assignments(ctx, d.worker)
		if err != nil && ctx.Err() == nil {
			d.t.Errorf("assignments of %s: %v", d.worker, err)
			return
		}
		for _, a := range as {
			key := fmt.Sprintf("%s/%d", a.JobID, a.Attempt)
			d.mu.Lock()
			isNew := !d.started[key]
			d.started[key] = true
			d.mu.Unlock()
			if isNew {
				d.wg.Go(func() {
					if err := d.play(ctx, a); err != nil && ctx.Err() == nil {
						d.t.Errorf("attempt %d of job %s: %v", a.Attempt, a.JobID, err)
					}
				})
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// play trains one attempt to its end.
func (d *trialDriver) play(ctx context.Context, a api.WorkerAssignment) error {
	start, err := d.resumeEpoch(ctx, a)
	if err != nil {
		return err
	}
	for e := start + 1; e <= a.Spec.Hyperparameters.Epochs; e++ {
		if _, err := d.epoch(ctx, a, e, true); err != nil {
			return err
		}
		running, err := d.waitJudged(ctx, a, e)
		if err != nil || !running {
			return err
		}
	}
	_, err = d.cl.ReportAttempt(ctx, a.JobID, a.Attempt, api.AttemptReportBody{WorkerID: d.worker, State: api.AttemptSucceeded})
	if errors.Is(err, api.ErrConflict) {
		return nil // stopped after the last judgement
	}
	return err
}

// resumeEpoch is how many epochs the checkpoint an attempt resumes from
// has trained, 0 for a fresh start.
func (d *trialDriver) resumeEpoch(ctx context.Context, a api.WorkerAssignment) (int, error) {
	if a.ResumeFrom == "" {
		return 0, nil
	}
	cps, err := d.cl.Checkpoints(ctx, a.JobID)
	if err != nil {
		return 0, err
	}
	for _, c := range cps {
		if c.Digest == a.ResumeFrom {
			return c.Epoch + 1, nil // an epoch-end checkpoint: its 0-based epoch is done
		}
	}
	return 0, fmt.Errorf("resume from %s: no such checkpoint of the job", a.ResumeFrom)
}

// epoch reports the end of epoch e (counted from 1; reports carry the
// trainer's 0-based epoch, e-1) of an attempt: a checkpoint (when ckpt is
// set) carrying the objective, then the metric report, at the same step. It
// returns the checkpoint's digest.
func (d *trialDriver) epoch(ctx context.Context, a api.WorkerAssignment, e int, ckpt bool) (string, error) {
	v := objective(a.Spec.Hyperparameters.LR, e)
	values := map[string]float64{sweepMetric: v}
	var digest string
	if ckpt {
		data := testCheckpoint(fmt.Sprintf("checkpoint of job %s attempt %d epoch %d", a.JobID, a.Attempt, e))
		digest = artifactDigest(data)
		pushed := 0
		for _, addr := range d.addrs {
			if newArtifactClient().Push(ctx, addr, digest, bytes.NewReader(data), int64(len(data))) == nil {
				pushed++
			}
		}
		if pushed == 0 {
			return "", fmt.Errorf("epoch %d: no coordinator took the checkpoint blob", e)
		}
		if _, err := d.cl.RegisterCheckpoint(ctx, api.RegisterCheckpointBody{
			Digest: digest, JobID: a.JobID, Attempt: a.Attempt, Step: int64(e) * 10, Epoch: e - 1, Metrics: values,
		}); err != nil {
			return "", fmt.Errorf("epoch %d: %w", e, err)
		}
	}
	if _, err := d.cl.ReportMetrics(ctx, a.JobID, []api.Metric{{
		Attempt: a.Attempt, Epoch: e - 1, Step: int64(e) * 10, Values: values,
	}}); err != nil {
		return "", fmt.Errorf("epoch %d: %w", e, err)
	}
	return digest, nil
}

// waitJudged waits until the sweep has recorded a result of the attempt's
// trial at epoch e or later, and reports whether the attempt should train
// on: false once the trial has ended (stopped, or the sweep cancelled) or
// the job no longer runs the attempt.
func (d *trialDriver) waitJudged(ctx context.Context, a api.WorkerAssignment, e int) (bool, error) {
	for {
		j, err := d.cl.Job(ctx, a.JobID)
		if err != nil {
			return false, err
		}
		if cur := j.CurrentAttempt(); j.State != api.JobRunning || cur == nil || cur.Number != a.Attempt {
			return false, nil
		}
		sw, err := d.cl.Sweep(ctx, j.SweepID)
		if err != nil {
			return false, err
		}
		if j.Trial < 0 || j.Trial >= len(sw.Trials) {
			return false, fmt.Errorf("job %s is trial %d of sweep %s, which has %d", j.ID, j.Trial, sw.ID, len(sw.Trials))
		}
		switch tr := sw.Trials[j.Trial]; {
		case tr.State.Terminal():
			return false, nil
		case tr.Budget >= e:
			return true, nil
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// waitSweep waits until cond holds for the sweep as s sees it.
func waitSweep(t *testing.T, s *Server, id string, timeout time.Duration, what string, cond func(*api.Sweep) error) *api.Sweep {
	t.Helper()
	var sw *api.Sweep
	waitFor(t, timeout, what, func() error {
		ssw, err := s.State().Sweep(id)
		if err != nil {
			return err
		}
		sw = convertPtr(ssw, apiSweep)
		return cond(sw)
	})
	return sw
}

func sweepIn(want api.SweepState) func(*api.Sweep) error {
	return func(sw *api.Sweep) error {
		if sw.State != want {
			return fmt.Errorf("sweep %s is %s (%d trials, %d results, %q), want %s", sw.ID, sw.State, len(sw.Trials), len(sw.Results), sw.Error, want)
		}
		return nil
	}
}

// checkResults fails the test unless each trial's results have strictly
// increasing budgets and finite values: no result was fed twice.
func checkResults(t *testing.T, sw *api.Sweep) {
	t.Helper()
	last := make(map[int]int)
	for i, r := range sw.Results {
		if r.Trial < 0 || r.Trial >= len(sw.Trials) {
			t.Errorf("results[%d]: trial %d of %d", i, r.Trial, len(sw.Trials))
			continue
		}
		if b, ok := last[r.Trial]; ok && r.Budget <= b {
			t.Errorf("results[%d]: trial %d budget %d after %d", i, r.Trial, r.Budget, b)
		}
		last[r.Trial] = r.Budget
		if r.NonFinite {
			t.Errorf("results[%d]: non-finite value", i)
		}
	}
}

// checkReplay asks the coordinator at addr to replay the sweep and fails
// the test unless it reproduces all of it.
func checkReplay(t *testing.T, ctx context.Context, addr string, sw *api.Sweep) {
	t.Helper()
	rep, err := api.New(addr).ReplaySweep(ctx, sw.ID)
	if err != nil {
		t.Fatalf("replay on %s: %v", addr, err)
	}
	if len(rep.Mismatches) > 0 || rep.Results != len(sw.Results) || rep.Suggestions != len(sw.Trials) {
		t.Errorf("replay on %s: %+v, want %d results and %d suggestions, no mismatch", addr, rep, len(sw.Results), len(sw.Trials))
	}
}

func TestSweepAPIErrors(t *testing.T) {
	c := newCluster(t, 1, fastSweeps)
	cl := c.client()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// A plain job with no checkpoint, for the model registry's 409.
	j := submit(t, cl, testSpec("plain"))

	badMode := testSweepSpec("bad", 3, 1, 3)
	badMode.Objective.Mode = "up"
	badSpace := testSweepSpec("bad", 3, 1, 3)
	badSpace.SearchSpace.Params[0].Low = 0
	badConc := testSweepSpec("bad", 3, 4, 3)
	noData := testSweepSpec("bad", 3, 1, 3)
	noData.Job.Dataset = "nope@v1"
	const unknown = "feedfacecafebeef"
	unknownDigest := "sha256:" + strings.Repeat("f", 64)

	tests := []struct {
		name   string
		call   func() error
		status int
		// want are substrings of the error message.
		want []string
	}{
		{"bad objective mode", func() error { _, err := cl.SubmitSweep(ctx, "", badMode); return err },
			http.StatusBadRequest, []string{"objective.mode", `"up"`}},
		{"bad search space", func() error { _, err := cl.SubmitSweep(ctx, "", badSpace); return err },
			http.StatusBadRequest, []string{"search_space.lr"}},
		{"bad max_concurrent", func() error { _, err := cl.SubmitSweep(ctx, "", badConc); return err },
			http.StatusBadRequest, []string{"max_concurrent"}},
		{"unknown dataset", func() error { _, err := cl.SubmitSweep(ctx, "", noData); return err },
			http.StatusBadRequest, []string{"spec.job.dataset", "nope@v1"}},
		{"get unknown sweep", func() error { _, err := cl.Sweep(ctx, unknown); return err },
			http.StatusNotFound, []string{unknown}},
		{"cancel unknown sweep", func() error { _, err := cl.CancelSweep(ctx, unknown); return err },
			http.StatusNotFound, []string{unknown}},
		{"trials of unknown sweep", func() error { _, err := cl.SweepTrials(ctx, unknown); return err },
			http.StatusNotFound, []string{unknown}},
		{"replay unknown sweep", func() error { _, err := cl.ReplaySweep(ctx, unknown); return err },
			http.StatusNotFound, []string{unknown}},
		{"model without source", func() error {
			_, _, err := cl.RegisterModel(ctx, api.RegisterModelBody{Name: "m"})
			return err
		}, http.StatusBadRequest, []string{"checkpoint, job_id, sweep_id", "none"}},
		{"model with two sources", func() error {
			_, _, err := cl.RegisterModel(ctx, api.RegisterModelBody{Name: "m", JobID: j.ID, SweepID: unknown})
			return err
		}, http.StatusBadRequest, []string{"job_id, sweep_id"}},
		{"model without name", func() error {
			_, _, err := cl.RegisterModel(ctx, api.RegisterModelBody{JobID: j.ID})
			return err
		}, http.StatusBadRequest, []string{"name"}},
		{"model of unknown checkpoint", func() error {
			_, _, err := cl.RegisterModel(ctx, api.RegisterModelBody{Name: "m", Checkpoint: unknownDigest})
			return err
		}, http.StatusNotFound, []string{"checkpoint", unknownDigest}},
		{"model of a malformed checkpoint digest", func() error {
			_, _, err := cl.RegisterModel(ctx, api.RegisterModelBody{Name: "m", Checkpoint: unknown})
			return err
		}, http.StatusBadRequest, []string{"checkpoint", "digest", unknown}},
		{"model of unknown sweep", func() error {
			_, _, err := cl.RegisterModel(ctx, api.RegisterModelBody{Name: "m", SweepID: unknown})
			return err
		}, http.StatusNotFound, []string{"sweep_id", unknown}},
		{"model of a job without checkpoint", func() error {
			_, _, err := cl.RegisterModel(ctx, api.RegisterModelBody{Name: "m", JobID: j.ID})
			return err
		}, http.StatusConflict, []string{"job_id", j.ID}},
		{"unknown model", func() error { _, err := cl.Models(ctx, "nope"); return err },
			http.StatusNotFound, []string{"nope"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if got := apiStatus(err); got != tt.status {
				t.Fatalf("status %d (%v), want %d", got, err, tt.status)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %q", err, w)
				}
			}
		})
	}
	if sws, err := cl.Sweeps(ctx, ""); err != nil || len(sws) != 0 {
		t.Fatalf("sweeps after rejected submissions: %v, %d", err, len(sws))
	}
}

func TestModelRegistry(t *testing.T) {
	c := newCluster(t, 1, nil)
	s := c.nodes[0].srv
	cl := c.client()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	j := submit(t, cl, testSpec("modelled"))
	var digests []string
	for step := range 2 {
		d := uploadBlob(t, s.HTTPAddr(), testCheckpoint(fmt.Sprintf("checkpoint %d", step)))
		if _, err := cl.RegisterCheckpoint(ctx, api.RegisterCheckpointBody{Digest: d, JobID: j.ID, Step: int64(step)}); err != nil {
			t.Fatal(err)
		}
		digests = append(digests, d)
	}
	v1, created, err := cl.RegisterModel(ctx, api.RegisterModelBody{Name: "unet", Checkpoint: digests[0]})
	if err != nil || !created || v1.Version != 1 || v1.Checkpoint != digests[0] || v1.JobID != j.ID {
		t.Fatalf("register by checkpoint: %v, created %v, %+v", err, created, v1)
	}
	// By job: its latest checkpoint, the second.
	v2, created, err := cl.RegisterModel(ctx, api.RegisterModelBody{Name: "unet", JobID: j.ID})
	if err != nil || !created || v2.Version != 2 || v2.Checkpoint != digests[1] {
		t.Fatalf("register by job: %v, created %v, %+v", err, created, v2)
	}
	// The latest version's checkpoint again: no new version.
	again, created, err := cl.RegisterModel(ctx, api.RegisterModelBody{Name: "unet", Checkpoint: digests[1]})
	if err != nil || created || again.Version != 2 {
		t.Fatalf("re-registering the latest: %v, created %v, %+v", err, created, again)
	}
	if _, _, err := cl.RegisterModel(ctx, api.RegisterModelBody{Name: "other.name_2", Checkpoint: digests[0]}); err != nil {
		t.Fatal(err)
	}
	// A name that is not one URL path segment is refused, as a sweep spec
	// with such a name is.
	for _, bad := range []string{"other/name", "unet:predict", "my model", "-dash"} {
		_, _, err := cl.RegisterModel(ctx, api.RegisterModelBody{Name: bad, Checkpoint: digests[0]})
		if apiStatus(err) != http.StatusBadRequest || !strings.Contains(err.Error(), "name: invalid request: ") || !strings.Contains(err.Error(), strconv.Quote(bad)) {
			t.Errorf("register %q: %v, want a 400 naming the name", bad, err)
		}
	}
	vs, err := cl.Models(ctx, "unet")
	if err != nil || len(vs) != 2 || vs[0].Version != 1 || vs[1].Version != 2 {
		t.Fatalf("versions of unet: %v, %+v", err, vs)
	}
	if vs, err := cl.Models(ctx, "other.name_2"); err != nil || len(vs) != 1 {
		t.Fatalf("versions of other.name_2: %v, %+v", err, vs)
	}
	if all, err := cl.Models(ctx, ""); err != nil || len(all) != 3 {
		t.Fatalf("all versions: %v, %d", err, len(all))
	}
}

func TestSweepLeaderboard(t *testing.T) {
	tr := func(n int, has bool, best float64) structs.Trial {
		t := structs.Trial{Number: n, HasValue: has, BestValue: best}
		if has {
			t.BestBudget = 1
		}
		return t
	}
	// Trial 6's results all diverged, as the FSM records them: a value,
	// but no finite best (0 at budget 0). It ranks after every finite
	// result in either mode, though 0 would beat them all when minimizing.
	diverged := structs.Trial{Number: 6, HasValue: true, Budget: 2}
	trials := []structs.Trial{tr(0, false, 0), tr(1, true, 0.5), tr(2, true, 0.9), tr(3, false, 0), tr(4, true, 0.5), tr(5, true, 0.1), diverged}
	tests := []struct {
		mode tuning.Mode
		want []int
	}{
		{tuning.Maximize, []int{2, 1, 4, 5, 6, 0, 3}},
		{tuning.Minimize, []int{5, 1, 4, 2, 6, 0, 3}},
	}
	for _, tt := range tests {
		t.Run(string(tt.mode), func(t *testing.T) {
			var got []int
			for _, x := range leaderboard(trials, tt.mode) {
				got = append(got, x.Number)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("order %v, want %v", got, tt.want)
			}
		})
	}
	if trials[0].Number != 0 || trials[2].Number != 2 {
		t.Fatal("leaderboard reordered its argument")
	}
	if got := leaderboard(nil, tuning.Maximize); got == nil || len(got) != 0 {
		t.Fatalf("empty leaderboard %#v, want an empty list", got)
	}
}

// TestSweepSurvivesLeaderKill runs a TPE + ASHA sweep on a 3-coordinator
// cluster and shuts the leader down mid-sweep: the new leader's controller
// rebuilds from the log and finishes the sweep, and every survivor's state
// replays exactly.
func TestSweepSurvivesLeaderKill(t *testing.T) {
	c := newCluster(t, 3, fastSweeps)
	var addrs []string
	for _, n := range c.nodes {
		addrs = append(addrs, n.srv.HTTPAddr())
	}
	c.addWorker("w1", 3)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	spec := testSweepSpec("kill", 9, 3, 9)
	spec.Searcher = tuning.SearcherSpec{Name: tuning.SearcherTPE, TPE: tuning.TPEConfig{NStartup: 3}}
	spec.Scheduler = tuning.SchedulerSpec{Name: tuning.SchedulerASHA}
	cl := api.New(addrs...)
	sw, err := cl.SubmitSweep(ctx, "sweep-kill", spec)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := cl.SubmitSweep(ctx, "sweep-kill", spec); err != nil || again.ID != sw.ID {
		t.Fatalf("resubmission: %v, %+v, want sweep %s", err, again, sw.ID)
	}
	if sw.DatasetVersionID != shapesV1 || sw.State != api.SweepRunning {
		t.Fatalf("submitted sweep: %+v", sw)
	}

	dctx, stopDriver := context.WithCancel(ctx)
	d := newTrialDriver(t, addrs, "w1")
	driverDone := make(chan struct{})
	go func() {
		defer close(driverDone)
		d.run(dctx)
	}()
	defer func() { stopDriver(); <-driverDone }()

	old := c.leader(nil)
	survivors := c.followers(old)
	waitSweep(t, old.srv, sw.ID, 60*time.Second, "results before the kill", func(sw *api.Sweep) error {
		if len(sw.Results) < 5 || sw.RunningTrials() == 0 {
			return fmt.Errorf("%d results, %d trials running", len(sw.Results), sw.RunningTrials())
		}
		return nil
	})
	killed := time.Now()
	for i, n := range c.nodes {
		if n == old {
			c.stop(i)
		}
	}
	l := c.leader(survivors)
	done := waitSweep(t, l.srv, sw.ID, 90*time.Second, "the sweep to complete", sweepIn(api.SweepCompleted))
	t.Logf("sweep done %v after the kill of %s: %d trials, %d results; new leader %s",
		time.Since(killed).Round(time.Millisecond), old.cfg.NodeID, len(done.Trials), len(done.Results), l.cfg.NodeID)
	stopDriver()
	<-driverDone
	c.converged(survivors)

	if len(done.Trials) != spec.MaxTrials {
		t.Errorf("%d trials, want %d", len(done.Trials), spec.MaxTrials)
	}
	checkResults(t, done)
	stopped := 0
	for _, tr := range done.Trials {
		j, err := l.srv.State().Job(tr.JobID)
		if err != nil {
			t.Fatalf("trial %d: %v", tr.Number, err)
		}
		switch tr.State {
		case api.TrialStopped:
			stopped++
			if j.State != structs.JobCancelled {
				t.Errorf("stopped trial %d: job %s is %s, want cancelled", tr.Number, j.ID, j.State)
			}
		case api.TrialCompleted:
			if j.State != structs.JobSucceeded || tr.Budget != spec.Budget.Max {
				t.Errorf("completed trial %d: job %s, budget %d", tr.Number, j.State, tr.Budget)
			}
		default:
			t.Errorf("trial %d ended %s (%s)", tr.Number, tr.State, tr.Error)
		}
		if j.SweepID != sw.ID || j.Trial != tr.Number || j.DatasetVersionID != shapesV1 {
			t.Errorf("trial %d: job %s names sweep %q trial %d, dataset %q", tr.Number, j.ID, j.SweepID, j.Trial, j.DatasetVersionID)
		}
	}
	if stopped == 0 {
		t.Errorf("ASHA stopped no trial: %+v", done.Trials)
	}

	// Best is the trial checkpoint with the best objective.
	var bestDigest string
	bestValue := math.Inf(-1)
	for _, tr := range done.Trials {
		for _, cp := range l.srv.State().Checkpoints(tr.JobID) {
			if v, ok := cp.Metrics[sweepMetric]; ok && v > bestValue {
				bestDigest, bestValue = cp.Digest, v
			}
		}
	}
	if done.Best == nil || done.Best.Checkpoint != bestDigest || done.Best.Value != bestValue {
		t.Errorf("best %+v, want checkpoint %s with %v", done.Best, bestDigest, bestValue)
	} else if done.Trials[done.Best.Trial].JobID != done.Best.JobID {
		t.Errorf("best names trial %d and job %s", done.Best.Trial, done.Best.JobID)
	}
	for _, n := range survivors {
		checkReplay(t, ctx, n.srv.HTTPAddr(), done)
	}
	vs, err := api.New(l.srv.HTTPAddr()).Models(ctx, spec.Name)
	if err != nil || len(vs) != 1 || done.Best == nil || vs[0].Checkpoint != done.Best.Checkpoint || vs[0].SweepID != sw.ID {
		t.Errorf("model %s: %v, %+v; best %+v", spec.Name, err, vs, done.Best)
	}
	board, err := cl.SweepTrials(ctx, sw.ID)
	if err != nil || len(board) != len(done.Trials) || done.Best == nil || board[0].Number != done.Best.Trial {
		t.Errorf("leaderboard: %v, first of %d is not the best trial", err, len(board))
	}
}

// TestSweepTrialResumesAfterPreemption preempts a trial's attempt after an
// epoch that has no checkpoint: the job is requeued, its next attempt
// resumes from the latest checkpoint and reports that epoch again, and the
// sweep counts one trial whose results are each fed once.
func TestSweepTrialResumesAfterPreemption(t *testing.T) {
	c := newCluster(t, 1, fastSweeps)
	s := c.nodes[0].srv
	w := c.addWorker("w1", 1)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	sw, err := w.cl.SubmitSweep(ctx, "", testSweepSpec("preempt", 1, 1, 4))
	if err != nil {
		t.Fatal(err)
	}
	sw = waitSweep(t, s, sw.ID, 30*time.Second, "the first trial", func(sw *api.Sweep) error {
		if len(sw.Trials) != 1 {
			return fmt.Errorf("%d trials", len(sw.Trials))
		}
		return nil
	})
	jobID := sw.Trials[0].JobID
	d := newTrialDriver(t, []string{s.HTTPAddr()}, "w1")

	// Attempt 1: checkpoints at epochs 1 and 2; epoch 3 reported without
	// one; then preempted.
	a1 := w.assignment(jobID, 1)
	var ckpt2 string
	for e := 1; e <= 3; e++ {
		digest, err := d.epoch(ctx, a1, e, e < 3)
		if err != nil {
			t.Fatal(err)
		}
		if e == 2 {
			ckpt2 = digest
		}
		if running, err := d.waitJudged(ctx, a1, e); err != nil || !running {
			t.Fatalf("epoch %d judged: running %v, %v", e, running, err)
		}
	}
	if j := w.report(jobID, 1, api.AttemptPreempted, "spot reclaim"); j.State != api.JobPending && j.State != api.JobRunning {
		t.Fatalf("job after preemption: %s", j.State)
	}

	a2 := w.assignment(jobID, 2)
	if a2.ResumeFrom != ckpt2 {
		t.Fatalf("attempt 2 resumes from %q, want the epoch-2 checkpoint %s", a2.ResumeFrom, ckpt2)
	}
	if err := d.play(ctx, a2); err != nil {
		t.Fatal(err)
	}
	done := waitSweep(t, s, sw.ID, 60*time.Second, "the sweep to complete", sweepIn(api.SweepCompleted))
	checkResults(t, done)
	var budgets []int
	for _, r := range done.Results {
		budgets = append(budgets, r.Budget)
	}
	if !slices.Equal(budgets, []int{1, 2, 3, 4}) {
		t.Errorf("result budgets %v, want [1 2 3 4]", budgets)
	}
	tr := done.Trials[0]
	if len(done.Trials) != 1 || tr.State != api.TrialCompleted || tr.Error != "" || tr.Budget != 4 {
		t.Errorf("trials %+v, want one completed at budget 4", done.Trials)
	}
	j, err := s.State().Job(jobID)
	if err != nil || len(j.Attempts) != 2 || j.Attempts[0].State != structs.AttemptPreempted || j.State != structs.JobSucceeded {
		t.Fatalf("job: %v, %+v", err, j)
	}
	if done.Best == nil || done.Best.Checkpoint != j.LatestCheckpoint {
		t.Errorf("best %+v, want the last checkpoint %s", done.Best, j.LatestCheckpoint)
	}
	checkReplay(t, ctx, s.HTTPAddr(), done)
}

func TestSweepCancel(t *testing.T) {
	c := newCluster(t, 1, fastSweeps)
	s := c.nodes[0].srv
	cl := c.client()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	// No worker: the trials' jobs stay pending.
	sw, err := cl.SubmitSweep(ctx, "to-cancel", testSweepSpec("cancelled", 5, 2, 3))
	if err != nil {
		t.Fatal(err)
	}
	waitSweep(t, s, sw.ID, 30*time.Second, "two trials", func(sw *api.Sweep) error {
		if len(sw.Trials) != 2 {
			return fmt.Errorf("%d trials", len(sw.Trials))
		}
		return nil
	})
	got, err := cl.CancelSweep(ctx, sw.ID)
	if err != nil || got.State != api.SweepCancelled {
		t.Fatalf("cancel: %v, %+v", err, got)
	}
	for _, tr := range got.Trials {
		j, err := s.State().Job(tr.JobID)
		if err != nil || tr.State != api.TrialCancelled || j.State != structs.JobCancelled {
			t.Errorf("trial %d %s, job %v %+v", tr.Number, tr.State, err, j)
		}
	}
	if again, err := cl.CancelSweep(ctx, sw.ID); err != nil || again.State != api.SweepCancelled || len(again.Trials) != 2 {
		t.Fatalf("cancelling again: %v, %+v", err, again)
	}
	for _, tt := range []struct {
		state api.SweepState
		want  int
	}{{"", 1}, {api.SweepCancelled, 1}, {api.SweepRunning, 0}} {
		if sws, err := cl.Sweeps(ctx, tt.state); err != nil || len(sws) != tt.want {
			t.Errorf("sweeps in state %q: %v, %d, want %d", tt.state, err, len(sws), tt.want)
		}
	}
}
