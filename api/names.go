package api

import (
	"fmt"

	"github.com/trainctl/trainctl/artifact"
	"github.com/trainctl/trainctl/dataset"
	"github.com/trainctl/trainctl/tuning"
)

// Kind names a kind of name or id the API accepts; CheckID holds each to
// its rule. The coordinator checks every one it is given, in a body, a
// path or a query, by CheckID, and clients may check before sending.
type Kind string

// The kinds of names and ids of the API.
const (
	// KindJob is a job id: the coordinator's 16 hex digits, or a sweep
	// trial's <sweep id>-t<N>.
	KindJob Kind = "job id"
	// KindSweep is a sweep id.
	KindSweep Kind = "sweep id"
	// KindWorker is a worker id, chosen by the worker (its host name by
	// default).
	KindWorker Kind = "worker id"
	// KindServer is a coordinator's node id.
	KindServer Kind = "server id"
	// KindModel is a model name (tuning.CheckModelName).
	KindModel Kind = "model name"
	// KindDataset is a dataset name (dataset.ValidateName).
	KindDataset Kind = "dataset name"
	// KindDatasetVersion is a dataset version id: lowercase hex, the
	// version's content id.
	KindDatasetVersion Kind = "dataset version id"
	// KindDigest is a blob digest: a checkpoint or a dataset blob
	// (artifact.ParseDigest).
	KindDigest Kind = "digest"
	// KindRequestID is a client's idempotency key of a submission, and the
	// X-Request-Id of an HTTP request.
	KindRequestID Kind = "request id"
)

// Limits of the names and ids CheckID accepts.
const (
	// MaxIDLen bounds job, sweep, worker and server ids.
	MaxIDLen = 64
	// MaxDatasetVersionLen is the length of a full dataset version id.
	MaxDatasetVersionLen = 64
	// MaxRequestIDLen bounds a request id.
	MaxRequestIDLen = 128
)

// IDError is the error of CheckID: which kind of name or id was bad, and
// why. It unwraps to ErrInvalid and to the reason.
type IDError struct {
	Kind Kind
	Err  error
}

// Error returns the kind and the reason.
func (e *IDError) Error() string { return string(e.Kind) + ": " + e.Err.Error() }

// Unwrap returns ErrInvalid and the reason.
func (e *IDError) Unwrap() []error { return []error{ErrInvalid, e.Err} }

// CheckID reports why s cannot be a name or id of kind k, or nil. The
// error is an *IDError (so it wraps ErrInvalid); it quotes at most a
// bounded prefix of s, so a huge value does not make a huge message.
func CheckID(k Kind, s string) error {
	var err error
	switch k {
	case KindJob, KindSweep, KindWorker, KindServer:
		err = checkChars(s, MaxIDLen, isIDChar, "letters, digits, '.', '_' and '-'")
	case KindModel:
		err = tuning.CheckModelName(s)
	case KindDataset:
		if len(s) > MaxIDLen {
			err = fmt.Errorf("%q is %d bytes, the limit is %d", Truncate(s, 32), len(s), MaxIDLen)
			break
		}
		err = dataset.ValidateName(s)
	case KindDatasetVersion:
		err = checkChars(s, MaxDatasetVersionLen, isLowerHex, "lowercase hex digits")
	case KindDigest:
		_, err = artifact.ParseDigest(s)
	case KindRequestID:
		err = checkChars(s, MaxRequestIDLen, isRequestIDChar, "letters, digits and . _ - : + / =")
	default:
		err = fmt.Errorf("unknown kind of name or id %q", string(k))
	}
	if err != nil {
		return &IDError{Kind: k, Err: err}
	}
	return nil
}

// checkChars checks that s is 1 to max bytes, each allowed by ok, the
// first a letter or a digit.
func checkChars(s string, max int, ok func(byte) bool, allowed string) error {
	switch {
	case s == "":
		return fmt.Errorf("required")
	case len(s) > max:
		return fmt.Errorf("%q is %d bytes, the limit is %d", Truncate(s, 32), len(s), max)
	case !isAlnum(s[0]):
		return fmt.Errorf("%q must start with a letter or a digit", Truncate(s, 32))
	}
	for i := range len(s) {
		if !ok(s[i]) {
			return fmt.Errorf("%q has %q at byte %d; use %s", Truncate(s, 32), s[i], i, allowed)
		}
	}
	return nil
}

// Truncate returns s cut to at most n bytes, marked with "…" when cut;
// for quoting untrusted values in messages.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

func isIDChar(c byte) bool { return isAlnum(c) || c == '.' || c == '_' || c == '-' }

func isLowerHex(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' }

func isRequestIDChar(c byte) bool {
	switch c {
	case '.', '_', '-', ':', '+', '/', '=':
		return true
	}
	return isAlnum(c)
}
