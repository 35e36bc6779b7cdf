package state

import (
	"context"
	"testing"
	"time"

	"github.com/trainctl/trainctl/coordinator/structs"
)

// TestTableIndexes checks that each command moves the index of the tables
// it changes and of no other.
func TestTableIndexes(t *testing.T) {
	f := testFSM()
	s := f.State()
	apply := func(index uint64, typ structs.MessageType, req any) {
		t.Helper()
		if err, ok := f.Apply(entry(t, index, typ, req)).(error); ok {
			t.Fatalf("apply %d: %v", index, err)
		}
	}
	want := func(tb Table, idx uint64) {
		t.Helper()
		if got := s.TableIndex(tb); got != idx {
			t.Errorf("TableIndex(%s) = %d, want %d", tb, got, idx)
		}
	}
	apply(1, structs.WorkerUpsertRequestType, &structs.WorkerUpsertRequest{ID: "w1", Addr: "a:1", Meta: structs.WorkerMeta{Cores: 4}, Time: t0})
	apply(2, structs.JobSubmitRequestType, &structs.JobSubmitRequest{JobID: "j1", Spec: testSpec("one"), SubmitTime: t0})
	want(TableWorkers, 1)
	want(TableJobs, 2)
	want(TableSweeps, 0)
	apply(3, structs.JobPlaceRequestType, &structs.JobPlaceRequest{JobID: "j1", Attempt: 1,
		Placements: []structs.Placement{{Rank: 0, WorkerID: "w1", Resources: structs.Resources{Cores: 1}}}, Time: t0})
	want(TableWorkers, 3)
	want(TableJobs, 3)
	apply(4, structs.MetricsReportRequestType, &structs.MetricsReportRequest{JobID: "j1", Metrics: []structs.Metric{{JobID: "j1", Attempt: 1, Values: map[string]float64{"loss": 1}, Time: t0}}})
	want(TableMetrics, 4)
	want(TableWorkers, 3)
	if got := s.TableIndex(TableSweeps, TableJobs); got != 4 {
		t.Errorf("TableIndex(sweeps, jobs) = %d, want 4", got)
	}
	if got := s.TableIndex(); got != 4 {
		t.Errorf("TableIndex() = %d, want the state's 4", got)
	}
}

// TestWaitWakesOnlyForItsTables checks that Wait returns at once for an
// index already passed, blocks through changes to other tables, and
// returns with the new index when its table changes.
func TestWaitWakesOnlyForItsTables(t *testing.T) {
	f := testFSM()
	s := f.State()
	if _, ok := f.Apply(entry(t, 5, structs.JobSubmitRequestType, &structs.JobSubmitRequest{JobID: "j1", Spec: testSpec("one"), SubmitTime: t0})).(error); ok {
		t.Fatal("submit failed")
	}
	if got := s.Wait(context.Background(), 4, TableJobs); got != 5 {
		t.Fatalf("Wait(4) = %d, want 5 at once", got)
	}

	got := make(chan uint64, 1)
	go func() { got <- s.Wait(context.Background(), 5, TableJobs) }()
	if err, ok := f.Apply(entry(t, 6, structs.WorkerUpsertRequestType, &structs.WorkerUpsertRequest{ID: "w1", Addr: "a:1", Meta: structs.WorkerMeta{Cores: 1}, Time: t0})).(error); ok {
		t.Fatal(err)
	}
	select {
	case idx := <-got:
		t.Fatalf("Wait on jobs returned %d after a worker change", idx)
	case <-time.After(50 * time.Millisecond):
	}
	if err, ok := f.Apply(entry(t, 7, structs.JobCancelRequestType, &structs.JobCancelRequest{JobID: "j1", Time: t0})).(error); ok {
		t.Fatal(err)
	}
	select {
	case idx := <-got:
		if idx != 7 {
			t.Fatalf("Wait returned %d, want 7", idx)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Wait did not return after the job changed")
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if idx := s.Wait(ctx, 7, TableJobs); idx != 7 {
		t.Fatalf("Wait with an ended context = %d, want the current 7", idx)
	}
}
