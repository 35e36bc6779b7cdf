package api

import "errors"

// Sentinel errors. The client wraps them (APIError unwraps to the one its
// code names) and the server returns them, so callers check them with
// errors.Is. The HTTP API carries them as the "code" of an error body (see
// Code and ErrorForCode).
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
)

// Error codes used in HTTP error bodies.
const (
	CodeNotFound  = "not_found"
	CodeInvalid   = "invalid"
	CodeConflict  = "conflict"
	CodeNotLeader = "not_leader"
	CodeNoLeader  = "no_leader"
	CodeTooLarge  = "too_large"
	CodeInternal  = "internal"
	// CodeOverloaded answers a request a coordinator refused because it
	// serves as many as it may at once (HTTP 503 with Retry-After).
	CodeOverloaded = "overloaded"
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
