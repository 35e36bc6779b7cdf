package api

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckID(t *testing.T) {
	digest := "sha256:" + strings.Repeat("ab", 32)
	tests := []struct {
		kind Kind
		s    string
		ok   bool
	}{
		{KindJob, "0123456789abcdef", true},
		{KindJob, "0123456789abcdef-t12", true},
		{KindJob, "", false},
		{KindJob, "../etc", false},
		{KindJob, "a/b", false},
		{KindJob, "a b", false},
		{KindJob, "\xff", false},
		{KindJob, strings.Repeat("a", MaxIDLen), true},
		{KindJob, strings.Repeat("a", MaxIDLen+1), false},
		{KindWorker, "gpu-node.7_a", true},
		{KindWorker, "-w", false},
		{KindSweep, "s1", true},
		{KindServer, "c0", true},
		{KindModel, "unet-v2.1", true},
		{KindModel, "unet/v2", false},
		{KindDataset, "shapes", true},
		{KindDataset, "Shapes", false},
		{KindDataset, strings.Repeat("a", 10_000), false},
		{KindDatasetVersion, "abc123", true},
		{KindDatasetVersion, "ABC", false},
		{KindDatasetVersion, strings.Repeat("a", 65), false},
		{KindDigest, digest, true},
		{KindDigest, "md5:00", false},
		{KindRequestID, "5f0c2a9e-1b7d-4c3e-9a2b-0d1e2f3a4b5c", true},
		{KindRequestID, "r1:retry+2/x=", true},
		{KindRequestID, "my job", false},
		{KindRequestID, strings.Repeat("r", MaxRequestIDLen+1), false},
		{Kind("planet"), "earth", false},
	}
	for _, tt := range tests {
		err := CheckID(tt.kind, tt.s)
		if tt.ok != (err == nil) {
			t.Errorf("CheckID(%s, %q) = %v, want ok=%v", tt.kind, Truncate(tt.s, 40), err, tt.ok)
			continue
		}
		if err == nil {
			continue
		}
		var idErr *IDError
		if !errors.Is(err, ErrInvalid) || !errors.As(err, &idErr) || idErr.Kind != tt.kind {
			t.Errorf("CheckID(%s, %q) = %v: want an *IDError of that kind wrapping ErrInvalid", tt.kind, Truncate(tt.s, 40), err)
		}
		if len(err.Error()) > 300 {
			t.Errorf("CheckID(%s, %d bytes): a %d-byte message", tt.kind, len(tt.s), len(err.Error()))
		}
	}
}
