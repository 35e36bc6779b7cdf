package jobspec

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestLimits feeds specs whose sizes and counts are far past the limits,
// as YAML and as JSON, and checks that each is rejected with an error that
// names the field, its limit and the value. A limit that were checked after
// the work it bounds would hang or exhaust memory here, and the test
// binary's timeout would fail it.
func TestLimits(t *testing.T) {
	long := strings.Repeat("a", 10_000)
	tests := []struct {
		name  string
		field string // a top-level or dotted field
		value any    // its value
		want  string // the error, without file and line
	}{
		{"epochs", "hyperparameters.epochs", 1_000_000_000_000, "hyperparameters.epochs: must be in 1..100000, got 1000000000000"},
		{"epochs one past", "hyperparameters.epochs", MaxEpochs + 1, "hyperparameters.epochs: must be in 1..100000, got 100001"},
		{"batch", "hyperparameters.batch", 1 << 40, "hyperparameters.batch: must be in 1..4096, got 1099511627776"},
		{"ranks", "resources.ranks", 1 << 40, "resources.ranks: must be in 1..1024, got 1099511627776"},
		{"gpus", "resources.gpus_per_rank", 1 << 40, "resources.gpus_per_rank: must be in 0..64, got 1099511627776"},
		{"cpus", "resources.cpus_per_rank", 1 << 40, "resources.cpus_per_rank: must be in 1..1024, got 1099511627776"},
		{"restarts", "max_restarts", 1 << 40, "max_restarts: must be in 0..100, got 1099511627776"},
		{"checkpoint every", "checkpoint_every", 1 << 40, "checkpoint_every: must be in 0..1000000000 steps (0: only at epoch ends), got 1099511627776"},
		{"name", "name", long, "name: is 10000 bytes, the limit is 128"},
		{"dataset", "dataset", long, `dataset: "` + long[:64] + `…" (10000 bytes) is not NAME[@VERSION] (NAME: a-z 0-9 . _ -; VERSION: latest, v<N> or an id prefix of 6+ hex digits)`},
		{"optimizer", "hyperparameters.optimizer", long, `hyperparameters.optimizer: "` + long[:64] + `…" (10000 bytes) is not one of adam, sgd`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := map[string]any{"name": "a", "dataset": "shapes@v1"}
			if top, sub, ok := strings.Cut(tt.field, "."); ok {
				doc[top] = map[string]any{sub: tt.value}
			} else {
				doc[tt.field] = tt.value
			}
			// JSON is YAML too.
			data, err := json.Marshal(doc)
			if err != nil {
				t.Fatal(err)
			}
			_, err = Parse(data, "job.yaml")
			if err == nil || err.Error() != "job.yaml:1: "+tt.want {
				t.Errorf("Parse: %v\nwant job.yaml:1: %s", err, tt.want)
			}
			var s Spec
			if err := json.Unmarshal(data, &s); err != nil {
				t.Fatal(err)
			}
			err = s.Validate()
			if err == nil || err.Error() != tt.want {
				t.Errorf("Validate: %v\nwant %s", err, tt.want)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error does not wrap ErrInvalid")
			}
		})
	}
}

// TestParseSizeLimit checks that a spec over MaxSpecBytes is refused
// before it is decoded, from bytes and from a file.
func TestParseSizeLimit(t *testing.T) {
	data := []byte("name: a\ndataset: shapes@v1\n# " + strings.Repeat("x", MaxSpecBytes) + "\n")
	want := "job.yaml: is larger than " + strconv.Itoa(MaxSpecBytes) + " bytes"
	if _, err := Parse(data, "job.yaml"); err == nil || err.Error() != want {
		t.Errorf("Parse: %v, want %s", err, want)
	}
	// A sparse file of 64 GiB: ParseFile must stop reading past the limit.
	path := filepath.Join(t.TempDir(), "job.yaml")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(64 << 30); err != nil {
		t.Skipf("no sparse file: %v", err)
	}
	f.Close()
	want = path + ": is larger than " + strconv.Itoa(MaxSpecBytes) + " bytes"
	if _, err := ParseFile(path); err == nil || err.Error() != want {
		t.Errorf("ParseFile: %v, want %s", err, want)
	}
}
