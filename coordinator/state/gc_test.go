package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/trainctl/trainctl/coordinator/structs"
)

func digest(n int) string { return fmt.Sprintf("sha256:%064x", n) }

// gcLog builds jobs a (ended at t0), b (ended an hour later), c (a model
// refers to its checkpoint, ended at t0), d (running, a checkpoint), each
// with a checkpoint and a report, and a dataset version d's job uses.
func gcLog() []step {
	one := structs.Resources{Cores: 1}
	steps := []step{
		{name: "worker", typ: structs.WorkerUpsertRequestType,
			req: &structs.WorkerUpsertRequest{ID: "w1", Meta: structs.WorkerMeta{Cores: 8}, Time: t0}},
		{name: "dataset", typ: structs.DatasetRegisterRequestType,
			req: &structs.DatasetRegisterRequest{Name: "shapes", ID: "v1id", Manifest: json.RawMessage(`{}`), Blob: digest(100), Time: t0}},
	}
	for i, id := range []string{"a", "b", "c", "d"} {
		end := t0
		if id == "b" {
			end = t0.Add(time.Hour)
		}
		steps = append(steps,
			step{name: "submit " + id, typ: structs.JobSubmitRequestType,
				req: &structs.JobSubmitRequest{JobID: id, RequestID: "req-" + id, Spec: testSpec(id), DatasetVersionID: "v1id", SubmitTime: t0}},
			step{name: "place " + id, typ: structs.JobPlaceRequestType,
				req: &structs.JobPlaceRequest{JobID: id, Attempt: 1, Placements: []structs.Placement{{Rank: 0, WorkerID: "w1", Resources: one}}, Time: t0}},
			step{name: "report " + id, typ: structs.MetricsReportRequestType,
				req: &structs.MetricsReportRequest{JobID: id, Metrics: []structs.Metric{{JobID: id, Attempt: 1, Step: 10, Values: map[string]float64{"val_loss": 1}, Time: t0}}}},
			step{name: "checkpoint " + id, typ: structs.CheckpointRegisterRequestType,
				req: &structs.CheckpointRegisterRequest{Checkpoint: structs.Checkpoint{Digest: digest(i), JobID: id, Attempt: 1, Step: 10, Time: t0}}},
		)
		if id != "d" {
			steps = append(steps, step{name: "finish " + id, typ: structs.AttemptUpdateRequestType,
				req: &structs.AttemptUpdateRequest{JobID: id, Attempt: 1, State: structs.AttemptSucceeded, Time: end}})
		}
	}
	return append(steps, step{name: "model of c", typ: structs.ModelRegisterRequestType,
		req: &structs.ModelRegisterRequest{Name: "m", Checkpoint: digest(2), JobID: "c", Time: t0}})
}

func TestGCPlanAndApply(t *testing.T) {
	f := NewFSM(quietLogger())
	logs := runLog(t, f, gcLog(), true)
	s := f.State()
	var removed []*structs.GCResponse
	s.OnRemoved(func(r *structs.GCResponse) { removed = append(removed, r) })

	plan := s.Plan(t0.Add(90*time.Minute), Policy{JobRetention: time.Hour})
	want := Plan{Jobs: []string{"a", "c"}, Checkpoints: []string{digest(0)}}
	if fmt.Sprint(plan) != fmt.Sprint(want) {
		t.Fatalf("plan %+v, want %+v: b is recent, c's checkpoint is a model's, d runs", plan, want)
	}
	if again := s.Plan(t0.Add(90*time.Minute), Policy{JobRetention: time.Hour}); fmt.Sprint(again) != fmt.Sprint(plan) {
		t.Fatalf("plan not deterministic: %+v then %+v", plan, again)
	}

	next := uint64(len(logs) + 1)
	gc := []step{
		{name: "collect jobs", typ: structs.JobsGCRequestType,
			req: &structs.JobsGCRequest{JobIDs: append(slices.Clone(plan.Jobs), "d", "missing"), SummaryLimit: 10, Time: t0.Add(90 * time.Minute)},
			check: func(t *testing.T, s *Store, resp any) {
				if r := resp.(*structs.GCResponse); !slices.Equal(r.Removed, []string{"a", "c"}) {
					t.Fatalf("removed %v, want a and c (d runs, missing is missing)", r.Removed)
				}
				if _, err := s.Job("a"); err == nil || len(s.Metrics("a")) != 0 {
					t.Fatal("job a or its reports survived")
				}
				if _, err := s.JobByRequestID("req-a"); err == nil {
					t.Fatal("request id of a survived")
				}
				if sum, err := s.JobSummary("a"); err != nil || sum.State != structs.JobSucceeded || sum.Progress.Step != 10 || sum.Name != "a" {
					t.Fatalf("summary of a: %+v, %v", sum, err)
				}
				job(t, s, "d")
				job(t, s, "b")
			}},
		{name: "collect checkpoints", typ: structs.CheckpointsGCRequestType,
			req: &structs.CheckpointsGCRequest{Digests: []string{digest(0), digest(1), digest(2), digest(3)}},
			check: func(t *testing.T, s *Store, resp any) {
				if r := resp.(*structs.GCResponse); !slices.Equal(r.Removed, []string{digest(0)}) || !slices.Equal(r.Blobs, r.Removed) {
					t.Fatalf("removed %v blobs %v, want only a's checkpoint", r.Removed, r.Blobs)
				}
				for _, d := range []string{digest(1), digest(2), digest(3)} {
					if _, err := s.Checkpoint(d); err != nil {
						t.Fatalf("checkpoint %s (recent job, model, live job) collected", d)
					}
				}
			}},
		{name: "dataset used by d", typ: structs.DatasetRemoveRequestType,
			req: &structs.DatasetRemoveRequest{Name: "shapes", ID: "v1id", Time: t0}, wantErr: structs.ErrConflict},
		{name: "cancel d", typ: structs.JobCancelRequestType, req: &structs.JobCancelRequest{JobID: "d", Time: t0}},
		{name: "dataset removed", typ: structs.DatasetRemoveRequestType,
			req: &structs.DatasetRemoveRequest{Name: "shapes", ID: "v1id", Time: t0},
			check: func(t *testing.T, s *Store, resp any) {
				if r := resp.(*structs.GCResponse); !slices.Equal(r.Blobs, []string{digest(100)}) || len(s.DatasetVersions("shapes")) != 0 {
					t.Fatalf("response %+v, versions %v", r, s.DatasetVersions("shapes"))
				}
			}},
		{name: "dataset gone", typ: structs.DatasetRemoveRequestType,
			req: &structs.DatasetRemoveRequest{Name: "shapes", ID: "v1id", Time: t0}, wantErr: structs.ErrNotFound},
		{name: "summary limit", typ: structs.JobsGCRequestType,
			req: &structs.JobsGCRequest{JobIDs: []string{"b"}, SummaryLimit: 2, Time: t0.Add(3 * time.Hour)},
			check: func(t *testing.T, s *Store, _ any) {
				var ids []string
				for _, v := range s.JobSummaries() {
					ids = append(ids, v.ID)
				}
				if !slices.Equal(ids, []string{"c", "b"}) {
					t.Fatalf("summaries %v, want the 2 that ended last, c then b", ids)
				}
			}},
	}
	for i := range gc {
		l := entry(t, next+uint64(i), gc[i].typ, gc[i].req)
		logs = append(logs, l)
		runOne(t, f, l, gc[i])
	}
	if len(removed) != 2 {
		t.Fatalf("OnRemoved called %d times, want 2 (checkpoints, dataset)", len(removed))
	}

	// Replayed on another FSM, and through a snapshot, the state is the same.
	g := NewFSM(quietLogger())
	for _, l := range logs {
		g.Apply(l)
	}
	a, b := encodeState(t, f.State()), encodeState(t, g.State())
	if !bytes.Equal(a, b) {
		t.Fatalf("replayed state differs:\n%s\n%s", a, b)
	}
	h := NewFSM(quietLogger())
	if err := h.Restore(nopCloser{bytes.NewReader(a)}); err != nil {
		t.Fatal(err)
	}
	if c := encodeState(t, h.State()); !bytes.Equal(a, c) || !strings.Contains(string(c), `"job_summaries"`) {
		t.Fatalf("restored state differs or lacks summaries:\n%s\n%s", a, c)
	}
}

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }

// runOne applies one entry and checks it as runLog does a step.
func runOne(t *testing.T, f *FSM, l *raft.Log, st step) {
	t.Helper()
	var before []byte
	if st.wantErr != nil {
		before = encodeState(t, f.State())
	}
	resp := f.Apply(l)
	err, _ := resp.(error)
	switch {
	case st.wantErr == nil && err != nil:
		t.Fatalf("step %q: %v", st.name, err)
	case st.wantErr != nil && !errors.Is(err, st.wantErr):
		t.Fatalf("step %q: got %v, want %v", st.name, resp, st.wantErr)
	case before != nil && !bytes.Equal(before, encodeState(t, f.State())):
		t.Fatalf("step %q was rejected but changed the state", st.name)
	}
	if st.check != nil {
		st.check(t, f.State(), resp)
	}
}

func TestJobProgress(t *testing.T) {
	f := NewFSM(quietLogger())
	runLog(t, f, gcLog()[:5], true) // job a placed
	runLog2 := []step{
		{name: "progress", typ: structs.JobProgressRequestType,
			req: &structs.JobProgressRequest{JobID: "a", Attempt: 1, Step: 42, Epoch: 2, Metrics: map[string]float64{"loss": 0.5}, Time: t0},
			check: func(t *testing.T, s *Store, _ any) {
				if p := job(t, s, "a").Progress; p.Step != 42 || p.Metrics["loss"] != 0.5 {
					t.Fatalf("progress %+v", p)
				}
			}},
		{name: "stale attempt", typ: structs.JobProgressRequestType,
			req: &structs.JobProgressRequest{JobID: "a", Attempt: 0, Step: 1, Time: t0},
			check: func(t *testing.T, s *Store, _ any) {
				if p := job(t, s, "a").Progress; p.Step != 42 {
					t.Fatalf("progress %+v changed by an old attempt", p)
				}
			}},
		{name: "unknown job", typ: structs.JobProgressRequestType,
			req: &structs.JobProgressRequest{JobID: "zz", Attempt: 1, Time: t0}, wantErr: structs.ErrNotFound},
	}
	for i, st := range runLog2 {
		runOne(t, f, entry(t, uint64(100+i), st.typ, st.req), st)
	}
}
