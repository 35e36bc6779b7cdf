package sweeper

import (
	"testing"

	"github.com/trainctl/trainctl/coordinator/structs"
	"github.com/trainctl/trainctl/tuning"
)

// benchWorld is an ASHA sweep of 10,000 trials with 20,000 results, 100 of
// them running; with reports, each running trial has a new epoch report.
func benchWorld(b *testing.B, reports bool) *world {
	spec := parseSpec(b, lrSpace+"scheduler: {name: asha}\nmax_trials: 10000\nmax_concurrent: 100\nbudget: {max: 9}\n")
	w := newWorld(b, spec)
	w.sw.Trials = make([]structs.Trial, 10000)
	for n := range w.sw.Trials {
		id := TrialJobID("sw1", n)
		tr := structs.Trial{Number: n, JobID: id, Params: tuning.Params{"lr": tuning.Float(0.001)}, State: structs.TrialStopped, Budget: 2}
		job := &structs.Job{ID: id, State: structs.JobCancelled}
		if n >= 9900 {
			tr.State, job.State = structs.TrialRunning, structs.JobRunning
		}
		w.sw.Trials[n] = tr
		w.jobs[id] = job
		w.sw.Results = append(w.sw.Results,
			structs.SweepResult{Trial: n, Budget: 1, Value: float64(n % 97), Decision: "continue"},
			structs.SweepResult{Trial: n, Budget: 2, Value: float64(n % 89), Decision: "continue"})
		for e := range 2 {
			w.report(n, 1, e, float64(n%101)+float64(e))
		}
		if reports && n >= 9900 {
			w.report(n, 1, 2, float64(n%101))
		}
	}
	// Record the best checkpoints, as the FSM would have.
	req, err := New(nil).Step(View{Sweep: w.sw, Jobs: w.jobs, Metrics: w.metrics, Checkpoints: w.ckpts}, t0)
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range req.Checkpoints {
		w.sw.Trials[c.Trial].BestCheckpoint, w.sw.Trials[c.Trial].BestCheckpointValue = c.Checkpoint, c.Value
	}
	w.sw.Best = req.Best
	return w
}

// BenchmarkStep times one pass over a sweep of 10,000 trials: idle (warm
// cache, nothing new: the common pass) and failover (a fresh controller
// rebuilds the scheduler from 20,000 results and judges 100 new reports).
func BenchmarkStep(b *testing.B) {
	b.Run("idle", func(b *testing.B) {
		w := benchWorld(b, false)
		c := New(nil)
		for b.Loop() {
			if req, err := c.Step(w.view(), t0); err != nil || req != nil {
				b.Fatalf("idle step: %v, %+v", err, req)
			}
		}
	})
	b.Run("failover", func(b *testing.B) {
		w := benchWorld(b, true)
		for b.Loop() {
			req, err := New(nil).Step(w.view(), t0)
			if err != nil || len(req.Results) != 100 {
				b.Fatalf("step: %v, %+v", err, req)
			}
		}
	})
}
