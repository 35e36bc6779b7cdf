package jobspec

import (
	"strings"
	"testing"
)

// TestRanksBatch: the global batch must split evenly across the ranks.
func TestRanksBatch(t *testing.T) {
	tests := []struct {
		batch, ranks int
		want         string
	}{
		{8, 1, ""}, {8, 2, ""}, {8, 4, ""}, {8, 8, ""}, {12, 3, ""},
		{10, 4, "hyperparameters.batch: 10 examples do not split across 4 ranks"},
		{4, 8, "hyperparameters.batch: 4 examples do not split across 8 ranks"},
	}
	for _, tt := range tests {
		s := Defaults()
		s.Name, s.Dataset = "j", "shapes@v1"
		s.Hyperparameters.Batch, s.Resources.Ranks = tt.batch, tt.ranks
		err := s.Validate()
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("batch %d ranks %d: %v", tt.batch, tt.ranks, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("batch %d ranks %d: err %v, want %q", tt.batch, tt.ranks, err, tt.want)
		}
	}
}
