package sweeper

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/trainctl/trainctl/coordinator/structs"
	"github.com/trainctl/trainctl/tuning"
)

// t0 is the time of the first step of every test.
var t0 = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

// parseSpec parses a sweep spec whose job and name are filled in.
func parseSpec(t testing.TB, body string) tuning.Spec {
	t.Helper()
	s, err := tuning.Parse([]byte("name: s\njob:\n  name: t\n  dataset: shapes@v1\n"+body), "sweep.yaml")
	if err != nil {
		t.Fatalf("parse spec: %v", err)
	}
	return s
}

// world is the state store of one sweep, as the FSM would hold it, with an
// applier that mimics the FSM's documented SweepStepRequest semantics just
// enough for these tests.
type world struct {
	t       testing.TB
	sw      *structs.Sweep
	jobs    map[string]*structs.Job
	metrics map[string][]structs.Metric
	ckpts   map[string][]*structs.Checkpoint
}

func newWorld(t testing.TB, spec tuning.Spec) *world {
	return &world{
		t:       t,
		sw:      &structs.Sweep{ID: "sw1", Spec: structs.NewSweepSpec(spec), State: structs.SweepRunning, SubmitTime: t0},
		jobs:    map[string]*structs.Job{},
		metrics: map[string][]structs.Metric{},
		ckpts:   map[string][]*structs.Checkpoint{},
	}
}

func (w *world) view() View {
	return View{Sweep: w.sw, Jobs: w.jobs, Metrics: w.metrics, Checkpoints: w.ckpts}
}

// job returns trial n's job.
func (w *world) job(n int) *structs.Job {
	w.t.Helper()
	if n >= len(w.sw.Trials) {
		w.t.Fatalf("no trial %d", n)
	}
	j := w.jobs[w.sw.Trials[n].JobID]
	if j == nil {
		w.t.Fatalf("no job for trial %d", n)
	}
	return j
}

// report records an epoch-end report of trial n's job (objective val_loss
// or whatever the spec names) at 0-based epoch e, step 10(e+1), by attempt,
// and registers the epoch-end checkpoint of that step.
func (w *world) report(n, attempt, epoch int, val float64) {
	w.t.Helper()
	j := w.job(n)
	step := int64(10 * (epoch + 1))
	w.metrics[j.ID] = append(w.metrics[j.ID],
		structs.Metric{JobID: j.ID, Attempt: attempt, Epoch: epoch, Step: step - 3, Values: map[string]float64{"loss": 99}},
		structs.Metric{JobID: j.ID, Attempt: attempt, Epoch: epoch, Step: step, Values: map[string]float64{w.sw.Spec.Objective.Metric: val}})
	w.ckpts[j.ID] = append(w.ckpts[j.ID], &structs.Checkpoint{
		Digest: fmt.Sprintf("ck-%s-a%d-s%d", j.ID, attempt, step), JobID: j.ID, Attempt: attempt, Step: step, Epoch: epoch,
	})
}

// step runs c.Step on the world at t0+i seconds.
func (w *world) step(c *Controller, i int) *structs.SweepStepRequest {
	w.t.Helper()
	req, err := c.Step(w.view(), t0.Add(time.Duration(i)*time.Second))
	if err != nil {
		w.t.Fatalf("step %d: %v", i, err)
	}
	return req
}

// apply applies req as the FSM does: results (stop cancels the job), ends,
// checkpoints, new trials (with pending jobs), best, exhausted, finish. An
// invalid request fails the test.
func (w *world) apply(req *structs.SweepStepRequest) {
	w.t.Helper()
	if req == nil {
		return
	}
	sw := w.sw.Copy()
	for _, r := range req.Results {
		tr := &sw.Trials[r.Trial]
		if tr.State != structs.TrialRunning || r.Budget <= tr.Budget {
			w.t.Fatalf("apply: result %+v for trial in state %s at budget %d", r, tr.State, tr.Budget)
		}
		sw.Results = append(sw.Results, r)
		tr.Budget, tr.Decision, tr.LastValue, tr.HasValue = r.Budget, r.Decision, r.Value, true
		if !r.NonFinite && (tr.BestBudget == 0 || better(sw.Spec.Objective.Mode, r.Value, tr.BestValue)) {
			tr.BestValue, tr.BestBudget = r.Value, r.Budget
		}
		switch {
		case r.Decision == tuning.DecisionStop.String():
			tr.State, tr.EndTime = structs.TrialStopped, req.Time
			w.jobs[tr.JobID].State = structs.JobCancelled
		case r.Decision == tuning.DecisionComplete.String() && sw.Spec.Budget.Unit == tuning.UnitSteps:
			// As the FSM does: the trial reached its step budget.
			tr.State, tr.EndTime = structs.TrialCompleted, req.Time
			w.jobs[tr.JobID].State = structs.JobCancelled
		}
	}
	for _, e := range req.Ends {
		tr := &sw.Trials[e.Trial]
		if tr.State != structs.TrialRunning {
			w.t.Fatalf("apply: end %+v of trial in state %s", e, tr.State)
		}
		tr.State, tr.Error, tr.EndTime = e.State, e.Error, req.Time
	}
	for _, c := range req.Checkpoints {
		sw.Trials[c.Trial].BestCheckpoint, sw.Trials[c.Trial].BestCheckpointValue = c.Checkpoint, c.Value
	}
	for _, nt := range req.NewTrials {
		if nt.Number != len(sw.Trials) {
			w.t.Fatalf("apply: new trial %d, want %d", nt.Number, len(sw.Trials))
		}
		sw.Trials = append(sw.Trials, structs.Trial{Number: nt.Number, Params: nt.Params, JobID: nt.JobID,
			ResultsSeen: nt.ResultsSeen, State: structs.TrialRunning, StartTime: req.Time})
		w.jobs[nt.JobID] = &structs.Job{ID: nt.JobID, Spec: nt.Job, SweepID: sw.ID, Trial: nt.Number, State: structs.JobPending}
	}
	if req.Best != nil {
		sw.Best = req.Best
	}
	sw.Exhausted = sw.Exhausted || req.Exhausted
	if req.Finish != nil {
		if n := sw.RunningTrials(); n > 0 {
			w.t.Fatalf("apply: finish with %d trials running", n)
		}
		sw.State, sw.Error, sw.EndTime = req.Finish.State, req.Finish.Error, req.Time
	}
	sw.ModifyTime = req.Time
	w.sw = sw
}

// decisions lists a request's results as "trial:budget:decision".
func decisions(req *structs.SweepStepRequest) []string {
	if req == nil {
		return nil
	}
	var out []string
	for _, r := range req.Results {
		out = append(out, fmt.Sprintf("%d:%d:%s", r.Trial, r.Budget, r.Decision))
	}
	return out
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
