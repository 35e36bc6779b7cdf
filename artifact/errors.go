package artifact

import "errors"

// Sentinel errors, wrapped with context by the functions that return them;
// test for them with errors.Is.
var (
	// ErrBadDigest: a digest string is not "sha256:" followed by 64
	// lowercase hex digits.
	ErrBadDigest = errors.New("bad digest")
	// ErrNotFound: the blob is not in the store (or on the peer).
	ErrNotFound = errors.New("blob not found")
	// ErrDigestMismatch: content does not hash to the digest it was
	// given under.
	ErrDigestMismatch = errors.New("digest mismatch")
	// ErrTooLarge: content exceeds the configured size limit.
	ErrTooLarge = errors.New("blob too large")
	// ErrCorrupt: a stored blob no longer hashes to its digest.
	ErrCorrupt = errors.New("corrupt blob")
)
