package coordinator

import (
	"strings"
	"testing"
)

// TestConfigUploadLimits checks the size limits' validation: both
// positive, and blobs at least as large as dataset files (dataset blobs
// travel between the coordinators through the blob API).
func TestConfigUploadLimits(t *testing.T) {
	for _, tc := range []struct {
		dataset, blob int64
		ok            bool
	}{
		{DefaultMaxDatasetBytes, DefaultMaxBlobBytes, true},
		{1 << 20, 1 << 20, true},
		{0, 1 << 20, false},
		{-1, 1 << 20, false},
		{2 << 20, 1 << 20, false},
	} {
		cfg := testConfig("c1", t.TempDir())
		cfg.MaxDatasetBytes, cfg.MaxBlobBytes = tc.dataset, tc.blob
		err := cfg.validate()
		if tc.ok != (err == nil) {
			t.Errorf("dataset %d, blob %d: %v, want ok=%v", tc.dataset, tc.blob, err, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "max dataset bytes") {
			t.Errorf("dataset %d, blob %d: %v does not name the field", tc.dataset, tc.blob, err)
		}
	}
}
