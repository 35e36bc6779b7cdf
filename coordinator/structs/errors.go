package structs

import "errors"

// Sentinel errors. The state store, the server and the client wrap them with
// context; callers check them with errors.Is. The HTTP API carries them as the
// "code" of an error body (see Code and ErrorForCode).
var (
	// ErrNotFound is returned for an unknown job, worker, checkpoint or dataset.
	ErrNotFound = errors.New("not found")
	// ErrInvalid is returned for a malformed request; the message names the field.
	ErrInvalid = errors.New("invalid request")
	// ErrConflict is returned when a command does not fit the current state,
	// for example placing a job that is not pending.
	ErrConflict = errors.New("conflict")
	// ErrNotLeader is returned when a write reached a server that is not (or
	// no longer) the Raft leader; the write may be retried on the leader.
	ErrNotLeader = errors.New("not the leader")
	// ErrNoLeader is returned when the cluster has no known leader (an
	// election is running, or this server is cut off from a quorum).
	ErrNoLeader = errors.New("no cluster leader")
	// ErrTooLarge is returned for a request body (an upload) over the
	// server's size limit; the HTTP API answers it with 413.
	ErrTooLarge = errors.New("request too large")
	// ErrUnknownCommand is wrapped by the error the FSM halts with on a
	// command type it does not know and that is not marked
	// IgnoreUnknownTypeFlag.
	ErrUnknownCommand = errors.New("unknown command type")
)

// Error codes used in HTTP error bodies.
const (
	CodeNotFound       = "not_found"
	CodeInvalid        = "invalid"
	CodeConflict       = "conflict"
	CodeNotLeader      = "not_leader"
	CodeNoLeader       = "no_leader"
	CodeTooLarge       = "too_large"
	CodeUnknownCommand = "unknown_command"
	CodeInternal       = "internal"
)

var codes = []struct {
	code string
	err  error
}{
	{CodeNotFound, ErrNotFound},
	{CodeInvalid, ErrInvalid},
	{CodeConflict, ErrConflict},
	{CodeNotLeader, ErrNotLeader},
	{CodeNoLeader, ErrNoLeader},
	{CodeTooLarge, ErrTooLarge},
	{CodeUnknownCommand, ErrUnknownCommand},
}

// Code returns the HTTP error code for err: the code of the first sentinel
// it wraps, or CodeInternal.
func Code(err error) string {
	for _, c := range codes {
		if errors.Is(err, c.err) {
			return c.code
		}
	}
	return CodeInternal
}

// ErrorForCode returns the sentinel error for an HTTP error code, or nil for
// CodeInternal and codes it does not know.
func ErrorForCode(code string) error {
	for _, c := range codes {
		if c.code == code {
			return c.err
		}
	}
	return nil
}
