// Package state is the coordinator's replicated state: an in-memory store of
// jobs, workers, assignments, checkpoints, metrics, dataset versions,
// coordinator servers, sweeps (with their trials) and the model registry,
// and the Raft FSM that changes it by applying the commands of
// coordinator/structs.
//
// A sweep changes only through its controller's SweepStep commands (and
// SweepCancel): one entry records the results the scheduler judged, the
// trials that ended, the jobs it starts for new trials and cancels for
// stopped ones, and the model version a completed sweep registers, so the
// whole sweep replays from the log.
//
// Every voter applies the same log to its own store, so applying must be
// deterministic: ids and timestamps come inside the commands (stamped by the
// leader), and nothing here reads a clock or a random source. The endpoints
// validate a command before proposing it; the FSM checks only what the
// state needs. A command that does not fit the state (an unknown job, a
// stale attempt) changes nothing and returns an error as the Apply
// response. An entry the FSM cannot decode stops the node (FSM.Halt):
// skipping it would let this node's state part from its peers'. Old
// command versions keep their decoders (testdata/v1 is a v1 log the
// upgrade test replays). Snapshots are the whole state as
// JSON in a canonical order, so two stores that applied the same log encode
// to the same bytes (Store.Encode).
//
// Objects returned by the store's readers are shared with the store and must
// be treated as read-only: writers replace objects (copy on write) rather
// than changing them, so a reader never sees a half-applied command.
package state
