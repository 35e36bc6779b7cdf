// Package structs holds the coordinator server's own types, which every
// layer of the server shares and nothing outside it imports:
// jobs and their attempts, workers and their assignments, checkpoints,
// metrics, dataset versions and coordinator servers, sweeps and models, the
// server's own job and sweep specs (spec.go: what commands and state record,
// apart from the user-facing jobspec and tuning specs), plus the Raft
// command encoding (a message-type byte followed by a JSON request, one type
// number per command and encoding version: see MessageType) and the
// sentinel errors callers branch on with errors.Is.
//
// Nothing here does I/O or keeps state; the state store (coordinator/state)
// applies the commands and the server (coordinator) builds them on the
// leader. The wire types of the API are api's: the server converts these to
// them at the endpoint boundary (coordinator/convert.go), so a change here is
// never silently a change to the API (docs/architecture.md, "Packages and
// layers").
package structs
