package structs

import (
	"errors"

	"github.com/trainctl/trainctl/api"
)

// Sentinel errors. The state store and the server wrap them with context;
// callers check them with errors.Is. They are the API's own sentinels
// (api.ErrNotFound ...), so the HTTP adapter answers each with its code
// (api.Code) and a client's errors.Is sees the same error the server
// returned.
var (
	// ErrNotFound is returned for an unknown job, worker, checkpoint or dataset.
	ErrNotFound = api.ErrNotFound
	// ErrInvalid is returned for a malformed request; the message names the field.
	ErrInvalid = api.ErrInvalid
	// ErrConflict is returned when a command does not fit the current state,
	// for example placing a job that is not pending.
	ErrConflict = api.ErrConflict
	// ErrNotLeader is returned when a write reached a server that is not (or
	// no longer) the Raft leader; the write may be retried on the leader.
	ErrNotLeader = api.ErrNotLeader
	// ErrNoLeader is returned when the cluster has no known leader (an
	// election is running, or this server is cut off from a quorum).
	ErrNoLeader = api.ErrNoLeader
	// ErrTooLarge is returned for a request body (an upload) over the
	// server's size limit; the HTTP API answers it with 413.
	ErrTooLarge = api.ErrTooLarge
	// ErrUnknownCommand is wrapped by the error the FSM halts with on a
	// command type it does not know and that is not marked
	// IgnoreUnknownTypeFlag. It never reaches the API.
	ErrUnknownCommand = errors.New("unknown command type")
)
