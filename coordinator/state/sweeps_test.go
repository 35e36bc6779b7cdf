package state

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/trainctl/trainctl/coordinator/structs"
	"github.com/trainctl/trainctl/tuning"
)

// sweepSpec returns a valid sweep spec over lr with the given objective
// mode and budget unit (max 10 epochs or 100 steps).
func sweepSpec(name string, mode tuning.Mode, unit string) structs.SweepSpec {
	s := tuning.Defaults()
	s.Name = name
	s.Job = testSpec("trial").User()
	s.SearchSpace = tuning.Space{Params: []tuning.Param{{Name: "lr", Type: tuning.LogUniform, Low: 1e-4, High: 0.1}}}
	s.Objective = tuning.Objective{Metric: "val_loss", Mode: mode}
	s.Budget = tuning.Budget{Unit: unit, Min: 1, Max: 10}
	if unit == tuning.UnitSteps {
		s.Objective.Metric = "val_mean_iou"
		s.Budget = tuning.Budget{Unit: unit, Min: 10, Max: 100}
	}
	return structs.NewSweepSpec(s)
}

func newTrial(n int, jobID string) structs.NewTrial {
	return structs.NewTrial{Number: n, Params: tuning.Params{"lr": tuning.Float(0.01 * float64(n+1))}, JobID: jobID, Job: testSpec("trial")}
}

func res(trial, budget int, value float64, d tuning.Decision) structs.SweepResult {
	return structs.SweepResult{Trial: trial, Budget: budget, Value: value, Decision: d.String(), Time: t0}
}

func stepReq(id string, mod func(r *structs.SweepStepRequest)) *structs.SweepStepRequest {
	r := &structs.SweepStepRequest{SweepID: id, Time: t0.Add(time.Minute)}
	if mod != nil {
		mod(r)
	}
	return r
}

func sweep(t *testing.T, s *Store, id string) *structs.Sweep {
	t.Helper()
	sw, err := s.Sweep(id)
	if err != nil {
		t.Fatal(err)
	}
	return sw
}

// wantTrial checks the fields of trial n of sweep id that a test is about.
func wantTrial(t *testing.T, s *Store, id string, n int, state structs.TrialState, budget int, last, best float64, bestBudget int) {
	t.Helper()
	tr := sweep(t, s, id).Trials[n]
	if tr.State != state || tr.Budget != budget || tr.LastValue != last || tr.BestValue != best || tr.BestBudget != bestBudget {
		t.Fatalf("trial %d of %s = %+v, want state %s budget %d last %v best %v at %d", n, id, tr, state, budget, last, best, bestBudget)
	}
}

// sweepLog drives three sweeps and the model registry through every
// command, valid and not: s1 minimises over epochs and completes (model
// "s" v1), s2 completes in one step (v2), s3 maximises over steps and is
// cancelled.
func sweepLog() []step {
	cpu4 := structs.WorkerMeta{Cores: 4, Zone: "a", Version: "test"}
	two := structs.Resources{Cores: 2}
	minEpochs := sweepSpec("s", tuning.Minimize, tuning.UnitEpochs)
	maxSteps := sweepSpec("steps", tuning.Maximize, tuning.UnitSteps)
	stepErr := func(name string, want error, mod func(r *structs.SweepStepRequest)) step {
		return step{name: name, typ: structs.SweepStepRequestType, req: stepReq("s1", mod), wantErr: want}
	}
	noName := minEpochs
	noName.Name = ""
	return []step{
		{name: "worker w1 joins", typ: structs.WorkerUpsertRequestType,
			req: &structs.WorkerUpsertRequest{ID: "w1", Meta: cpu4, Time: t0}},

		// Submission.
		{name: "submit s1", typ: structs.SweepSubmitRequestType,
			req: &structs.SweepSubmitRequest{SweepID: "s1", RequestID: "sr1", Spec: minEpochs, DatasetVersionID: "dv1", SubmitTime: t0},
			check: func(t *testing.T, s *Store, resp any) {
				sw := resp.(*structs.Sweep)
				if sw.ID != "s1" || sw.State != structs.SweepRunning || len(sw.Trials) != 0 || sw.CreateIndex != 2 || sw.ModifyIndex != 2 ||
					!sw.SubmitTime.Equal(t0) || sw.DatasetVersionID != "dv1" || sw.Spec.Name != "s" {
					t.Fatalf("resp = %+v", sw)
				}
				if got, err := s.SweepByRequestID("sr1"); err != nil || got != sw {
					t.Fatalf("by request id: %v, %v", got, err)
				}
			}},
		{name: "resubmit sr1 returns s1", typ: structs.SweepSubmitRequestType,
			req: &structs.SweepSubmitRequest{SweepID: "s-dup", RequestID: "sr1", Spec: maxSteps, SubmitTime: t0.Add(time.Second)},
			check: func(t *testing.T, s *Store, resp any) {
				if sw := resp.(*structs.Sweep); sw.ID != "s1" {
					t.Fatalf("resubmission created %s", sw.ID)
				}
				if _, err := s.Sweep("s-dup"); !errors.Is(err, structs.ErrNotFound) {
					t.Fatalf("s-dup exists: %v", err)
				}
				if s.Index() != 2 {
					t.Fatalf("index %d after an idempotent resubmission", s.Index())
				}
			}},
		{name: "submit without sweep id", typ: structs.SweepSubmitRequestType,
			req: &structs.SweepSubmitRequest{RequestID: "sr2", Spec: minEpochs, SubmitTime: t0}, wantErr: structs.ErrInvalid},
		{name: "submit existing sweep id", typ: structs.SweepSubmitRequestType,
			req: &structs.SweepSubmitRequest{SweepID: "s1", RequestID: "sr2", Spec: minEpochs, SubmitTime: t0}, wantErr: structs.ErrConflict},
		{name: "submit invalid spec", typ: structs.SweepSubmitRequestType,
			req: &structs.SweepSubmitRequest{SweepID: "s9", RequestID: "sr9", Spec: noName, SubmitTime: t0}, wantErr: structs.ErrInvalid},

		// New trials.
		{name: "s1 starts trials 0 and 1", typ: structs.SweepStepRequestType,
			req: stepReq("s1", func(r *structs.SweepStepRequest) {
				r.NewTrials = []structs.NewTrial{newTrial(0, "s1-0"), newTrial(1, "s1-1")}
			}),
			check: func(t *testing.T, s *Store, resp any) {
				sw := resp.(*structs.Sweep)
				if len(sw.Trials) != 2 || sw.ModifyIndex != 7 || !sw.ModifyTime.Equal(t0.Add(time.Minute)) {
					t.Fatalf("resp = %+v", sw)
				}
				for n, id := range []string{"s1-0", "s1-1"} {
					tr := sw.Trials[n]
					if tr.Number != n || tr.JobID != id || tr.State != structs.TrialRunning || !tr.StartTime.Equal(t0.Add(time.Minute)) ||
						tr.Params["lr"] != tuning.Float(0.01*float64(n+1)) {
						t.Fatalf("trial %d = %+v", n, tr)
					}
					j := job(t, s, id)
					if j.State != structs.JobPending || j.SweepID != "s1" || j.Trial != n || j.DatasetVersionID != "dv1" ||
						j.CreateIndex != 7 || j.ModifyIndex != 7 || !j.SubmitTime.Equal(t0.Add(time.Minute)) || j.RequestID != "" || j.Spec.Name != "trial" {
						t.Fatalf("job %s = %+v", id, j)
					}
				}
			}},
		stepErr("new trial with a wrong number", structs.ErrConflict, func(r *structs.SweepStepRequest) {
			r.NewTrials = []structs.NewTrial{newTrial(5, "s1-5")}
		}),
		stepErr("new trial numbers must count up", structs.ErrConflict, func(r *structs.SweepStepRequest) {
			r.NewTrials = []structs.NewTrial{newTrial(2, "s1-2"), newTrial(2, "s1-2b")}
		}),
		stepErr("new trial with an existing job id", structs.ErrConflict, func(r *structs.SweepStepRequest) {
			r.NewTrials = []structs.NewTrial{newTrial(2, "s1-0")}
		}),
		stepErr("two new trials with one job id", structs.ErrConflict, func(r *structs.SweepStepRequest) {
			r.NewTrials = []structs.NewTrial{newTrial(2, "s1-x"), newTrial(3, "s1-x")}
		}),
		stepErr("new trial without a job id", structs.ErrInvalid, func(r *structs.SweepStepRequest) {
			r.NewTrials = []structs.NewTrial{newTrial(2, "")}
		}),
		stepErr("new trial that saw results that do not exist", structs.ErrInvalid, func(r *structs.SweepStepRequest) {
			nt := newTrial(2, "s1-2")
			nt.ResultsSeen = 1
			r.NewTrials = []structs.NewTrial{nt}
		}),
		{name: "step an unknown sweep", typ: structs.SweepStepRequestType, req: stepReq("nope", nil), wantErr: structs.ErrNotFound},

		// Results.
		{name: "place s1-0 on w1", typ: structs.JobPlaceRequestType,
			req: &structs.JobPlaceRequest{JobID: "s1-0", Attempt: 1, Placements: []structs.Placement{{Rank: 0, WorkerID: "w1", Resources: two}}, Time: t0}},
		{name: "first results", typ: structs.SweepStepRequestType,
			req: stepReq("s1", func(r *structs.SweepStepRequest) {
				r.Results = []structs.SweepResult{
					res(0, 1, 0.5, tuning.DecisionContinue),
					{Trial: 1, Budget: 1, NonFinite: true, Decision: "continue", Time: t0},
					res(0, 2, 0.4, tuning.DecisionPromote),
					res(1, 2, 0.7, tuning.DecisionContinue),
				}
			}),
			check: func(t *testing.T, s *Store, resp any) {
				sw := resp.(*structs.Sweep)
				if len(sw.Results) != 4 || !sw.Results[1].NonFinite || sw.Results[3].Value != 0.7 {
					t.Fatalf("results = %+v", sw.Results)
				}
				wantTrial(t, s, "s1", 0, structs.TrialRunning, 2, 0.4, 0.4, 2)
				// The first finite result sets the best, though 0 (the
				// non-finite one's value) is smaller.
				wantTrial(t, s, "s1", 1, structs.TrialRunning, 2, 0.7, 0.7, 2)
				if tr := sw.Trials[0]; !tr.HasValue || tr.Decision != "promote" {
					t.Fatalf("trial 0 = %+v", tr)
				}
			}},
		{name: "worse and non-finite results keep the best", typ: structs.SweepStepRequestType,
			req: stepReq("s1", func(r *structs.SweepStepRequest) {
				r.Results = []structs.SweepResult{
					res(0, 3, 0.6, tuning.DecisionContinue),
					{Trial: 1, Budget: 3, NonFinite: true, Decision: "continue", Time: t0},
				}
			}),
			check: func(t *testing.T, s *Store, _ any) {
				wantTrial(t, s, "s1", 0, structs.TrialRunning, 3, 0.6, 0.4, 2)
				wantTrial(t, s, "s1", 1, structs.TrialRunning, 3, 0, 0.7, 2)
			}},
		stepErr("result of an unknown trial", structs.ErrInvalid, func(r *structs.SweepStepRequest) {
			r.Results = []structs.SweepResult{res(0, 4, 0.1, tuning.DecisionContinue), res(7, 1, 0.1, tuning.DecisionContinue)}
		}),
		stepErr("result of a negative trial", structs.ErrInvalid, func(r *structs.SweepStepRequest) {
			r.Results = []structs.SweepResult{res(-1, 1, 0.1, tuning.DecisionContinue)}
		}),
		stepErr("result with a budget that does not grow", structs.ErrConflict, func(r *structs.SweepStepRequest) {
			r.Results = []structs.SweepResult{res(0, 3, 0.1, tuning.DecisionContinue)}
		}),
		stepErr("two results at one budget", structs.ErrConflict, func(r *structs.SweepStepRequest) {
			r.Results = []structs.SweepResult{res(0, 4, 0.1, tuning.DecisionContinue), res(0, 4, 0.1, tuning.DecisionContinue)}
		}),
		stepErr("result with an unknown decision", structs.ErrInvalid, func(r *structs.SweepStepRequest) {
			r.Results = []structs.SweepResult{{Trial: 0, Budget: 4, Value: 0.1, Decision: "halt", Time: t0}}
		}),
		stepErr("non-finite result with a value", structs.ErrInvalid, func(r *structs.SweepStepRequest) {
			r.Results = []structs.SweepResult{{Trial: 0, Budget: 4, Value: 1, NonFinite: true, Decision: "continue", Time: t0}}
		}),
		{name: "stop trial 0", typ: structs.SweepStepRequestType,
			req: stepReq("s1", func(r *structs.SweepStepRequest) {
				r.Results = []structs.SweepResult{res(0, 4, 0.3, tuning.DecisionStop)}
			}),
			check: func(t *testing.T, s *Store, _ any) {
				wantTrial(t, s, "s1", 0, structs.TrialStopped, 4, 0.3, 0.3, 4)
				if tr := sweep(t, s, "s1").Trials[0]; !tr.EndTime.Equal(t0.Add(time.Minute)) {
					t.Fatalf("trial 0 = %+v", tr)
				}
				j := job(t, s, "s1-0")
				if j.State != structs.JobCancelled || j.Attempts[0].State != structs.AttemptCancelled || j.ModifyIndex != s.Index() {
					t.Fatalf("s1-0 = %+v", j)
				}
				if w := worker(t, s, "w1"); w.Free.Cores != 4 || w.ModifyIndex != s.Index() {
					t.Fatalf("w1 = %+v", w)
				}
				if as := s.Assignments(""); len(as) != 0 {
					t.Fatalf("assignments = %+v", as)
				}
			}},
		stepErr("result of a stopped trial", structs.ErrConflict, func(r *structs.SweepStepRequest) {
			r.Results = []structs.SweepResult{res(0, 5, 0.1, tuning.DecisionContinue)}
		}),
		{name: "complete in epochs leaves the trial running", typ: structs.SweepStepRequestType,
			req: stepReq("s1", func(r *structs.SweepStepRequest) {
				r.Results = []structs.SweepResult{res(1, 10, 0.65, tuning.DecisionComplete)}
			}),
			check: func(t *testing.T, s *Store, _ any) {
				wantTrial(t, s, "s1", 1, structs.TrialRunning, 10, 0.65, 0.65, 10)
				if j := job(t, s, "s1-1"); j.State != structs.JobPending || j.ModifyIndex != 7 {
					t.Fatalf("s1-1 = %+v", j)
				}
			}},

		// Ends.
		stepErr("end with a state that is no end", structs.ErrInvalid, func(r *structs.SweepStepRequest) {
			r.Ends = []structs.TrialEnd{{Trial: 1, State: structs.TrialRunning}}
		}),
		stepErr("end of a stopped trial", structs.ErrConflict, func(r *structs.SweepStepRequest) {
			r.Ends = []structs.TrialEnd{{Trial: 0, State: structs.TrialCompleted}}
		}),
		stepErr("end of an unknown trial", structs.ErrInvalid, func(r *structs.SweepStepRequest) {
			r.Ends = []structs.TrialEnd{{Trial: 9, State: structs.TrialCompleted}}
		}),
		stepErr("a trial ends twice", structs.ErrConflict, func(r *structs.SweepStepRequest) {
			r.Ends = []structs.TrialEnd{{Trial: 1, State: structs.TrialCompleted}, {Trial: 1, State: structs.TrialFailed}}
		}),

		// Checkpoints and best.
		{name: "checkpoint c0 of s1-0", typ: structs.CheckpointRegisterRequestType,
			req: &structs.CheckpointRegisterRequest{Checkpoint: structs.Checkpoint{Digest: "c0", JobID: "s1-0", Attempt: 1, Step: 40, Epoch: 4, Time: t0}}},
		stepErr("checkpoint of another trial's job", structs.ErrInvalid, func(r *structs.SweepStepRequest) {
			r.Checkpoints = []structs.TrialCheckpoint{{Trial: 1, Checkpoint: "c0", Value: 0.3}}
		}),
		stepErr("unknown checkpoint", structs.ErrInvalid, func(r *structs.SweepStepRequest) {
			r.Checkpoints = []structs.TrialCheckpoint{{Trial: 0, Checkpoint: "nope", Value: 0.3}}
		}),
		stepErr("checkpoint without a digest", structs.ErrInvalid, func(r *structs.SweepStepRequest) {
			r.Checkpoints = []structs.TrialCheckpoint{{Trial: 0, Value: 0.3}}
		}),
		stepErr("checkpoint of an unknown trial", structs.ErrInvalid, func(r *structs.SweepStepRequest) {
			r.Checkpoints = []structs.TrialCheckpoint{{Trial: 2, Checkpoint: "c0", Value: 0.3}}
		}),
		stepErr("best of an unknown trial", structs.ErrInvalid, func(r *structs.SweepStepRequest) {
			r.Best = &structs.SweepBest{Trial: 5, JobID: "s1-0", Checkpoint: "c0", Value: 0.3}
		}),
		stepErr("best with another job", structs.ErrInvalid, func(r *structs.SweepStepRequest) {
			r.Best = &structs.SweepBest{Trial: 1, JobID: "s1-0", Checkpoint: "c0", Value: 0.3}
		}),
		stepErr("best with an unknown checkpoint", structs.ErrInvalid, func(r *structs.SweepStepRequest) {
			r.Best = &structs.SweepBest{Trial: 0, JobID: "s1-0", Checkpoint: "nope", Value: 0.3}
		}),
		stepErr("best with another job's checkpoint", structs.ErrInvalid, func(r *structs.SweepStepRequest) {
			r.Best = &structs.SweepBest{Trial: 1, JobID: "s1-1", Checkpoint: "c0", Value: 0.3}
		}),
		{name: "checkpoint and best of stopped trial 0", typ: structs.SweepStepRequestType,
			req: stepReq("s1", func(r *structs.SweepStepRequest) {
				r.Checkpoints = []structs.TrialCheckpoint{{Trial: 0, Checkpoint: "c0", Value: 0.3}}
				r.Best = &structs.SweepBest{Trial: 0, JobID: "s1-0", Checkpoint: "c0", Value: 0.3}
			}),
			check: func(t *testing.T, s *Store, resp any) {
				sw := resp.(*structs.Sweep)
				if tr := sw.Trials[0]; tr.BestCheckpoint != "c0" || tr.BestCheckpointValue != 0.3 {
					t.Fatalf("trial 0 = %+v", tr)
				}
				if sw.Best == nil || *sw.Best != (structs.SweepBest{Trial: 0, JobID: "s1-0", Checkpoint: "c0", Value: 0.3}) {
					t.Fatalf("best = %+v", sw.Best)
				}
			}},

		// Finish.
		stepErr("finish with a running trial", structs.ErrConflict, func(r *structs.SweepStepRequest) {
			r.Finish = &structs.SweepFinish{State: structs.SweepCompleted}
		}),
		stepErr("finish cancelled", structs.ErrInvalid, func(r *structs.SweepStepRequest) {
			r.Ends = []structs.TrialEnd{{Trial: 1, State: structs.TrialCompleted}}
			r.Finish = &structs.SweepFinish{State: structs.SweepCancelled}
		}),
		{name: "s1 ends its last trial and completes", typ: structs.SweepStepRequestType,
			req: stepReq("s1", func(r *structs.SweepStepRequest) {
				r.Ends = []structs.TrialEnd{{Trial: 1, State: structs.TrialCompleted}}
				r.Exhausted = true
				r.Finish = &structs.SweepFinish{State: structs.SweepCompleted}
				r.Time = t0.Add(time.Hour)
			}),
			check: func(t *testing.T, s *Store, resp any) {
				sw := resp.(*structs.Sweep)
				if sw.State != structs.SweepCompleted || !sw.Exhausted || !sw.EndTime.Equal(t0.Add(time.Hour)) || sw.RunningTrials() != 0 {
					t.Fatalf("s1 = %+v", sw)
				}
				if tr := sw.Trials[1]; tr.State != structs.TrialCompleted || !tr.EndTime.Equal(t0.Add(time.Hour)) {
					t.Fatalf("trial 1 = %+v", tr)
				}
				m, err := s.Model("s")
				want := structs.ModelVersion{Name: "s", Version: 1, Checkpoint: "c0", JobID: "s1-0", SweepID: "s1",
					Metric: "val_loss", Value: 0.3, CreateTime: t0.Add(time.Hour), CreateIndex: s.Index()}
				if err != nil || *m != want {
					t.Fatalf("model = %+v, %v; want %+v", m, err, want)
				}
			}},
		stepErr("step a completed sweep", structs.ErrConflict, nil),
		{name: "cancel a completed sweep", typ: structs.SweepCancelRequestType,
			req: &structs.SweepCancelRequest{SweepID: "s1", Time: t0.Add(2 * time.Hour)},
			check: func(t *testing.T, s *Store, resp any) {
				if sw := resp.(*structs.Sweep); sw.State != structs.SweepCompleted || !sw.ModifyTime.Equal(t0.Add(time.Hour)) {
					t.Fatalf("cancelling a completed sweep changed it: %+v", sw)
				}
			}},

		// s2 registers v2 of model "s" in one step with every part.
		{name: "submit s2", typ: structs.SweepSubmitRequestType,
			req: &structs.SweepSubmitRequest{SweepID: "s2", RequestID: "sr2", Spec: minEpochs, SubmitTime: t0}},
		{name: "s2 starts trial 0", typ: structs.SweepStepRequestType,
			req: stepReq("s2", func(r *structs.SweepStepRequest) { r.NewTrials = []structs.NewTrial{newTrial(0, "s2-0")} })},
		{name: "checkpoint c2 of s2-0", typ: structs.CheckpointRegisterRequestType,
			req: &structs.CheckpointRegisterRequest{Checkpoint: structs.Checkpoint{Digest: "c2", JobID: "s2-0", Step: 100, Epoch: 10, Time: t0}}},
		{name: "s2 does everything at once", typ: structs.SweepStepRequestType,
			req: stepReq("s2", func(r *structs.SweepStepRequest) {
				r.Results = []structs.SweepResult{res(0, 10, 0.2, tuning.DecisionComplete)}
				r.Ends = []structs.TrialEnd{{Trial: 0, State: structs.TrialCompleted}}
				r.Checkpoints = []structs.TrialCheckpoint{{Trial: 0, Checkpoint: "c2", Value: 0.2}}
				r.NewTrials = []structs.NewTrial{func() structs.NewTrial { nt := newTrial(1, "s2-1"); nt.ResultsSeen = 1; return nt }()}
				r.Best = &structs.SweepBest{Trial: 0, JobID: "s2-0", Checkpoint: "c2", Value: 0.2}
				r.Finish = &structs.SweepFinish{State: structs.SweepCompleted}
			}),
			wantErr: structs.ErrConflict}, // the new trial is running
		{name: "s2 completes", typ: structs.SweepStepRequestType,
			req: stepReq("s2", func(r *structs.SweepStepRequest) {
				r.Results = []structs.SweepResult{res(0, 10, 0.2, tuning.DecisionComplete)}
				r.Ends = []structs.TrialEnd{{Trial: 0, State: structs.TrialCompleted}}
				r.Checkpoints = []structs.TrialCheckpoint{{Trial: 0, Checkpoint: "c2", Value: 0.2}}
				r.Best = &structs.SweepBest{Trial: 0, JobID: "s2-0", Checkpoint: "c2", Value: 0.2}
				r.Finish = &structs.SweepFinish{State: structs.SweepCompleted}
			}),
			check: func(t *testing.T, s *Store, _ any) {
				if m, err := s.Model("s"); err != nil || m.Version != 2 || m.Checkpoint != "c2" || m.SweepID != "s2" {
					t.Fatalf("model = %+v, %v", m, err)
				}
				if vs := s.ModelVersions("s"); len(vs) != 2 || vs[0].Checkpoint != "c0" {
					t.Fatalf("versions = %+v", vs)
				}
			}},

		// s3 maximises over steps and is cancelled.
		{name: "submit s3", typ: structs.SweepSubmitRequestType,
			req: &structs.SweepSubmitRequest{SweepID: "s3", Spec: maxSteps, SubmitTime: t0}},
		{name: "s3 starts trials 0 and 1", typ: structs.SweepStepRequestType,
			req: stepReq("s3", func(r *structs.SweepStepRequest) {
				r.NewTrials = []structs.NewTrial{newTrial(0, "s3-0"), newTrial(1, "s3-1")}
			})},
		{name: "place s3-0 on w1", typ: structs.JobPlaceRequestType,
			req: &structs.JobPlaceRequest{JobID: "s3-0", Attempt: 1, Placements: []structs.Placement{{Rank: 0, WorkerID: "w1", Resources: two}}, Time: t0}},
		{name: "s3 results: larger is better", typ: structs.SweepStepRequestType,
			req: stepReq("s3", func(r *structs.SweepStepRequest) {
				r.Results = []structs.SweepResult{
					res(0, 10, 0.2, tuning.DecisionContinue),
					res(0, 20, 0.5, tuning.DecisionContinue),
					res(0, 30, 0.4, tuning.DecisionContinue),
					{Trial: 1, Budget: 10, NonFinite: true, Decision: "continue", Time: t0},
				}
			}),
			check: func(t *testing.T, s *Store, _ any) {
				wantTrial(t, s, "s3", 0, structs.TrialRunning, 30, 0.4, 0.5, 20)
				wantTrial(t, s, "s3", 1, structs.TrialRunning, 10, 0, 0, 0)
			}},
		{name: "s3 trial 0 completes its steps", typ: structs.SweepStepRequestType,
			req: stepReq("s3", func(r *structs.SweepStepRequest) {
				r.Results = []structs.SweepResult{res(0, 100, 0.45, tuning.DecisionComplete)}
			}),
			check: func(t *testing.T, s *Store, _ any) {
				wantTrial(t, s, "s3", 0, structs.TrialCompleted, 100, 0.45, 0.5, 20)
				if j := job(t, s, "s3-0"); j.State != structs.JobCancelled || j.Attempts[0].State != structs.AttemptCancelled {
					t.Fatalf("s3-0 = %+v", j)
				}
				if w := worker(t, s, "w1"); w.Free.Cores != 4 {
					t.Fatalf("w1 = %+v", w)
				}
			}},
		{name: "place s3-1 on w1", typ: structs.JobPlaceRequestType,
			req: &structs.JobPlaceRequest{JobID: "s3-1", Attempt: 1, Placements: []structs.Placement{{Rank: 0, WorkerID: "w1", Resources: two}}, Time: t0}},
		{name: "cancel s3", typ: structs.SweepCancelRequestType,
			req: &structs.SweepCancelRequest{SweepID: "s3", Time: t0.Add(3 * time.Hour)},
			check: func(t *testing.T, s *Store, resp any) {
				sw := resp.(*structs.Sweep)
				if sw.State != structs.SweepCancelled || !sw.EndTime.Equal(t0.Add(3*time.Hour)) || sw.ModifyIndex != s.Index() {
					t.Fatalf("s3 = %+v", sw)
				}
				if tr := sw.Trials[0]; tr.State != structs.TrialCompleted {
					t.Fatalf("cancel changed ended trial 0: %+v", tr)
				}
				if tr := sw.Trials[1]; tr.State != structs.TrialCancelled || !tr.EndTime.Equal(t0.Add(3*time.Hour)) {
					t.Fatalf("trial 1 = %+v", tr)
				}
				if j := job(t, s, "s3-1"); j.State != structs.JobCancelled || j.Attempts[0].State != structs.AttemptCancelled {
					t.Fatalf("s3-1 = %+v", j)
				}
				if w := worker(t, s, "w1"); w.Free.Cores != 4 || len(s.Assignments("")) != 0 {
					t.Fatalf("w1 = %+v, assignments %+v", w, s.Assignments(""))
				}
				if _, err := s.Model("steps"); !errors.Is(err, structs.ErrNotFound) {
					t.Fatalf("a cancelled sweep registered a model: %v", err)
				}
			}},
		{name: "step a cancelled sweep", typ: structs.SweepStepRequestType,
			req:     stepReq("s3", func(r *structs.SweepStepRequest) { r.NewTrials = []structs.NewTrial{newTrial(2, "s3-2")} }),
			wantErr: structs.ErrConflict},
		{name: "cancel an unknown sweep", typ: structs.SweepCancelRequestType,
			req: &structs.SweepCancelRequest{SweepID: "nope", Time: t0}, wantErr: structs.ErrNotFound},

		// A user cancels a trial's job: only the job changes.
		{name: "submit s4", typ: structs.SweepSubmitRequestType,
			req: &structs.SweepSubmitRequest{SweepID: "s4", Spec: minEpochs, SubmitTime: t0}},
		{name: "s4 starts trial 0", typ: structs.SweepStepRequestType,
			req: stepReq("s4", func(r *structs.SweepStepRequest) { r.NewTrials = []structs.NewTrial{newTrial(0, "s4-0")} })},
		{name: "user cancels s4-0", typ: structs.JobCancelRequestType, req: &structs.JobCancelRequest{JobID: "s4-0", Time: t0},
			check: func(t *testing.T, s *Store, _ any) {
				if sw := sweep(t, s, "s4"); sw.Trials[0].State != structs.TrialRunning || sw.ModifyIndex == s.Index() {
					t.Fatalf("cancelling a trial's job changed its sweep: %+v", sw)
				}
			}},
		{name: "failed trial, failed sweep", typ: structs.SweepStepRequestType,
			req: stepReq("s4", func(r *structs.SweepStepRequest) {
				r.Ends = []structs.TrialEnd{{Trial: 0, State: structs.TrialCancelled, Error: "job cancelled"}}
				r.Finish = &structs.SweepFinish{State: structs.SweepFailed, Error: "every trial failed"}
			}),
			check: func(t *testing.T, s *Store, resp any) {
				sw := resp.(*structs.Sweep)
				if sw.State != structs.SweepFailed || sw.Error != "every trial failed" || sw.Trials[0].Error != "job cancelled" {
					t.Fatalf("s4 = %+v", sw)
				}
			}},

		// The model registry.
		{name: "model without a name", typ: structs.ModelRegisterRequestType,
			req: &structs.ModelRegisterRequest{Checkpoint: "c0", Time: t0}, wantErr: structs.ErrInvalid},
		{name: "model without a checkpoint", typ: structs.ModelRegisterRequestType,
			req: &structs.ModelRegisterRequest{Name: "m", Time: t0}, wantErr: structs.ErrInvalid},
		{name: "model of an unknown checkpoint", typ: structs.ModelRegisterRequestType,
			req: &structs.ModelRegisterRequest{Name: "m", Checkpoint: "nope", Time: t0}, wantErr: structs.ErrNotFound},
		{name: "model with another checkpoint's job", typ: structs.ModelRegisterRequestType,
			req: &structs.ModelRegisterRequest{Name: "m", Checkpoint: "c0", JobID: "s2-0", Time: t0}, wantErr: structs.ErrInvalid},
		{name: "model of an unknown sweep", typ: structs.ModelRegisterRequestType,
			req: &structs.ModelRegisterRequest{Name: "m", Checkpoint: "c0", SweepID: "nope", Time: t0}, wantErr: structs.ErrNotFound},
		{name: "model m v1", typ: structs.ModelRegisterRequestType,
			req: &structs.ModelRegisterRequest{Name: "m", Checkpoint: "c0", Metric: "val_loss", Value: 0.3, Time: t0},
			check: func(t *testing.T, s *Store, resp any) {
				m := resp.(*structs.ModelVersion)
				if m.Version != 1 || m.JobID != "s1-0" || m.CreateIndex != s.Index() {
					t.Fatalf("m = %+v", m)
				}
			}},
		{name: "model m v2", typ: structs.ModelRegisterRequestType,
			req: &structs.ModelRegisterRequest{Name: "m", Checkpoint: "c2", JobID: "s2-0", SweepID: "s2", Time: t0},
			check: func(t *testing.T, s *Store, _ any) {
				if m, err := s.Model("m"); err != nil || m.Version != 2 || m.Checkpoint != "c2" {
					t.Fatalf("m = %+v, %v", m, err)
				}
			}},
		{name: "model m again with its latest checkpoint: no v3", typ: structs.ModelRegisterRequestType,
			req: &structs.ModelRegisterRequest{Name: "m", Checkpoint: "c2", Time: t0.Add(time.Minute)},
			check: func(t *testing.T, s *Store, resp any) {
				if m := resp.(*structs.ModelVersion); m.Version != 2 || !m.CreateTime.Equal(t0) {
					t.Fatalf("answer %+v, want v2 as it was", m)
				}
				if vs := s.ModelVersions("m"); len(vs) != 2 {
					t.Fatalf("%d versions, want 2", len(vs))
				}
			}},
		{name: "sweep step with an unknown field: ignored", raw: append([]byte{byte(structs.SweepStepRequestType)}, `{"sweep_id":"s2","x":1}`...),
			wantErr: structs.ErrConflict},
		{name: "sweep step with a trial that is no number", raw: append([]byte{byte(structs.SweepStepRequestType)}, `{"sweep_id":"s2","ends":[{"trial":"0"}]}`...),
			halt: true},
	}
}

func TestApplySweeps(t *testing.T) {
	runLog(t, testFSM(), sweepLog(), true)
}

func TestSweepReads(t *testing.T) {
	f := testFSM()
	runLog(t, f, sweepLog(), false)
	s := f.State()
	var ids []string
	for _, sw := range s.Sweeps() {
		ids = append(ids, sw.ID)
	}
	if got := strings.Join(ids, ","); got != "s1,s2,s3,s4" {
		t.Fatalf("sweeps in order %s", got)
	}
	var versions []string
	for _, m := range s.ModelVersions("") {
		versions = append(versions, m.Name+"@"+m.Checkpoint)
	}
	if got := strings.Join(versions, ","); got != "m@c0,m@c2,s@c0,s@c2" {
		t.Fatalf("model versions %s", got)
	}
	if _, err := s.Sweep("nope"); !errors.Is(err, structs.ErrNotFound) {
		t.Fatalf("Sweep(nope) = %v", err)
	}
	if _, err := s.SweepByRequestID("nope"); !errors.Is(err, structs.ErrNotFound) {
		t.Fatalf("SweepByRequestID(nope) = %v", err)
	}
	if _, err := s.Model("nope"); !errors.Is(err, structs.ErrNotFound) {
		t.Fatalf("Model(nope) = %v", err)
	}
	if vs := s.ModelVersions("nope"); len(vs) != 0 {
		t.Fatalf("ModelVersions(nope) = %v", vs)
	}
}

// TestStepSweepErrorsNameTheField: a rejected step says which part of the
// request is wrong.
func TestStepSweepErrorsNameTheField(t *testing.T) {
	f := testFSM()
	runLog(t, f, sweepLog()[:7], false) // up to s1's first two trials
	tests := []struct {
		name string
		mod  func(r *structs.SweepStepRequest)
		want string
	}{
		{"result", func(r *structs.SweepStepRequest) {
			r.Results = []structs.SweepResult{res(0, 1, 1, tuning.DecisionContinue), res(1, 1, 1, tuning.DecisionContinue), res(4, 1, 1, tuning.DecisionContinue)}
		}, `step sweep "s1": results[2].trial: invalid request: trial 4 does not exist`},
		{"end", func(r *structs.SweepStepRequest) { r.Ends = []structs.TrialEnd{{Trial: 0, State: "done"}} },
			`step sweep "s1": ends[0].state: invalid request: "done" is not one of completed, failed, cancelled`},
		{"checkpoint", func(r *structs.SweepStepRequest) {
			r.Checkpoints = []structs.TrialCheckpoint{{Trial: 0, Checkpoint: "x"}}
		},
			`step sweep "s1": checkpoints[0].checkpoint: invalid request: checkpoint "x" is not registered`},
		{"new trial", func(r *structs.SweepStepRequest) {
			r.NewTrials = []structs.NewTrial{newTrial(2, "a"), newTrial(2, "b")}
		},
			`step sweep "s1": new_trials[1].number: conflict: 2, want 3`},
		{"new trial past max_trials", func(r *structs.SweepStepRequest) {
			for n := 2; n <= 20; n++ { // max_trials is 20: trials 0..19
				r.NewTrials = append(r.NewTrials, newTrial(n, fmt.Sprintf("x%d", n)))
			}
		}, `step sweep "s1": new_trials[18].number: conflict: 20 is past max_trials 20`},
		{"new trial job id", func(r *structs.SweepStepRequest) {
			r.NewTrials = []structs.NewTrial{newTrial(2, "")}
		}, `step sweep "s1": new_trials[0].job_id: invalid request: required`},
		{"best", func(r *structs.SweepStepRequest) { r.Best = &structs.SweepBest{Trial: 0, JobID: "s1-1"} },
			`step sweep "s1": best.job_id: invalid request: "s1-1" is not the job of trial 0 ("s1-0")`},
		{"finish", func(r *structs.SweepStepRequest) { r.Finish = &structs.SweepFinish{State: structs.SweepCompleted} },
			`step sweep "s1": finish: conflict: 2 trials are still running`},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := f.Apply(entry(t, uint64(100+i), structs.SweepStepRequestType, stepReq("s1", tt.mod)))
			err, _ := resp.(error)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want it to contain %q", resp, tt.want)
			}
		})
	}
	// Once the searcher said the space is exhausted, no trial follows.
	if resp := f.Apply(entry(t, 200, structs.SweepStepRequestType, stepReq("s1", func(r *structs.SweepStepRequest) { r.Exhausted = true }))); resp != nil {
		if err, ok := resp.(error); ok {
			t.Fatalf("exhausted step: %v", err)
		}
	}
	resp := f.Apply(entry(t, 201, structs.SweepStepRequestType, stepReq("s1", func(r *structs.SweepStepRequest) {
		r.NewTrials = []structs.NewTrial{newTrial(2, "late")}
	})))
	if err, _ := resp.(error); err == nil || !strings.Contains(err.Error(), `step sweep "s1": new_trials[0]: conflict: the sweep's search space is exhausted`) {
		t.Fatalf("a new trial after exhaustion: %v", resp)
	}
}

func TestApplySweepsDeterministic(t *testing.T) {
	steps := append(append(lifecycle(), batchLog()...), sweepLog()...)
	a, b := testFSM(), testFSM()
	logs := runLog(t, a, steps, false)
	for _, l := range logs {
		b.Apply(l)
	}
	sa, sb := encodeState(t, a.State()), encodeState(t, b.State())
	if !bytes.Equal(sa, sb) {
		t.Fatalf("states differ:\n%s\n%s", sa, sb)
	}
	if len(a.State().Sweeps()) == 0 || len(a.State().ModelVersions("")) == 0 {
		t.Fatal("the log left no sweeps or models")
	}
}

func TestSnapshotRestoreSweeps(t *testing.T) {
	steps := sweepLog()
	cut := slices.IndexFunc(steps, func(st step) bool { return st.name == "s3 starts trials 0 and 1" }) // s1, s2 done
	if cut < 0 {
		t.Fatal("no step starts s3's trials")
	}
	src := testFSM()
	runLog(t, src, steps[:cut+1], false)
	snap, err := src.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	dst := testFSM()
	if err := dst.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	if got := encodeState(t, dst.State()); !bytes.Equal(got, sink.Bytes()) {
		t.Fatalf("restored state differs from the snapshot:\n%s\n%s", got, sink.Bytes())
	}
	if got, err := dst.State().SweepByRequestID("sr2"); err != nil || got.ID != "s2" {
		t.Fatalf("request id index lost in restore: %v, %v", got, err)
	}
	// The rest of the log, and a resubmission and a model, applied to
	// both, give the same state: the request id index and model versions
	// came back.
	rest := []*raft.Log{
		entry(t, 1000, structs.SweepSubmitRequestType, &structs.SweepSubmitRequest{SweepID: "dup", RequestID: "sr1", Spec: sweepSpec("x", tuning.Minimize, tuning.UnitEpochs), SubmitTime: t0}),
		entry(t, 1001, structs.ModelRegisterRequestType, &structs.ModelRegisterRequest{Name: "s", Checkpoint: "c0", Time: t0}),
	}
	for i, st := range steps[cut+1:] {
		l := &raft.Log{Index: uint64(cut + 2 + i), Term: 1, Type: raft.LogCommand, Data: st.raw}
		if st.raw == nil {
			l = entry(t, l.Index, st.typ, st.req)
		}
		rest = append(rest, l)
	}
	for _, l := range rest {
		src.Apply(l)
		dst.Apply(l)
	}
	if _, err := dst.State().Sweep("dup"); !errors.Is(err, structs.ErrNotFound) {
		t.Fatal("resubmission after restore created a sweep")
	}
	if m, err := dst.State().Model("s"); err != nil || m.Version != 3 {
		t.Fatalf("model after restore = %+v, %v", m, err)
	}
	if a, b := encodeState(t, src.State()), encodeState(t, dst.State()); !bytes.Equal(a, b) {
		t.Fatalf("states differ after restore:\n%s\n%s", a, b)
	}
}

// TestRestoreSnapshotWithoutSweeps: a snapshot written before sweeps and
// models existed (no such keys) still restores.
func TestRestoreSnapshotWithoutSweeps(t *testing.T) {
	old := `{"version":1,"index":3,"jobs":[{"id":"j1","request_id":"r1","spec":{},"state":"pending","restarts":0,"progress":{"step":0,"epoch":0},"submit_time":"2026-11-22T12:00:00Z","modify_time":"2026-11-22T12:00:00Z","create_index":3,"modify_index":3}],"workers":null,"assignments":null,"checkpoints":null,"metrics":null,"datasets":null,"servers":null}`
	f := testFSM()
	if err := f.Restore(io.NopCloser(strings.NewReader(old))); err != nil {
		t.Fatal(err)
	}
	s := f.State()
	if s.Index() != 3 || len(s.Jobs()) != 1 || len(s.Sweeps()) != 0 || len(s.ModelVersions("")) != 0 {
		t.Fatalf("restored index %d, %d jobs, %d sweeps", s.Index(), len(s.Jobs()), len(s.Sweeps()))
	}
	// The tables are usable.
	resp := f.Apply(entry(t, 4, structs.SweepSubmitRequestType,
		&structs.SweepSubmitRequest{SweepID: "s1", Spec: sweepSpec("s", tuning.Minimize, tuning.UnitEpochs), SubmitTime: t0}))
	if err, ok := resp.(error); ok {
		t.Fatal(err)
	}
}
