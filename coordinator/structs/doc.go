// Package structs holds the types every layer of the coordinator shares:
// jobs and their attempts, workers and their assignments, checkpoints,
// metrics, dataset versions and coordinator servers, sweeps and models, the
// server's own job and sweep specs (spec.go: what commands and state record,
// apart from the user-facing jobspec and tuning specs), plus the Raft
// command encoding (a message-type byte followed by a JSON request, one type
// number per command and encoding version: see MessageType) and the
// sentinel errors callers branch on with errors.Is.
//
// Nothing here does I/O or keeps state; the state store (coordinator/state)
// applies the commands, the server (coordinator) builds them on the leader and
// the HTTP client (coordinator/client) sends and receives these types as JSON.
package structs
