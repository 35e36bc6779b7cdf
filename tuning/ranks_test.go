package tuning

import (
	"strings"
	"testing"
)

// TestRanksBatch: with a data-parallel base job every batch a sweep can
// try must divide across the ranks.
func TestRanksBatch(t *testing.T) {
	job := "job: {name: t, dataset: shapes@v1, hyperparameters: {batch: 8}, resources: {ranks: 4}}\n"
	tail := "objective: {metric: val_mean_iou, mode: max}\n"
	tests := []struct {
		name, space, want string
	}{
		{"choice of multiples", "  batch: {type: choice, values: [4, 8, 16]}\n", ""},
		{"choice with a misfit", "  batch: {type: choice, values: [4, 6]}\n", "search_space.batch: value 6 makes an invalid job: hyperparameters.batch: 6 examples do not split across 4 ranks"},
		{"int range", "  batch: {type: int, low: 4, high: 16}\n", "search_space.batch: with resources.ranks 4 the batch must divide by 4"},
		{"other parameter", "  lr: {type: loguniform, low: 0.0001, high: 0.01}\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte("name: s\n"+job+"search_space:\n"+tt.space+tail), "sweep.yaml")
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("err %v, want %q", err, tt.want)
			}
		})
	}
}
