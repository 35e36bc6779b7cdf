package state

import (
	"fmt"
	"io"
	"log/slog"

	"github.com/hashicorp/raft"

	"github.com/trainctl/trainctl/coordinator/structs"
)

// FSM applies Raft log entries to a Store. It implements raft.FSM.
//
// Apply returns, as the entry's response, the object the command created or
// changed (for example the *structs.Job of a JobSubmit, which on a repeated
// request id is the existing job) or an error when the command does not fit
// the state. Errors are responses, never panics: the entry stays in the log
// and every voter reaches the same verdict.
type FSM struct {
	log   *slog.Logger
	store *Store
}

// NewFSM returns an FSM over an empty store.
func NewFSM(log *slog.Logger) *FSM {
	if log == nil {
		log = slog.Default()
	}
	return &FSM{log: log, store: NewStore()}
}

// State returns the store the FSM applies to.
func (f *FSM) State() *Store { return f.store }

// Apply implements raft.FSM.
func (f *FSM) Apply(l *raft.Log) any {
	if len(l.Data) == 0 {
		return fmt.Errorf("apply index %d: %w: empty entry", l.Index, structs.ErrInvalid)
	}
	t := structs.MessageType(l.Data[0])
	ignoreUnknown := t&structs.IgnoreUnknownTypeFlag != 0
	t &^= structs.IgnoreUnknownTypeFlag
	payload := l.Data[1:]

	switch t {
	case structs.JobSubmitRequestType:
		return apply(l.Index, payload, f.store.submitJob)
	case structs.JobCancelRequestType:
		return apply(l.Index, payload, f.store.cancelJob)
	case structs.JobPlaceRequestType:
		return apply(l.Index, payload, f.store.placeJob)
	case structs.AttemptUpdateRequestType:
		return apply(l.Index, payload, f.store.updateAttempt)
	case structs.MetricsReportRequestType:
		return apply(l.Index, payload, f.store.reportMetrics)
	case structs.CheckpointRegisterRequestType:
		return apply(l.Index, payload, f.store.registerCheckpoint)
	case structs.WorkerUpsertRequestType:
		return apply(l.Index, payload, f.store.upsertWorker)
	case structs.WorkerDownRequestType:
		return apply(l.Index, payload, f.store.workerDown)
	case structs.WorkerDrainRequestType:
		return apply(l.Index, payload, f.store.drainWorker)
	case structs.DatasetRegisterRequestType:
		return apply(l.Index, payload, f.store.registerDataset)
	case structs.ServerRegisterRequestType:
		return apply(l.Index, payload, f.store.registerServer)
	case structs.JobPlaceBatchRequestType:
		return apply(l.Index, payload, f.store.placeJobs)
	case structs.SweepSubmitRequestType:
		return apply(l.Index, payload, f.store.submitSweep)
	case structs.SweepStepRequestType:
		return apply(l.Index, payload, f.store.stepSweep)
	case structs.SweepCancelRequestType:
		return apply(l.Index, payload, f.store.cancelSweep)
	case structs.ModelRegisterRequestType:
		return apply(l.Index, payload, f.store.registerModel)
	case structs.JobProgressRequestType:
		return apply(l.Index, payload, f.store.progressJob)
	case structs.JobsGCRequestType:
		return apply(l.Index, payload, f.store.collectJobs)
	case structs.SweepsGCRequestType:
		return apply(l.Index, payload, f.store.collectSweeps)
	case structs.CheckpointsGCRequestType:
		return apply(l.Index, payload, f.store.collectCheckpoints)
	case structs.DatasetRemoveRequestType:
		return apply(l.Index, payload, f.store.removeDataset)
	}
	if ignoreUnknown {
		f.log.Warn("skipping unknown command type", "type", uint8(t), "index", l.Index)
		return nil
	}
	return fmt.Errorf("apply index %d: %w %d", l.Index, structs.ErrUnknownCommand, uint8(t))
}

// apply decodes a command's payload strictly into a Req and hands it to the
// store's write method; the result or the error is the Apply response.
func apply[Req, Resp any](index uint64, payload []byte, write func(uint64, *Req) (Resp, error)) any {
	req := new(Req)
	if err := structs.Decode(payload, req); err != nil {
		return fmt.Errorf("apply index %d: %w", index, err)
	}
	resp, err := write(index, req)
	if err != nil {
		return fmt.Errorf("apply index %d: %w", index, err)
	}
	return resp
}

// Snapshot implements raft.FSM: it captures the current tables (their
// objects are immutable, so copying the maps is enough) and encodes them in
// Persist, concurrently with further applies.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	return &fsmSnapshot{data: f.store.capture()}, nil
}

// Restore implements raft.FSM: it replaces the whole state with a snapshot.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	t, err := decodeSnapshot(rc)
	if err != nil {
		return fmt.Errorf("restore snapshot: %w", err)
	}
	f.store.mu.Lock()
	f.store.t = t
	// The snapshot keeps no per-table indexes: every table may have changed.
	for _, tb := range Tables() {
		f.store.tableIndex[tb] = t.index
	}
	f.store.wake()
	f.store.mu.Unlock()
	f.log.Info("restored state from snapshot", "index", t.index, "jobs", len(t.jobs), "sweeps", len(t.sweeps))
	return nil
}

type fsmSnapshot struct {
	data *snapshotData
}

// Persist implements raft.FSMSnapshot.
func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := s.data.encode(sink); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("persist snapshot: %w", err)
	}
	return sink.Close()
}

// Release implements raft.FSMSnapshot.
func (s *fsmSnapshot) Release() {}
