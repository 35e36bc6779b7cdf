package artifact

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
)

// DigestPrefix is the algorithm prefix of every digest string.
const DigestPrefix = "sha256:"

// digestLen is the length of a digest string: the prefix and 64 hex digits.
const digestLen = len(DigestPrefix) + 2*sha256.Size

// ParseDigest checks that s is a digest in canonical form, "sha256:"
// followed by exactly 64 lowercase hex digits, and returns the hex part.
// Anything else (another algorithm, upper case, wrong length, stray
// characters) gives an error wrapping ErrBadDigest that quotes s.
func ParseDigest(s string) (string, error) {
	bad := func(why string) (string, error) {
		q := s
		if len(q) > digestLen+8 {
			q = q[:digestLen+8] + "…"
		}
		return "", fmt.Errorf("%w %q: %s (want sha256:<64 lowercase hex digits>)", ErrBadDigest, q, why)
	}
	hexPart, ok := strings.CutPrefix(s, DigestPrefix)
	if !ok {
		return bad("no sha256: prefix")
	}
	if len(hexPart) != 2*sha256.Size {
		return bad(fmt.Sprintf("%d hex digits", len(hexPart)))
	}
	for i := range len(hexPart) {
		c := hexPart[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return bad(fmt.Sprintf("character %q at %d is not a lowercase hex digit", c, len(DigestPrefix)+i))
		}
	}
	return hexPart, nil
}

// ValidDigest reports whether s is a digest in canonical form.
func ValidDigest(s string) bool {
	_, err := ParseDigest(s)
	return err == nil
}

// DigestOf returns the digest of b.
func DigestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return DigestPrefix + hex.EncodeToString(sum[:])
}

// ShortDigest abbreviates a digest for logs and messages: the prefix and
// the first 12 hex digits. Strings that are not digests are returned as is.
func ShortDigest(d string) string {
	if len(d) == digestLen && strings.HasPrefix(d, DigestPrefix) {
		return d[:len(DigestPrefix)+12]
	}
	return d
}
