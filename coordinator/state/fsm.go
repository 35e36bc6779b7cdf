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
// the state. Such errors are responses, never panics: the entry stays in the
// log and every voter reaches the same verdict.
//
// The endpoints validate a command fully before proposing it; the FSM
// decodes it tolerantly (structs.Decode), checks only the invariants the
// state needs (ids present, ranks complete, a sweep step that fits its
// sweep) and applies it deterministically. An entry it cannot decode (not
// JSON, a value of the wrong type, trailing data, an empty entry, or an
// unknown type without structs.IgnoreUnknownTypeFlag) is a bug or a
// version this server does not know: skipping it or answering an error
// would let this node's state part from its peers', so Apply logs it and
// calls Halt, which stops the node (as Nomad's FSM panics).
type FSM struct {
	log      *slog.Logger
	store    *Store
	commands map[structs.MessageType]command

	// Halt stops the node on an undecodable entry; it must not return in
	// production. NewFSM sets it to panic. If it returns (tests), Apply
	// answers the error and leaves the state unchanged.
	Halt func(error)
}

// command decodes one entry's payload and applies it at index. An error
// from decoding is returned as undecodable; an error from the write is the
// response.
type command func(index uint64, payload []byte) (resp any, undecodable error)

// NewFSM returns an FSM over an empty store whose Halt panics.
func NewFSM(log *slog.Logger) *FSM {
	if log == nil {
		log = slog.Default()
	}
	f := &FSM{log: log, store: NewStore(), Halt: func(err error) { panic(err) }}
	f.commands = f.store.commands()
	return f
}

// commands is the FSM's dispatch table: one line per command type and
// encoding version, its decoder and the store's write method.
func (s *Store) commands() map[structs.MessageType]command {
	return map[structs.MessageType]command{
		structs.JobSubmitV1RequestType:        handle(structs.DecodeJobSubmitV1, s.submitJob),
		structs.JobSubmitRequestType:          handle(structs.DecodeAs[structs.JobSubmitRequest], s.submitJob),
		structs.JobCancelRequestType:          handle(structs.DecodeAs[structs.JobCancelRequest], s.cancelJob),
		structs.JobPlaceRequestType:           handle(structs.DecodeAs[structs.JobPlaceRequest], s.placeJob),
		structs.JobPlaceBatchRequestType:      handle(structs.DecodeAs[structs.JobPlaceBatchRequest], s.placeJobs),
		structs.AttemptUpdateRequestType:      handle(structs.DecodeAs[structs.AttemptUpdateRequest], s.updateAttempt),
		structs.MetricsReportRequestType:      handle(structs.DecodeAs[structs.MetricsReportRequest], s.reportMetrics),
		structs.CheckpointRegisterRequestType: handle(structs.DecodeAs[structs.CheckpointRegisterRequest], s.registerCheckpoint),
		structs.WorkerUpsertRequestType:       handle(structs.DecodeAs[structs.WorkerUpsertRequest], s.upsertWorker),
		structs.WorkerDownRequestType:         handle(structs.DecodeAs[structs.WorkerDownRequest], s.workerDown),
		structs.WorkerDrainRequestType:        handle(structs.DecodeAs[structs.WorkerDrainRequest], s.drainWorker),
		structs.DatasetRegisterRequestType:    handle(structs.DecodeAs[structs.DatasetRegisterRequest], s.registerDataset),
		structs.ServerRegisterRequestType:     handle(structs.DecodeAs[structs.ServerRegisterRequest], s.registerServer),
		structs.SweepSubmitV1RequestType:      handle(structs.DecodeSweepSubmitV1, s.submitSweep),
		structs.SweepSubmitRequestType:        handle(structs.DecodeAs[structs.SweepSubmitRequest], s.submitSweep),
		structs.SweepStepV1RequestType:        handle(structs.DecodeSweepStepV1, s.stepSweep),
		structs.SweepStepRequestType:          handle(structs.DecodeAs[structs.SweepStepRequest], s.stepSweep),
		structs.SweepCancelRequestType:        handle(structs.DecodeAs[structs.SweepCancelRequest], s.cancelSweep),
		structs.ModelRegisterRequestType:      handle(structs.DecodeAs[structs.ModelRegisterRequest], s.registerModel),
		structs.JobProgressRequestType:        handle(structs.DecodeAs[structs.JobProgressRequest], s.progressJob),
		structs.JobsGCRequestType:             handle(structs.DecodeAs[structs.JobsGCRequest], s.collectJobs),
		structs.SweepsGCRequestType:           handle(structs.DecodeAs[structs.SweepsGCRequest], s.collectSweeps),
		structs.CheckpointsGCRequestType:      handle(structs.DecodeAs[structs.CheckpointsGCRequest], s.collectCheckpoints),
		structs.DatasetRemoveRequestType:      handle(structs.DecodeAs[structs.DatasetRemoveRequest], s.removeDataset),
		structs.RankUpdateRequestType:         handle(structs.DecodeAs[structs.RankUpdateRequest], s.updateRank),
	}
}

// handle pairs a decoder with the store's write method for a command.
func handle[Req, Resp any](decode func([]byte) (*Req, error), write func(uint64, *Req) (Resp, error)) command {
	return func(index uint64, payload []byte) (any, error) {
		req, err := decode(payload)
		if err != nil {
			return nil, err
		}
		resp, err := write(index, req)
		if err != nil {
			return fmt.Errorf("apply index %d: %w", index, err), nil
		}
		return resp, nil
	}
}

// State returns the store the FSM applies to.
func (f *FSM) State() *Store { return f.store }

// Apply implements raft.FSM.
func (f *FSM) Apply(l *raft.Log) any {
	if len(l.Data) == 0 {
		return f.halt(l, 0, fmt.Errorf("%w: empty entry", structs.ErrInvalid))
	}
	t := structs.MessageType(l.Data[0])
	ignoreUnknown := t&structs.IgnoreUnknownTypeFlag != 0
	t &^= structs.IgnoreUnknownTypeFlag
	cmd, ok := f.commands[t]
	switch {
	case !ok && ignoreUnknown:
		f.log.Warn("skipping unknown command type", "type", uint8(t), "index", l.Index)
		return nil
	case !ok:
		return f.halt(l, t, fmt.Errorf("%w %d", structs.ErrUnknownCommand, uint8(t)))
	}
	resp, err := cmd(l.Index, l.Data[1:])
	if err != nil {
		return f.halt(l, t, err)
	}
	return resp
}

// halt reports an entry the FSM cannot apply and stops the node with Halt;
// if Halt returns, the error is the entry's response.
func (f *FSM) halt(l *raft.Log, t structs.MessageType, err error) error {
	err = fmt.Errorf("fsm: cannot apply log entry %d (term %d, type %s): %w; stopping: this server cannot follow the log (upgrade it, or restore its data directory)",
		l.Index, l.Term, t, err)
	f.log.Error("undecodable log entry; halting", "index", l.Index, "term", l.Term, "type", t.String(), "err", err)
	f.Halt(err)
	return err
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
