package jobspec

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// FuzzParseJobSpec feeds arbitrary bytes to Parse (YAML) and to the JSON
// decoder the API uses. Neither may panic, and every error must wrap
// ErrInvalid. A spec that Parse accepts must pass Validate and survive
// re-encoding as YAML and as JSON unchanged; a spec decoded from JSON must
// validate without panicking and, when valid, survive the same round
// trips. The seeds run with go test; `make fuzz` explores.
func FuzzParseJobSpec(f *testing.F) {
	seeds := []string{
		"name: a\ndataset: shapes@v1\n",
		"name: a\ndataset: shapes@v1\nhyperparameters: {epochs: 100000, batch: 4096, lr: 1e-300, optimizer: sgd, momentum: 0, weight_decay: -0.0, seed: 18446744073709551615, flip: true}\n",
		"name: a\ndataset: shapes@0123456789abcdef\nresources: {ranks: 1024, gpus_per_rank: 64, cpus_per_rank: 1024, spot: true}\nmax_time: 2562047h47m16.854775807s\ncheckpoint_every: 1000000000\n",
		"name: a\ndataset: shapes@v1\nhyperparameters: {epochs: 1000000000000}\nresources: {ranks: 99999999999}\n",
		"b: &b [1, *b]\nname: *b\n",
		"name: 'x\u2028y'\ndataset: shapes\n",
		"name: a\ndataset: shapes\n---\nname: b\n",
		"- 1\n- 2\n",
		"{}",
		`{"name": "a", "dataset": "shapes@latest", "max_time": "10m", "priority": 0}`,
		`{"name": "a", "dataset": "s", "hyperparameters": {"epochs": 1e400}}`,
		"name: &a [*a]\n",
		"name: a\ndataset: shapes\nhyperparameters: {<<: {lr: 1}}\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	if data, err := os.ReadFile(filepath.Join("..", "deploy", "examples", "job.yaml")); err == nil {
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if s, err := Parse(data, "f.yaml"); err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Parse error %v does not wrap ErrInvalid", err)
			}
		} else {
			if err := s.Validate(); err != nil {
				t.Fatalf("Parse accepted a spec that Validate rejects: %v", err)
			}
			roundTrip(t, s)
		}

		var s Spec
		if err := json.Unmarshal(data, &s); err != nil {
			return
		}
		if s.Validate() == nil {
			roundTrip(t, s)
		}
	})
}

// roundTrip checks that the valid spec s comes back unchanged from YAML
// (Spec.YAML, then Parse) and from JSON (json.Marshal, then Unmarshal).
func roundTrip(t *testing.T, s Spec) {
	t.Helper()
	y, err := s.YAML()
	if err != nil {
		t.Fatalf("YAML of %+v: %v", s, err)
	}
	back, err := Parse(y, "roundtrip.yaml")
	if err != nil {
		t.Fatalf("YAML round trip of %+v: %v\n%s", s, err, y)
	}
	if !reflect.DeepEqual(back, s) {
		t.Fatalf("YAML round trip:\n got %+v\nwant %+v\n%s", back, s, y)
	}
	j, err := json.Marshal(s)
	if err != nil {
		t.Fatalf("JSON of %+v: %v", s, err)
	}
	var fromJSON Spec
	if err := json.Unmarshal(j, &fromJSON); err != nil {
		t.Fatalf("JSON round trip of %+v: %v\n%s", s, err, j)
	}
	if !reflect.DeepEqual(fromJSON, s) {
		t.Fatalf("JSON round trip:\n got %+v\nwant %+v\n%s", fromJSON, s, j)
	}
}
