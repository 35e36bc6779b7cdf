package sweeper

import (
	"bytes"
	"context"
	"log/slog"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/trainctl/trainctl/coordinator/structs"
	"github.com/trainctl/trainctl/tuning"
)

const lrSpace = "search_space:\n  lr: {type: loguniform, low: 0.0001, high: 0.1}\nobjective: {metric: val_loss, mode: min}\n"

func TestTrialJobID(t *testing.T) {
	if got := TrialJobID("sw-abc", 12); got != "sw-abc-t12" {
		t.Fatalf("TrialJobID = %q", got)
	}
}

// TestStepASHAHandWorked runs ASHA (η 3, budgets 1/3/9, min) over 9 trials
// phase by phase. Rung 1 values 5 4 6 3 7 2 8 1 9 in trial order: with n
// results at the rung a trial passes iff fewer than max(1, ⌊n/3⌋) are
// better, so 2, 4, 6, 8 stop. Rung 3 values of 0 1 3 5 7: 1.0 2.0 3.0 0.5
// 4.0, so 1, 3, 7 stop. 0 and 5 complete at 9.
func TestStepASHAHandWorked(t *testing.T) {
	spec := parseSpec(t, lrSpace+"scheduler: {name: asha, reduction_factor: 3}\nmax_trials: 9\nmax_concurrent: 9\nbudget: {min: 1, max: 9}\n")
	w := newWorld(t, spec)
	c := New(nil)

	req := w.step(c, 0)
	if req == nil || len(req.NewTrials) != 9 || req.Finish != nil || len(req.Results) != 0 {
		t.Fatalf("first step: %+v", req)
	}
	for i, nt := range req.NewTrials {
		if nt.Number != i || nt.JobID != TrialJobID("sw1", i) || nt.ResultsSeen != 0 || nt.Job.Hyperparameters.Epochs != 9 ||
			nt.Job.Hyperparameters.LR != nt.Params["lr"].Float() {
			t.Fatalf("new trial %d: %+v", i, nt)
		}
	}
	w.apply(req)

	rung1 := []float64{5, 4, 6, 3, 7, 2, 8, 1, 9}
	phases := []struct {
		name    string
		reports func()
		want    []string
		ends    []structs.TrialEnd
	}{
		{"rung 1", func() {
			for n, v := range rung1 {
				w.job(n).State = structs.JobRunning
				w.report(n, 1, 0, v)
			}
		}, []string{"0:1:promote", "1:1:promote", "2:1:stop", "3:1:promote", "4:1:stop", "5:1:promote", "6:1:stop", "7:1:promote", "8:1:stop"}, nil},
		{"epoch 2 crosses no rung", func() {
			for _, n := range []int{0, 1, 3, 5, 7} {
				w.report(n, 1, 1, 10)
			}
		}, []string{"0:2:continue", "1:2:continue", "3:2:continue", "5:2:continue", "7:2:continue"}, nil},
		{"rung 3", func() {
			for i, n := range []int{0, 1, 3, 5, 7} {
				w.report(n, 1, 2, []float64{1, 2, 3, 0.5, 4}[i])
			}
		}, []string{"0:3:promote", "1:3:stop", "3:3:stop", "5:3:promote", "7:3:stop"}, nil},
		{"max budget", func() {
			w.report(0, 1, 8, 0.8)
			w.report(5, 1, 8, 0.3)
			w.job(0).State, w.job(5).State = structs.JobSucceeded, structs.JobSucceeded
		}, []string{"0:9:complete", "5:9:complete"}, []structs.TrialEnd{{Trial: 0, State: structs.TrialCompleted}, {Trial: 5, State: structs.TrialCompleted}}},
	}
	for i, ph := range phases {
		ph.reports()
		req := w.step(c, i+1)
		if got := decisions(req); !slices.Equal(got, ph.want) {
			t.Fatalf("%s: decisions %v, want %v", ph.name, got, ph.want)
		}
		if !slices.Equal(req.Ends, ph.ends) {
			t.Fatalf("%s: ends %+v, want %+v", ph.name, req.Ends, ph.ends)
		}
		if len(req.NewTrials) != 0 {
			t.Fatalf("%s: new trials beyond max_trials: %+v", ph.name, req.NewTrials)
		}
		if last := i == len(phases)-1; last != (req.Finish != nil) {
			t.Fatalf("%s: finish %+v", ph.name, req.Finish)
		}
		w.apply(req)
	}

	sw := w.sw
	wantStates := []structs.TrialState{"completed", "stopped", "stopped", "stopped", "stopped", "completed", "stopped", "stopped", "stopped"}
	for n, want := range wantStates {
		if sw.Trials[n].State != want {
			t.Errorf("trial %d state %s, want %s", n, sw.Trials[n].State, want)
		}
	}
	if sw.State != structs.SweepCompleted || sw.Error != "" {
		t.Errorf("sweep %s %q, want completed", sw.State, sw.Error)
	}
	wantBest := structs.SweepBest{Trial: 5, JobID: "sw1-t5", Checkpoint: "ck-sw1-t5-a1-s90", Value: 0.3}
	if sw.Best == nil || *sw.Best != wantBest {
		t.Errorf("best %+v, want %+v", sw.Best, wantBest)
	}
	if got := sw.Trials[7].BestCheckpoint; got != "ck-sw1-t7-a1-s10" || sw.Trials[7].BestCheckpointValue != 1 {
		t.Errorf("trial 7 best checkpoint %s %v, want its epoch 0 one at 1", got, sw.Trials[7].BestCheckpointValue)
	}
	if req := w.step(c, 99); req != nil {
		t.Errorf("step of a finished sweep: %+v", req)
	}
	rep, err := Replay(context.Background(), sw)
	if err != nil || !rep.OK() || rep.Results != len(sw.Results) || rep.Suggestions != 9 {
		t.Errorf("replay %+v, %v", rep, err)
	}
}

// TestStepResumedTrial checks that a failed attempt is no result and that
// a resumed attempt repeating an epoch is not judged twice.
func TestStepResumedTrial(t *testing.T) {
	spec := parseSpec(t, lrSpace+"max_trials: 1\nbudget: {max: 5}\n")
	w := newWorld(t, spec)
	c := New(nil)
	w.apply(w.step(c, 0))

	j := w.job(0)
	j.State = structs.JobRunning
	w.report(0, 1, 0, 0.9)
	w.report(0, 1, 1, 0.8)
	// Attempt 1 fails with restarts left: the job is requeued.
	j.State, j.Restarts = structs.JobPending, 1
	req := w.step(c, 1)
	if got, want := decisions(req), []string{"0:1:continue", "0:2:continue"}; !slices.Equal(got, want) || len(req.Ends) != 0 {
		t.Fatalf("attempt 1: decisions %v ends %+v, want %v and no end", got, req.Ends, want)
	}
	w.apply(req)
	if tr := w.sw.Trials[0]; tr.State != structs.TrialRunning || tr.Budget != 2 {
		t.Fatalf("trial after a failed attempt: %+v", tr)
	}

	// Attempt 2 resumes from the epoch 0 checkpoint and repeats epoch 1.
	j.State = structs.JobRunning
	w.report(0, 2, 1, 0.85)
	if req := w.step(c, 2); req != nil {
		t.Fatalf("a repeated epoch made a step: %+v", req)
	}
	w.report(0, 2, 2, 0.7)
	req = w.step(c, 3)
	if got, want := decisions(req), []string{"0:3:continue"}; !slices.Equal(got, want) {
		t.Fatalf("attempt 2: decisions %v, want %v", got, want)
	}
	// The repeated epoch 1 is valued by its own attempt's report.
	if len(req.Checkpoints) != 1 || req.Checkpoints[0].Checkpoint != "ck-sw1-t0-a2-s30" || req.Checkpoints[0].Value != 0.7 {
		t.Fatalf("checkpoints %+v", req.Checkpoints)
	}
	w.apply(req)
	if len(w.sw.Results) != 3 {
		t.Fatalf("results %+v", w.sw.Results)
	}
}

// TestStepEnds checks how trials end with their jobs and that a failed
// trial is replaced while max_trials allows.
func TestStepEnds(t *testing.T) {
	tests := []struct {
		name     string
		job      func(w *world) // acts on trial 0's job
		report   float64        // a rung-1 report of trial 0 when not 0
		wantEnd  []structs.TrialEnd
		wantNew  int // new trials in the step
		decision []string
	}{
		{"succeeded", func(w *world) { w.job(0).State = structs.JobSucceeded },
			0, []structs.TrialEnd{{Trial: 0, State: structs.TrialCompleted}}, 1, nil},
		{"failed", func(w *world) { w.job(0).State, w.job(0).Error = structs.JobFailed, "oom" },
			0, []structs.TrialEnd{{Trial: 0, State: structs.TrialFailed, Error: "oom"}}, 1, nil},
		{"cancelled", func(w *world) { w.job(0).State = structs.JobCancelled },
			0, []structs.TrialEnd{{Trial: 0, State: structs.TrialCancelled}}, 1, nil},
		{"missing job", func(w *world) { delete(w.jobs, w.sw.Trials[0].JobID) },
			0, []structs.TrialEnd{{Trial: 0, State: structs.TrialFailed, Error: "job not found"}}, 1, nil},
		{"still pending", func(w *world) {}, 0, nil, 0, nil},
		{"stopped and cancelled", func(w *world) { w.job(0).State = structs.JobCancelled },
			5, nil, 1, []string{"0:1:stop"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := parseSpec(t, lrSpace+"scheduler: {name: asha}\nmax_trials: 3\nmax_concurrent: 2\nbudget: {max: 9}\n")
			w := newWorld(t, spec)
			c := New(nil)
			w.apply(w.step(c, 0))
			if len(w.sw.Trials) != 2 {
				t.Fatalf("trials %d, want max_concurrent 2", len(w.sw.Trials))
			}
			w.report(1, 1, 0, 1) // trial 1 sets the bar at rung 1
			w.apply(w.step(c, 1))
			tt.job(w)
			if tt.report != 0 {
				w.report(0, 1, 0, tt.report)
			}
			req := w.step(c, 2)
			var ends []structs.TrialEnd
			var got []string
			if req != nil {
				ends, got = req.Ends, decisions(req)
			}
			if !slices.Equal(ends, tt.wantEnd) || !slices.Equal(got, tt.decision) {
				t.Fatalf("ends %+v decisions %v, want %+v %v", ends, got, tt.wantEnd, tt.decision)
			}
			if n := 0; req != nil {
				n = len(req.NewTrials)
				if n != tt.wantNew {
					t.Fatalf("new trials %d, want %d", n, tt.wantNew)
				}
				if n == 1 && (req.NewTrials[0].Number != 2 || req.NewTrials[0].ResultsSeen != 1+len(req.Results)) {
					t.Fatalf("replacement %+v", req.NewTrials[0])
				}
			} else if tt.wantNew != 0 {
				t.Fatalf("no step, want %d new trials", tt.wantNew)
			}
			if req != nil && req.Finish != nil {
				t.Fatalf("finish with trial 1 running: %+v", req.Finish)
			}
		})
	}
}

// TestStepMaxConcurrent checks that at most max_concurrent trials run and
// that an idle pass records nothing.
func TestStepMaxConcurrent(t *testing.T) {
	spec := parseSpec(t, lrSpace+"max_trials: 5\nmax_concurrent: 2\nbudget: {max: 2}\n")
	w := newWorld(t, spec)
	c := New(nil)
	w.apply(w.step(c, 0))
	if len(w.sw.Trials) != 2 {
		t.Fatalf("trials %d, want 2", len(w.sw.Trials))
	}
	if req := w.step(c, 1); req != nil {
		t.Fatalf("idle step: %+v", req)
	}
	for i := 2; len(w.sw.Trials) < 5 || w.sw.RunningTrials() > 0; i++ {
		if i > 20 {
			t.Fatal("sweep does not end")
		}
		n := len(w.sw.Trials) - w.sw.RunningTrials() // the oldest running trial
		w.report(n, 1, 0, float64(n))
		w.report(n, 1, 1, float64(n)/2)
		w.job(n).State = structs.JobSucceeded
		req := w.step(c, i)
		w.apply(req)
		if r := w.sw.RunningTrials(); r > 2 || (len(w.sw.Trials) < 5 && r != 2) {
			t.Fatalf("step %d: %d trials running", i, r)
		}
		if (req.Finish != nil) != (w.sw.RunningTrials() == 0) {
			t.Fatalf("step %d: finish %+v with %d running", i, req.Finish, w.sw.RunningTrials())
		}
	}
	if w.sw.State != structs.SweepCompleted || len(w.sw.Trials) != 5 || w.sw.Best == nil || w.sw.Best.Trial != 0 || w.sw.Best.Value != 0 {
		t.Fatalf("sweep %s, %d trials, best %+v", w.sw.State, len(w.sw.Trials), w.sw.Best)
	}
}

// TestStepGridExhausted checks that an exhausted grid is recorded and the
// sweep finishes once its last trial ends, not before.
func TestStepGridExhausted(t *testing.T) {
	spec := parseSpec(t, "search_space:\n  optimizer: {type: choice, values: [adam, sgd]}\nobjective: {metric: val_mean_iou, mode: max}\n"+
		"searcher: {name: grid}\nmax_trials: 5\nmax_concurrent: 5\nbudget: {max: 1}\n")
	w := newWorld(t, spec)
	c := New(nil)
	req := w.step(c, 0)
	if len(req.NewTrials) != 2 || !req.Exhausted || req.Finish != nil {
		t.Fatalf("first step: %d trials, exhausted %v, finish %+v", len(req.NewTrials), req.Exhausted, req.Finish)
	}
	if req.NewTrials[0].Params["optimizer"] != tuning.String("adam") || req.NewTrials[1].Job.Hyperparameters.Optimizer != "sgd" {
		t.Fatalf("grid points %s, %s", req.NewTrials[0].Params, req.NewTrials[1].Params)
	}
	w.apply(req)

	w.report(0, 1, 0, 0.5)
	w.job(0).State = structs.JobSucceeded
	req = w.step(c, 1)
	if req.Exhausted || len(req.NewTrials) != 0 || req.Finish != nil {
		t.Fatalf("step with trial 1 running: %+v", req)
	}
	w.apply(req)

	w.report(1, 1, 0, 0.7)
	w.job(1).State = structs.JobSucceeded
	req = w.step(c, 2)
	if req.Finish == nil || req.Finish.State != structs.SweepCompleted || req.Best == nil || req.Best.Trial != 1 {
		t.Fatalf("last step: finish %+v best %+v", req.Finish, req.Best)
	}
	w.apply(req)
}

// TestStepEveryTrialFailed checks the finish of a sweep without a result.
func TestStepEveryTrialFailed(t *testing.T) {
	tests := []struct {
		name string
		end  func(w *world)
		want string
	}{
		{"failed", func(w *world) {
			w.job(0).State, w.job(0).Error = structs.JobFailed, "boom"
			w.job(1).State, w.job(1).Error = structs.JobFailed, "bang"
		}, "every trial failed: trial 0: boom"},
		{"diverged", func(w *world) {
			w.report(0, 1, 0, math.NaN())
			w.report(1, 1, 0, math.Inf(1))
			w.job(0).State, w.job(1).State = structs.JobSucceeded, structs.JobSucceeded
		}, "every trial failed: trial 0: completed without a finite val_loss"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, parseSpec(t, lrSpace+"max_trials: 2\nmax_concurrent: 2\nbudget: {max: 1}\n"))
			c := New(nil)
			w.apply(w.step(c, 0))
			tt.end(w)
			req := w.step(c, 1)
			if req.Finish == nil || req.Finish.State != structs.SweepFailed || req.Finish.Error != tt.want {
				t.Fatalf("finish %+v, want failed %q", req.Finish, tt.want)
			}
			for _, r := range req.Results {
				if !r.NonFinite || r.Value != 0 {
					t.Fatalf("non-finite result recorded as %+v", r)
				}
			}
			if req.Best != nil || len(req.Checkpoints) != 0 {
				t.Fatalf("best %+v checkpoints %+v from non-finite values", req.Best, req.Checkpoints)
			}
			w.apply(req)
		})
	}
}

func TestBestCheckpoint(t *testing.T) {
	m := func(attempt int, step int64, v float64) structs.Metric {
		return structs.Metric{Attempt: attempt, Step: step, Values: map[string]float64{"m": v}}
	}
	ck := func(d string, attempt int, step int64) *structs.Checkpoint {
		return &structs.Checkpoint{Digest: d, Attempt: attempt, Step: step}
	}
	tests := []struct {
		name   string
		mode   tuning.Mode
		ms     []structs.Metric
		cks    []*structs.Checkpoint
		want   string
		wantV  float64
		wantOK bool
	}{
		{"min", tuning.Minimize, []structs.Metric{m(1, 10, 3), m(1, 20, 1), m(1, 30, 2)},
			[]*structs.Checkpoint{ck("a", 1, 10), ck("b", 1, 20), ck("c", 1, 30)}, "b", 1, true},
		{"max", tuning.Maximize, []structs.Metric{m(1, 10, 3), m(1, 20, 1), m(1, 30, 2)},
			[]*structs.Checkpoint{ck("a", 1, 10), ck("b", 1, 20), ck("c", 1, 30)}, "a", 3, true},
		{"NaN never best", tuning.Minimize, []structs.Metric{m(1, 10, 3), m(1, 20, math.NaN()), m(1, 30, math.Inf(-1))},
			[]*structs.Checkpoint{ck("a", 1, 10), ck("b", 1, 20), ck("c", 1, 30)}, "a", 3, true},
		{"only NaN", tuning.Maximize, []structs.Metric{m(1, 10, math.NaN())},
			[]*structs.Checkpoint{ck("a", 1, 10)}, "", 0, false},
		{"tie goes to the later step", tuning.Minimize, []structs.Metric{m(1, 10, 1), m(1, 20, 1)},
			[]*structs.Checkpoint{ck("b", 1, 20), ck("a", 1, 10)}, "b", 1, true},
		{"mid-epoch checkpoint has no value", tuning.Minimize, []structs.Metric{m(1, 10, 5)},
			[]*structs.Checkpoint{ck("a", 1, 10), ck("b", 1, 15)}, "a", 5, true},
		{"same attempt's report", tuning.Minimize, []structs.Metric{m(1, 20, 1), m(2, 20, 4)},
			[]*structs.Checkpoint{ck("a2", 2, 20)}, "a2", 4, true},
		{"other attempt's report", tuning.Minimize, []structs.Metric{m(1, 20, 1)},
			[]*structs.Checkpoint{ck("a2", 2, 20)}, "a2", 1, true},
		{"no checkpoints", tuning.Minimize, []structs.Metric{m(1, 20, 1)}, nil, "", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, v, ok := BestCheckpoint("m", tt.mode, tt.ms, tt.cks)
			if d != tt.want || v != tt.wantV || ok != tt.wantOK {
				t.Fatalf("BestCheckpoint = %q %v %v, want %q %v %v", d, v, ok, tt.want, tt.wantV, tt.wantOK)
			}
		})
	}
}

// midSweep drives a TPE+ASHA sweep through a few steps, leaving it mid-way.
func midSweep(t *testing.T) *world {
	spec := parseSpec(t, lrSpace+"searcher: {name: tpe, n_startup: 2}\nscheduler: {name: asha}\nmax_trials: 12\nmax_concurrent: 3\nbudget: {max: 9}\nseed: 5\n")
	w := newWorld(t, spec)
	c := New(nil)
	w.apply(w.step(c, 0))
	for i := 1; i < 8; i++ {
		for n := range w.sw.Trials {
			if w.sw.Trials[n].State == structs.TrialRunning {
				e := w.sw.Trials[n].Budget
				v := curve(w.sw.Trials[n].Params["lr"].Float(), e) + 0.3*float64(n%3)
				if n == 4 {
					v = math.NaN() // a diverged trial
				}
				w.report(n, 1, e, v)
			}
		}
		w.apply(w.step(c, i))
	}
	return w
}

// curve is a learning curve that is best at lr 0.01.
func curve(lr float64, epoch int) float64 {
	d := math.Log10(lr) + 2
	return d*d + 1/float64(epoch+1)
}

// TestStepDeterministic checks that two fresh controllers, and a
// controller whose step was never committed, give identical requests.
func TestStepDeterministic(t *testing.T) {
	w := midSweep(t)
	// Pending reports for every running trial, and one ended job.
	for n := range w.sw.Trials {
		if tr := w.sw.Trials[n]; tr.State == structs.TrialRunning {
			w.report(n, 1, tr.Budget, curve(tr.Params["lr"].Float(), tr.Budget)+0.01*float64(n))
		}
	}
	w.job(len(w.sw.Trials) - 1).State = structs.JobFailed
	now := t0.Add(100)

	a, b := New(nil), New(nil)
	ra, err := a.Step(w.view(), now)
	if err != nil {
		t.Fatal(err)
	}
	rb, err := b.Step(w.view(), now)
	if err != nil {
		t.Fatal(err)
	}
	if ra == nil || len(ra.Results) == 0 || len(ra.NewTrials) == 0 {
		t.Fatalf("want results and new trials, got %+v", ra)
	}
	if ja, jb := mustJSON(t, ra), mustJSON(t, rb); ja != jb {
		t.Fatalf("fresh controllers differ:\n%s\n%s", ja, jb)
	}
	// a's step is not committed: stepping again rebuilds its scheduler.
	ra2, err := a.Step(w.view(), now)
	if err != nil {
		t.Fatal(err)
	}
	if ja, ja2 := mustJSON(t, ra), mustJSON(t, ra2); ja != ja2 {
		t.Fatalf("uncommitted step repeated differently:\n%s\n%s", ja, ja2)
	}
	// Committed: a's cache and a fresh controller agree on what follows.
	w.apply(ra2)
	for n := range w.sw.Trials {
		if tr := w.sw.Trials[n]; tr.State == structs.TrialRunning {
			w.report(n, 1, tr.Budget, 0.5+0.1*float64(n))
		}
	}
	rc, err := a.Step(w.view(), now.Add(1))
	if err != nil {
		t.Fatal(err)
	}
	rd, err := New(nil).Step(w.view(), now.Add(1))
	if err != nil {
		t.Fatal(err)
	}
	if jc, jd := mustJSON(t, rc), mustJSON(t, rd); jc != jd || len(rc.Results) == 0 {
		t.Fatalf("cached and fresh controllers differ after a commit:\n%s\n%s", jc, jd)
	}
}

// TestStepWarnsOnDivergentLog checks that a rebuild keeps a recorded
// decision that replays differently and logs it.
func TestStepWarnsOnDivergentLog(t *testing.T) {
	w := midSweep(t)
	i := slices.IndexFunc(w.sw.Results, func(r structs.SweepResult) bool { return r.Decision == "stop" })
	if i < 0 {
		t.Fatal("no stop decision in the sweep")
	}
	w.sw.Results[i].Decision = "continue"
	var buf bytes.Buffer
	c := New(slog.New(slog.NewTextHandler(&buf, nil)))
	if _, err := c.Step(w.view(), t0.Add(100)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "level=WARN") || !strings.Contains(buf.String(), "recorded=continue replayed=stop") {
		t.Fatalf("log: %s", buf.String())
	}
}

func TestStepErrors(t *testing.T) {
	spec := structs.NewSweepSpec(parseSpec(t, lrSpace))
	bad := spec
	bad.Scheduler.Name = "nope"
	tests := []struct {
		name string
		v    View
		want string
	}{
		{"no sweep", View{}, "no sweep"},
		{"misnumbered", View{Sweep: &structs.Sweep{ID: "x", Spec: spec, State: structs.SweepRunning,
			Trials: []structs.Trial{{Number: 1}}}}, "trial at index 0 has number 1"},
		{"no concurrency", View{Sweep: &structs.Sweep{ID: "x", Spec: func() structs.SweepSpec { s := spec; s.MaxConcurrent = 0; return s }(),
			State: structs.SweepRunning}}, "max_concurrent 0 must be at least 1"},
		{"bad scheduler", View{Sweep: &structs.Sweep{ID: "x", Spec: bad, State: structs.SweepRunning}}, `unknown scheduler "nope"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := New(nil).Step(tt.v, t0)
			if err == nil || !strings.Contains(err.Error(), tt.want) || req != nil {
				t.Fatalf("Step = %+v, %v; want error %q", req, err, tt.want)
			}
		})
	}
	done := &structs.Sweep{ID: "x", Spec: spec, State: structs.SweepCancelled}
	if req, err := New(nil).Step(View{Sweep: done}, t0); req != nil || err != nil {
		t.Fatalf("step of a cancelled sweep = %+v, %v", req, err)
	}
}

// TestStepRebuildsOnOtherLog checks that a controller whose uncommitted
// step was superseded by another leader's step with as many results
// notices it and rebuilds its scheduler from the committed log: ASHA
// judges trial 1's 10 at rung 1 against trial 0's committed 50 (promote),
// not against the 5 the stale scheduler saw (stop).
func TestStepRebuildsOnOtherLog(t *testing.T) {
	w := newWorld(t, parseSpec(t, lrSpace+"scheduler: {name: asha}\nmax_trials: 9\nmax_concurrent: 3\nbudget: {max: 9}\n"))
	var buf bytes.Buffer
	a := New(slog.New(slog.NewTextHandler(&buf, nil)))
	w.apply(w.step(a, 0))

	w.report(0, 1, 0, 5)
	if ra := w.step(a, 1); !slices.Equal(decisions(ra), []string{"0:1:promote"}) {
		t.Fatalf("a's step: %v", decisions(ra))
	}
	// Another leader commits trial 0's epoch as 50 instead (a rewritten
	// report stands in for whatever made the logs differ).
	ms := w.metrics[w.sw.Trials[0].JobID]
	ms[len(ms)-1].Values["val_loss"] = 50
	w.apply(w.step(New(nil), 2))

	w.report(1, 1, 0, 10)
	buf.Reset()
	rc := w.step(a, 3)
	rd := w.step(New(nil), 3)
	if jc, jd := mustJSON(t, rc), mustJSON(t, rd); jc != jd || !slices.Equal(decisions(rc), []string{"1:1:promote"}) {
		t.Fatalf("a after another leader's step differs from a fresh controller:\n%s\n%s", jc, jd)
	}
	if !strings.Contains(buf.String(), "rebuilt") {
		t.Fatalf("no rebuild logged: %s", buf.String())
	}
}

// TestStepSuggestError checks that a searcher or trial job error finishes
// the sweep failed once no trial runs, and only then.
func TestStepSuggestError(t *testing.T) {
	t.Run("bad job", func(t *testing.T) {
		w := newWorld(t, parseSpec(t, lrSpace+"max_trials: 2\n"))
		w.sw.Spec.Job.Hyperparameters.Batch = -1
		req := w.step(New(nil), 0)
		if req == nil || len(req.NewTrials) != 0 || req.Finish == nil || req.Finish.State != structs.SweepFailed ||
			!strings.HasPrefix(req.Finish.Error, "trial 0: job: sweep s: ") {
			t.Fatalf("step: %+v", req)
		}
	})
	t.Run("searcher", func(t *testing.T) {
		w := newWorld(t, parseSpec(t, lrSpace+"searcher: {name: tpe, n_startup: 2}\nmax_trials: 4\nmax_concurrent: 3\nbudget: {max: 1}\n"))
		c := New(nil)
		w.apply(w.step(c, 0))
		w.sw.Trials[0].Params = tuning.Params{"lr": tuning.IntValue(3)} // not a float: TPE rejects its history
		w.report(0, 1, 0, 0.5)
		w.report(2, 1, 0, 0.6)
		w.job(0).State, w.job(2).State = structs.JobSucceeded, structs.JobSucceeded
		req := w.step(c, 1)
		if len(req.Ends) != 2 || len(req.NewTrials) != 0 || req.Finish != nil {
			t.Fatalf("step with trial 1 running: %+v", req)
		}
		w.apply(req)
		w.report(1, 1, 0, 0.4)
		w.job(1).State = structs.JobSucceeded
		req = w.step(c, 2)
		if req.Finish == nil || req.Finish.State != structs.SweepFailed || !strings.HasPrefix(req.Finish.Error, "trial 3: suggest: tuning: tpe: trial 0: ") {
			t.Fatalf("last step: finish %+v", req.Finish)
		}
		w.apply(req)
	})
}

// TestStepIgnoresUnjudgedEpochs: a stopped trial's job may finish another
// epoch before its cancel lands; that epoch was never judged, so neither
// its checkpoint nor its value may become the trial's or the sweep's best.
func TestStepIgnoresUnjudgedEpochs(t *testing.T) {
	spec := parseSpec(t, lrSpace+"scheduler: {name: asha, reduction_factor: 2}\nmax_trials: 2\nmax_concurrent: 2\nbudget: {min: 1, max: 4}\n")
	w := newWorld(t, spec)
	c := New(nil)
	w.apply(w.step(c, 0))
	w.job(0).State, w.job(1).State = structs.JobRunning, structs.JobRunning
	w.report(0, 1, 0, 0.5)
	w.apply(w.step(c, 1))
	w.report(1, 1, 0, 0.9) // worse than trial 0 at rung 1: stopped
	req := w.step(c, 2)
	if got, want := decisions(req), []string{"1:1:stop"}; !slices.Equal(got, want) {
		t.Fatalf("decisions %v, want %v", got, want)
	}
	w.apply(req)
	// Trial 1's epoch 1 ends, much better, before the cancel reaches it.
	w.report(1, 1, 1, 0.1)
	if req = w.step(c, 3); req != nil {
		for _, ck := range req.Checkpoints {
			if ck.Trial == 1 && ck.Value != 0.9 {
				t.Errorf("trial 1 valued by an unjudged epoch: %+v", ck)
			}
		}
		w.apply(req)
	}
	if tr := w.sw.Trials[1]; tr.BestCheckpointValue != 0.9 {
		t.Errorf("trial 1's best checkpoint %s at %v, want its judged epoch at 0.9", tr.BestCheckpoint, tr.BestCheckpointValue)
	}
	if w.sw.Best == nil || w.sw.Best.Trial != 0 || w.sw.Best.Value != 0.5 {
		t.Fatalf("best %+v, want trial 0 at 0.5", w.sw.Best)
	}
}
