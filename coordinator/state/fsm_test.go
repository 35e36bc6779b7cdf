package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/trainctl/trainctl/coordinator/structs"
	"github.com/trainctl/trainctl/jobspec"
)

var t0 = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

func testSpec(name string) structs.JobSpec {
	s := jobspec.Defaults()
	s.Name, s.Dataset = name, "shapes@v1"
	return structs.NewJobSpec(s)
}

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// testFSM returns an FSM whose Halt returns, so that a test can apply a
// log with undecodable entries; runLog checks that they halt.
func testFSM() *FSM {
	f := NewFSM(quietLogger())
	f.Halt = func(error) {}
	return f
}

// entry encodes one command as a Raft log entry.
func entry(t testing.TB, index uint64, typ structs.MessageType, req any) *raft.Log {
	t.Helper()
	buf, err := structs.Encode(typ, req)
	if err != nil {
		t.Fatal(err)
	}
	return &raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: buf}
}

type step struct {
	name    string
	typ     structs.MessageType
	req     any
	raw     []byte // instead of typ and req
	wantErr error
	halt    bool // the entry is undecodable: Apply calls Halt
	check   func(t *testing.T, s *Store, resp any)
}

func job(t *testing.T, s *Store, id string) *structs.Job {
	t.Helper()
	j, err := s.Job(id)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func worker(t *testing.T, s *Store, id string) *structs.Worker {
	t.Helper()
	w, err := s.Worker(id)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// lifecycle is a log that exercises every command type, including commands
// that do not fit the state.
func lifecycle() []step {
	cpu4 := structs.WorkerMeta{Cores: 4, Zone: "a", Version: "test"}
	two := structs.Resources{Cores: 2}
	return []step{
		{name: "worker w1 joins", typ: structs.WorkerUpsertRequestType,
			req: &structs.WorkerUpsertRequest{ID: "w1", Addr: "10.0.0.1:7000", Meta: cpu4, Time: t0},
			check: func(t *testing.T, s *Store, _ any) {
				if w := worker(t, s, "w1"); w.Status != structs.WorkerAlive || w.Free != cpu4.Capacity() {
					t.Fatalf("w1 = %+v", w)
				}
			}},
		{name: "worker w2 joins", typ: structs.WorkerUpsertRequestType,
			req: &structs.WorkerUpsertRequest{ID: "w2", Addr: "10.0.0.2:7000", Meta: cpu4, Status: structs.WorkerAlive, Time: t0}},
		{name: "worker with bad status", typ: structs.WorkerUpsertRequestType,
			req: &structs.WorkerUpsertRequest{ID: "w3", Status: structs.WorkerDead, Time: t0}, wantErr: structs.ErrInvalid},
		{name: "submit j1", typ: structs.JobSubmitRequestType,
			req: &structs.JobSubmitRequest{JobID: "j1", RequestID: "r1", Spec: testSpec("one"), SubmitTime: t0},
			check: func(t *testing.T, s *Store, resp any) {
				if j := resp.(*structs.Job); j.ID != "j1" || j.State != structs.JobPending {
					t.Fatalf("resp = %+v", j)
				}
			}},
		{name: "resubmit r1 returns j1", typ: structs.JobSubmitRequestType,
			req: &structs.JobSubmitRequest{JobID: "j-dup", RequestID: "r1", Spec: testSpec("one"), SubmitTime: t0.Add(time.Second)},
			check: func(t *testing.T, s *Store, resp any) {
				if j := resp.(*structs.Job); j.ID != "j1" {
					t.Fatalf("resubmission created %s", j.ID)
				}
				if _, err := s.Job("j-dup"); !errors.Is(err, structs.ErrNotFound) {
					t.Fatalf("j-dup exists: %v", err)
				}
			}},
		{name: "submit without job id", typ: structs.JobSubmitRequestType,
			req: &structs.JobSubmitRequest{RequestID: "r2", Spec: testSpec("two"), SubmitTime: t0}, wantErr: structs.ErrInvalid},
		{name: "submit existing job id", typ: structs.JobSubmitRequestType,
			req: &structs.JobSubmitRequest{JobID: "j1", RequestID: "r3", Spec: testSpec("two"), SubmitTime: t0}, wantErr: structs.ErrConflict},
		{name: "place wrong attempt number", typ: structs.JobPlaceRequestType,
			req:     &structs.JobPlaceRequest{JobID: "j1", Attempt: 2, Placements: []structs.Placement{{Rank: 0, WorkerID: "w1", Resources: two}}, Time: t0},
			wantErr: structs.ErrConflict},
		{name: "place with a missing rank", typ: structs.JobPlaceRequestType,
			req:     &structs.JobPlaceRequest{JobID: "j1", Attempt: 1, Placements: []structs.Placement{{Rank: 1, WorkerID: "w1"}, {Rank: 1, WorkerID: "w2"}}, Time: t0},
			wantErr: structs.ErrInvalid},
		{name: "place on unknown worker", typ: structs.JobPlaceRequestType,
			req:     &structs.JobPlaceRequest{JobID: "j1", Attempt: 1, Placements: []structs.Placement{{Rank: 0, WorkerID: "nope", Resources: two}}, Time: t0},
			wantErr: structs.ErrNotFound},
		{name: "place two ranks", typ: structs.JobPlaceRequestType,
			req: &structs.JobPlaceRequest{JobID: "j1", Attempt: 1, Placements: []structs.Placement{
				{Rank: 1, WorkerID: "w2", Resources: two}, {Rank: 0, WorkerID: "w1", Resources: two}}, Time: t0.Add(time.Minute)},
			check: func(t *testing.T, s *Store, _ any) {
				j := job(t, s, "j1")
				if j.State != structs.JobRunning || len(j.Attempts) != 1 || j.Attempts[0].Nodes[0] != "w1" || j.Attempts[0].Nodes[1] != "w2" {
					t.Fatalf("j1 = %+v", j)
				}
				if w := worker(t, s, "w1"); w.Free.Cores != 2 {
					t.Fatalf("w1 free = %+v", w.Free)
				}
				if as := s.Assignments("w2"); len(as) != 1 || as[0].Rank != 1 {
					t.Fatalf("w2 assignments = %+v", as)
				}
			}},
		{name: "place a running job", typ: structs.JobPlaceRequestType,
			req:     &structs.JobPlaceRequest{JobID: "j1", Attempt: 2, Placements: []structs.Placement{{Rank: 0, WorkerID: "w1"}}, Time: t0},
			wantErr: structs.ErrConflict},
		{name: "metrics", typ: structs.MetricsReportRequestType,
			req: &structs.MetricsReportRequest{JobID: "j1", Metrics: []structs.Metric{
				{JobID: "j1", Attempt: 1, Epoch: 1, Step: 10, Values: map[string]float64{"loss": 0.9}, Time: t0},
				{JobID: "j1", Attempt: 1, Epoch: 2, Step: 20, Values: map[string]float64{"loss": 0.5, "miou": 0.4}, Time: t0}}},
			check: func(t *testing.T, s *Store, _ any) {
				if p := job(t, s, "j1").Progress; p.Step != 20 || p.Epoch != 2 || p.Metrics["miou"] != 0.4 {
					t.Fatalf("progress = %+v", p)
				}
				if len(s.Metrics("j1")) != 2 {
					t.Fatal("want 2 metric reports")
				}
			}},
		{name: "metrics of another job", typ: structs.MetricsReportRequestType,
			req:     &structs.MetricsReportRequest{JobID: "j1", Metrics: []structs.Metric{{JobID: "j9", Time: t0}}},
			wantErr: structs.ErrInvalid},
		{name: "checkpoint", typ: structs.CheckpointRegisterRequestType,
			req: &structs.CheckpointRegisterRequest{Checkpoint: structs.Checkpoint{Digest: "c1", JobID: "j1", Attempt: 1, Step: 20, Epoch: 2, Size: 100, Time: t0}},
			check: func(t *testing.T, s *Store, _ any) {
				if j := job(t, s, "j1"); j.LatestCheckpoint != "c1" {
					t.Fatalf("latest checkpoint %q", j.LatestCheckpoint)
				}
			}},
		{name: "checkpoint of unknown job", typ: structs.CheckpointRegisterRequestType,
			req:     &structs.CheckpointRegisterRequest{Checkpoint: structs.Checkpoint{Digest: "c9", JobID: "nope", Time: t0}},
			wantErr: structs.ErrNotFound},
		{name: "attempt fails, retried without w2", typ: structs.AttemptUpdateRequestType,
			req: &structs.AttemptUpdateRequest{JobID: "j1", Attempt: 1, State: structs.AttemptFailed, Retry: true, FailedNode: "w2", Error: "rank 1 died", Time: t0},
			check: func(t *testing.T, s *Store, _ any) {
				j := job(t, s, "j1")
				if j.State != structs.JobPending || j.Restarts != 1 || len(j.ExcludedNodes) != 1 || j.ExcludedNodes[0] != "w2" {
					t.Fatalf("j1 = %+v", j)
				}
				if w := worker(t, s, "w2"); w.Free.Cores != 4 {
					t.Fatalf("w2 free = %+v", w.Free)
				}
				if len(s.Assignments("")) != 0 {
					t.Fatal("assignments left")
				}
			}},
		{name: "stale attempt update", typ: structs.AttemptUpdateRequestType,
			req:     &structs.AttemptUpdateRequest{JobID: "j1", Attempt: 1, State: structs.AttemptSucceeded, Time: t0},
			wantErr: structs.ErrConflict},
		{name: "place on excluded node", typ: structs.JobPlaceRequestType,
			req:     &structs.JobPlaceRequest{JobID: "j1", Attempt: 2, Placements: []structs.Placement{{Rank: 0, WorkerID: "w2", Resources: two}}, Time: t0},
			wantErr: structs.ErrConflict},
		{name: "place beyond capacity", typ: structs.JobPlaceRequestType,
			req: &structs.JobPlaceRequest{JobID: "j1", Attempt: 2, Placements: []structs.Placement{
				{Rank: 0, WorkerID: "w1", Resources: two}, {Rank: 1, WorkerID: "w1", Resources: structs.Resources{Cores: 3}}}, Time: t0},
			wantErr: structs.ErrConflict},
		{name: "place both ranks on w1", typ: structs.JobPlaceRequestType,
			req: &structs.JobPlaceRequest{JobID: "j1", Attempt: 2, ResumeFrom: "c1", Placements: []structs.Placement{
				{Rank: 0, WorkerID: "w1", Resources: two}, {Rank: 1, WorkerID: "w1", Resources: two}}, Time: t0}},
		{name: "preempted", typ: structs.AttemptUpdateRequestType,
			req: &structs.AttemptUpdateRequest{JobID: "j1", Attempt: 2, State: structs.AttemptPreempted, Time: t0},
			check: func(t *testing.T, s *Store, _ any) {
				if j := job(t, s, "j1"); j.State != structs.JobPending || j.Restarts != 1 {
					t.Fatalf("j1 = %+v", j)
				}
			}},
		{name: "submit j2", typ: structs.JobSubmitRequestType,
			req: &structs.JobSubmitRequest{JobID: "j2", RequestID: "r2", Spec: testSpec("two"), SubmitTime: t0}},
		{name: "place j2", typ: structs.JobPlaceRequestType,
			req: &structs.JobPlaceRequest{JobID: "j2", Attempt: 1, Placements: []structs.Placement{{Rank: 0, WorkerID: "w2", Resources: two}}, Time: t0}},
		{name: "j2 fails for good", typ: structs.AttemptUpdateRequestType,
			req: &structs.AttemptUpdateRequest{JobID: "j2", Attempt: 1, State: structs.AttemptFailed, Error: "diverged", Time: t0},
			check: func(t *testing.T, s *Store, _ any) {
				if j := job(t, s, "j2"); j.State != structs.JobFailed || j.Error != "diverged" {
					t.Fatalf("j2 = %+v", j)
				}
			}},
		{name: "cancel j1", typ: structs.JobCancelRequestType, req: &structs.JobCancelRequest{JobID: "j1", Time: t0},
			check: func(t *testing.T, s *Store, _ any) {
				if j := job(t, s, "j1"); j.State != structs.JobCancelled {
					t.Fatalf("j1 = %+v", j)
				}
			}},
		{name: "cancel j1 again", typ: structs.JobCancelRequestType, req: &structs.JobCancelRequest{JobID: "j1", Time: t0.Add(time.Hour)},
			check: func(t *testing.T, s *Store, _ any) {
				if j := job(t, s, "j1"); !j.ModifyTime.Equal(t0) {
					t.Fatalf("cancelling again changed the job: %v", j.ModifyTime)
				}
			}},
		{name: "cancel unknown job", typ: structs.JobCancelRequestType, req: &structs.JobCancelRequest{JobID: "nope", Time: t0},
			wantErr: structs.ErrNotFound},
		{name: "drain w1", typ: structs.WorkerDrainRequestType, req: &structs.WorkerDrainRequest{ID: "w1", Time: t0}},
		{name: "w1 gossips alive, stays draining", typ: structs.WorkerUpsertRequestType,
			req: &structs.WorkerUpsertRequest{ID: "w1", Addr: "10.0.0.1:7000", Meta: cpu4, Time: t0},
			check: func(t *testing.T, s *Store, _ any) {
				if w := worker(t, s, "w1"); w.Status != structs.WorkerDraining {
					t.Fatalf("w1 = %+v", w)
				}
			}},
		{name: "w2 leaves", typ: structs.WorkerDownRequestType, req: &structs.WorkerDownRequest{ID: "w2", Status: structs.WorkerLeft, Time: t0}},
		{name: "drain a departed worker", typ: structs.WorkerDrainRequestType, req: &structs.WorkerDrainRequest{ID: "w2", Time: t0},
			wantErr: structs.ErrConflict},
		{name: "unknown worker down", typ: structs.WorkerDownRequestType, req: &structs.WorkerDownRequest{ID: "nope", Status: structs.WorkerDead, Time: t0},
			wantErr: structs.ErrNotFound},
		{name: "dataset v1", typ: structs.DatasetRegisterRequestType,
			req: &structs.DatasetRegisterRequest{Name: "shapes", ID: "aaaa", Manifest: json.RawMessage(`{"name": "shapes",  "seq": 1}`), Time: t0}},
		{name: "dataset v2", typ: structs.DatasetRegisterRequestType,
			req: &structs.DatasetRegisterRequest{Name: "shapes", ID: "bbbb", Manifest: json.RawMessage(`{}`), Time: t0},
			check: func(t *testing.T, s *Store, resp any) {
				if v := resp.(*structs.DatasetVersion); v.Seq != 2 {
					t.Fatalf("seq %d", v.Seq)
				}
			}},
		{name: "dataset v1 again", typ: structs.DatasetRegisterRequestType,
			req: &structs.DatasetRegisterRequest{Name: "shapes", ID: "aaaa", Manifest: json.RawMessage(`{}`), Time: t0},
			check: func(t *testing.T, s *Store, resp any) {
				if v := resp.(*structs.DatasetVersion); v.Seq != 1 || string(v.Manifest) != `{"name":"shapes","seq":1}` {
					t.Fatalf("v = %+v", v)
				}
			}},
		{name: "dataset with a manifest that is no object", typ: structs.DatasetRegisterRequestType,
			req:     &structs.DatasetRegisterRequest{Name: "shapes", ID: "cccc", Manifest: json.RawMessage(`"x"`), Time: t0},
			wantErr: structs.ErrInvalid},
		{name: "server", typ: structs.ServerRegisterRequestType,
			req: &structs.ServerRegisterRequest{ID: "c1", RaftAddr: "127.0.0.1:1", HTTPAddr: "127.0.0.1:2"}},
		{name: "known type with the ignore flag applies", raw: append([]byte{byte(structs.ServerRegisterRequestType | structs.IgnoreUnknownTypeFlag)}, `{"id":"c2","raft_addr":"a","http_addr":"b"}`...),
			check: func(t *testing.T, s *Store, _ any) {
				if _, err := s.Server("c2"); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "unknown type", raw: []byte{99, '{', '}'}, halt: true},
		{name: "unknown type, ignorable", raw: []byte{99 | 128, '{', '}'}},
		{name: "unknown field: ignored", raw: append([]byte{byte(structs.WorkerDrainRequestType)}, `{"id":"nope","x":1}`...), wantErr: structs.ErrNotFound},
		{name: "unknown nested field: ignored", raw: append([]byte{byte(structs.ServerRegisterRequestType)}, `{"id":"c3","raft_addr":"a","http_addr":"b","tls":{"ca":"x"}}`...),
			check: func(t *testing.T, s *Store, _ any) {
				if _, err := s.Server("c3"); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "wrong type", raw: append([]byte{byte(structs.WorkerDrainRequestType)}, `{"id":7}`...), halt: true},
		{name: "trailing data", raw: append([]byte{byte(structs.WorkerDrainRequestType)}, `{"id":"w1"} {"id":"w2"}`...), halt: true},
		{name: "not an object", raw: append([]byte{byte(structs.WorkerDrainRequestType)}, `null`...), halt: true},
		{name: "not JSON", raw: append([]byte{byte(structs.JobSubmitRequestType)}, `{"job_id":`...), halt: true},
		{name: "v1 job submit with a v2 spec's type mismatch", raw: append([]byte{byte(structs.JobSubmitV1RequestType)}, `{"job_id":"jx","spec":{"max_time":5}}`...), halt: true},
		{name: "empty entry", raw: []byte{}, halt: true},
	}
}

// runLog applies the steps to f from index 1 and returns the entries.
func runLog(t *testing.T, f *FSM, steps []step, check bool) []*raft.Log {
	var logs []*raft.Log
	for i, st := range steps {
		l := &raft.Log{Index: uint64(i + 1), Term: 1, Type: raft.LogCommand, Data: st.raw}
		if st.raw == nil {
			l = entry(t, uint64(i+1), st.typ, st.req)
		}
		logs = append(logs, l)
		var before []byte
		if check && (st.wantErr != nil || st.halt) {
			before = encodeState(t, f.State())
		}
		var halted error
		f.Halt = func(err error) { halted = err }
		resp := f.Apply(l)
		if !check {
			continue
		}
		if st.halt != (halted != nil) {
			t.Fatalf("step %q: halted with %v, want a halt: %v", st.name, halted, st.halt)
		}
		err, _ := resp.(error)
		if before != nil {
			// A rejected command changes nothing.
			if after := encodeState(t, f.State()); !bytes.Equal(before, after) {
				t.Fatalf("step %q was rejected (%v) but changed the state:\n%s\n%s", st.name, resp, before, after)
			}
		}
		if st.halt {
			if !errors.Is(err, halted) {
				t.Fatalf("step %q: response %v, want the halt's error", st.name, resp)
			}
			continue
		}
		if st.wantErr == nil && err != nil {
			t.Fatalf("step %q: %v", st.name, err)
		}
		if st.wantErr != nil && !errors.Is(err, st.wantErr) {
			t.Fatalf("step %q: got %v, want %v", st.name, resp, st.wantErr)
		}
		if st.check != nil {
			st.check(t, f.State(), resp)
		}
	}
	return logs
}

func TestApplyLifecycle(t *testing.T) {
	runLog(t, testFSM(), lifecycle(), true)
}

func encodeState(t *testing.T, s *Store) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := s.Encode(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestApplyDeterministic(t *testing.T) {
	a, b := testFSM(), testFSM()
	logs := runLog(t, a, lifecycle(), false)
	for _, l := range logs {
		b.Apply(l)
	}
	if sa, sb := encodeState(t, a.State()), encodeState(t, b.State()); !bytes.Equal(sa, sb) {
		t.Fatalf("states differ:\n%s\n%s", sa, sb)
	}
}

// memSink is a raft.SnapshotSink in memory.
type memSink struct {
	bytes.Buffer
	closed, cancelled bool
}

func (m *memSink) ID() string    { return "mem" }
func (m *memSink) Close() error  { m.closed = true; return nil }
func (m *memSink) Cancel() error { m.cancelled = true; return nil }

func TestSnapshotRestore(t *testing.T) {
	steps := lifecycle()
	src := testFSM()
	logs := runLog(t, src, steps, false)

	snap, err := src.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	// Applies after the snapshot was taken do not leak into it.
	src.Apply(entry(t, uint64(len(logs)+1), structs.JobSubmitRequestType,
		&structs.JobSubmitRequest{JobID: "late", RequestID: "late", Spec: testSpec("late"), SubmitTime: t0}))
	var sink memSink
	if err := snap.Persist(&sink); err != nil || !sink.closed {
		t.Fatalf("persist: %v (closed %v)", err, sink.closed)
	}
	snap.Release()

	dst := testFSM()
	dst.Apply(entry(t, 1, structs.JobSubmitRequestType, // replaced by the restore
		&structs.JobSubmitRequest{JobID: "gone", Spec: testSpec("gone"), SubmitTime: t0}))
	if err := dst.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	if _, err := dst.State().Job("gone"); !errors.Is(err, structs.ErrNotFound) {
		t.Fatal("restore kept old state")
	}
	if _, err := dst.State().Job("late"); !errors.Is(err, structs.ErrNotFound) {
		t.Fatal("snapshot holds an entry applied after it was taken")
	}
	if got := encodeState(t, dst.State()); !bytes.Equal(got, sink.Bytes()) {
		t.Fatalf("restored state differs from the snapshot:\n%s\n%s", got, sink.Bytes())
	}

	// The restored indexes work: the same later entries give the same state.
	more := []*raft.Log{
		entry(t, 100, structs.JobSubmitRequestType, &structs.JobSubmitRequest{JobID: "dup", RequestID: "r1", Spec: testSpec("x"), SubmitTime: t0}),
		entry(t, 101, structs.CheckpointRegisterRequestType, &structs.CheckpointRegisterRequest{Checkpoint: structs.Checkpoint{Digest: "c2", JobID: "j1", Step: 5, Time: t0}}),
	}
	ref := testFSM()
	runLog(t, ref, steps, false)
	for _, l := range more {
		ref.Apply(l)
		dst.Apply(l)
	}
	if _, err := dst.State().Job("dup"); !errors.Is(err, structs.ErrNotFound) {
		t.Fatal("request id index lost in restore")
	}
	if a, b := encodeState(t, ref.State()), encodeState(t, dst.State()); !bytes.Equal(a, b) {
		t.Fatalf("states differ after restore:\n%s\n%s", a, b)
	}
}

func TestRestoreRejectsBadSnapshots(t *testing.T) {
	tests := []struct{ name, data string }{
		{"garbage", "nope"},
		{"unknown field", `{"version":1,"bogus":true}`},
		{"wrong version", `{"version":99}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := testFSM()
			if err := f.Restore(io.NopCloser(bytes.NewReader([]byte(tt.data)))); !errors.Is(err, structs.ErrInvalid) {
				t.Fatalf("Restore = %v, want ErrInvalid", err)
			}
		})
	}
}

// batchLog submits three jobs on two 4-core workers and places them in one
// JobPlaceBatch whose second and fourth placements do not fit; the last
// command is a batch of one placement that fails.
func batchLog() []step {
	cpu4 := structs.WorkerMeta{Cores: 4, Zone: "a", Version: "test"}
	two := structs.Resources{Cores: 2}
	three := structs.Resources{Cores: 3}
	return []step{
		{name: "w1", typ: structs.WorkerUpsertRequestType, req: &structs.WorkerUpsertRequest{ID: "w1", Meta: cpu4, Time: t0}},
		{name: "w2", typ: structs.WorkerUpsertRequestType, req: &structs.WorkerUpsertRequest{ID: "w2", Meta: cpu4, Time: t0}},
		{name: "j1", typ: structs.JobSubmitRequestType, req: &structs.JobSubmitRequest{JobID: "j1", Spec: testSpec("one"), SubmitTime: t0}},
		{name: "j2", typ: structs.JobSubmitRequestType, req: &structs.JobSubmitRequest{JobID: "j2", Spec: testSpec("two"), SubmitTime: t0}},
		{name: "j3", typ: structs.JobSubmitRequestType, req: &structs.JobSubmitRequest{JobID: "j3", Spec: testSpec("three"), SubmitTime: t0}},
		{name: "batch", typ: structs.JobPlaceBatchRequestType,
			req: &structs.JobPlaceBatchRequest{Places: []structs.JobPlaceRequest{
				{JobID: "j1", Attempt: 1, Placements: []structs.Placement{{Rank: 0, WorkerID: "w1", Resources: three}}, Time: t0},
				// w1 has 1 core left after j1: a conflict, skipped.
				{JobID: "j2", Attempt: 1, Placements: []structs.Placement{{Rank: 0, WorkerID: "w1", Resources: two}}, Time: t0},
				{JobID: "j3", Attempt: 1, ResumeFrom: "c0", Placements: []structs.Placement{
					{Rank: 1, WorkerID: "w2", Resources: two}, {Rank: 0, WorkerID: "w2", Resources: two}}, Time: t0},
				// j1 is running now: a conflict.
				{JobID: "j1", Attempt: 1, Placements: []structs.Placement{{Rank: 0, WorkerID: "w2", Resources: two}}, Time: t0},
				{JobID: "nope", Attempt: 1, Placements: []structs.Placement{{Rank: 0, WorkerID: "w2"}}, Time: t0},
				{JobID: "j2", Attempt: 1, Placements: []structs.Placement{{Rank: 1, WorkerID: "w2"}}, Time: t0},
			}},
			check: func(t *testing.T, s *Store, resp any) {
				br, ok := resp.(*structs.JobPlaceBatchResponse)
				if !ok || len(br.Results) != 6 {
					t.Fatalf("resp = %#v", resp)
				}
				want := []error{nil, structs.ErrConflict, nil, structs.ErrConflict, structs.ErrNotFound, structs.ErrInvalid}
				for i, r := range br.Results {
					if w := want[i]; (w == nil) != (r.Err == nil) || (w != nil && !errors.Is(r.Err, w)) || (w == nil) != (r.Job != nil) {
						t.Errorf("results[%d] = %+v, want error %v", i, r, w)
					}
				}
				if j := job(t, s, "j1"); j.State != structs.JobRunning || j.Attempts[0].Nodes[0] != "w1" || j.ModifyIndex != 6 {
					t.Fatalf("j1 = %+v", j)
				}
				if j := job(t, s, "j2"); j.State != structs.JobPending || len(j.Attempts) != 0 || j.ModifyIndex != 4 {
					t.Fatalf("j2 = %+v", j)
				}
				if j := job(t, s, "j3"); j.State != structs.JobRunning || j.Attempts[0].ResumeFrom != "c0" || len(j.Attempts[0].Nodes) != 2 {
					t.Fatalf("j3 = %+v", j)
				}
				if w1, w2 := worker(t, s, "w1"), worker(t, s, "w2"); w1.Free.Cores != 1 || w2.Free.Cores != 0 {
					t.Fatalf("free: w1 %+v, w2 %+v", w1.Free, w2.Free)
				}
				if as := s.Assignments(""); len(as) != 3 {
					t.Fatalf("assignments = %+v", as)
				}
			}},
		{name: "j2 does not fit anywhere", typ: structs.JobPlaceBatchRequestType,
			req: &structs.JobPlaceBatchRequest{Places: []structs.JobPlaceRequest{
				{JobID: "j2", Attempt: 1, Placements: []structs.Placement{{Rank: 0, WorkerID: "w2", Resources: two}}, Time: t0}}},
			check: func(t *testing.T, s *Store, resp any) {
				if br := resp.(*structs.JobPlaceBatchResponse); !errors.Is(br.Results[0].Err, structs.ErrConflict) {
					t.Fatalf("resp = %+v", br.Results)
				}
				if s.Index() != 6 {
					t.Fatalf("index %d after a batch that placed nothing, want 6", s.Index())
				}
			}},
		{name: "empty batch", typ: structs.JobPlaceBatchRequestType, req: &structs.JobPlaceBatchRequest{}, wantErr: structs.ErrInvalid},
		{name: "batch with a rank that is no number", raw: append([]byte{byte(structs.JobPlaceBatchRequestType)}, `{"places":[{"job_id":"j2","attempt":1,"placements":[{"rank":"0"}]}]}`...), halt: true},
	}
}

func TestApplyPlaceBatch(t *testing.T) {
	runLog(t, testFSM(), batchLog(), true)
}

// TestPlaceBatchMatchesSingles: a batch leaves the same jobs, workers and
// assignments as the same placements applied as JobPlace entries, apart
// from the indexes.
func TestPlaceBatchMatchesSingles(t *testing.T) {
	steps := batchLog()[:6]
	batched := testFSM()
	runLog(t, batched, steps, false)
	single := testFSM()
	runLog(t, single, steps[:5], false)
	for _, p := range steps[5].req.(*structs.JobPlaceBatchRequest).Places {
		single.Apply(entry(t, 6, structs.JobPlaceRequestType, &p))
	}
	if a, b := encodeState(t, batched.State()), encodeState(t, single.State()); !bytes.Equal(a, b) {
		t.Fatalf("states differ:\n%s\n%s", a, b)
	}
}

func TestApplyPlaceBatchDeterministic(t *testing.T) {
	steps := append(lifecycle(), batchLog()...)
	a, b := testFSM(), testFSM()
	logs := runLog(t, a, steps, false)
	for _, l := range logs {
		b.Apply(l)
	}
	if sa, sb := encodeState(t, a.State()), encodeState(t, b.State()); !bytes.Equal(sa, sb) {
		t.Fatalf("states differ:\n%s\n%s", sa, sb)
	}
}

func TestSnapshotRestorePlaceBatch(t *testing.T) {
	steps := batchLog()
	src := testFSM()
	runLog(t, src, steps[:6], false)
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
	// The rest of the log, applied to both, gives the same state.
	for i, st := range steps[6:] {
		l := &raft.Log{Index: uint64(7 + i), Term: 1, Type: raft.LogCommand, Data: st.raw}
		if st.raw == nil {
			l = entry(t, uint64(7+i), st.typ, st.req)
		}
		src.Apply(l)
		dst.Apply(l)
	}
	if a, b := encodeState(t, src.State()), encodeState(t, dst.State()); !bytes.Equal(a, b) {
		t.Fatalf("states differ after restore:\n%s\n%s", a, b)
	}
}
