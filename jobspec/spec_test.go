package jobspec

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestParseErrors feeds malformed specs and checks every error message
// exactly: file, line, field path and text.
func TestParseErrors(t *testing.T) {
	const known = "name, dataset, model, hyperparameters, resources, max_restarts, checkpoint_every, priority, max_time"
	tests := []struct {
		name string
		yaml string
		want []string // exact messages, in order
		// prefix, when set, is compared with the start of the whole error
		// instead (for messages that quote yaml.v3's own wording).
		prefix string
	}{
		{
			name: "lr not a number",
			yaml: "name: a\ndataset: shapes@v1\nhyperparameters:\n  lr: fast\n",
			want: []string{`job.yaml:4: hyperparameters.lr: "fast" is not a number`},
		},
		{
			name: "unknown top-level field",
			yaml: "name: a\ndataset: shapes@v1\nhyperparameter:\n  lr: 0.1\n",
			want: []string{"job.yaml:3: hyperparameter: unknown field (known: " + known + ")"},
		},
		{
			name: "unknown nested field in flow mapping",
			yaml: "name: a\ndataset: shapes@v1\nresources: {ranks: 1, gpu: 1}\n",
			want: []string{"job.yaml:3: resources.gpu: unknown field (known: ranks, gpus_per_rank, cpus_per_rank, spot)"},
		},
		{
			name: "ranks zero",
			yaml: "name: a\ndataset: shapes@v1\nresources:\n  ranks: 0\n",
			want: []string{"job.yaml:4: resources.ranks: must be in 1..1024, got 0"},
		},
		{
			name: "ranks not an integer",
			yaml: "name: a\ndataset: shapes@v1\nresources:\n  spot: true\n  ranks: 1.5\n",
			want: []string{"job.yaml:5: resources.ranks: 1.5 is not an integer"},
		},
		{
			name: "spot yes is a string in YAML 1.2",
			yaml: "name: a\ndataset: shapes@v1\nresources:\n  spot: yes\n",
			want: []string{`job.yaml:4: resources.spot: "yes" is not a boolean (true or false)`},
		},
		{
			name: "unknown optimizer",
			yaml: "name: a\ndataset: shapes@v1\nhyperparameters: {optimizer: adamw}\n",
			want: []string{`job.yaml:3: hyperparameters.optimizer: "adamw" is not one of adam, sgd`},
		},
		{
			name: "priority too high",
			yaml: "name: a\ndataset: shapes@v1\npriority: 150\n",
			want: []string{"job.yaml:3: priority: must be in 0..100, got 150"},
		},
		{
			name: "priority negative",
			yaml: "name: a\ndataset: shapes@v1\n\n\npriority: -1\n",
			want: []string{"job.yaml:5: priority: must be in 0..100, got -1"},
		},
		{
			name: "dataset ref syntax",
			yaml: "name: a\ndataset: Shapes@1\n",
			want: []string{`job.yaml:2: dataset: "Shapes@1" is not NAME[@VERSION] (NAME: a-z 0-9 . _ -; VERSION: latest, v<N> or an id prefix of 6+ hex digits)`},
		},
		{
			name: "dataset version v0",
			yaml: "name: a\ndataset: shapes@v0\n",
			want: []string{`job.yaml:2: dataset: "shapes@v0" is not NAME[@VERSION] (NAME: a-z 0-9 . _ -; VERSION: latest, v<N> or an id prefix of 6+ hex digits)`},
		},
		{
			name: "duration syntax",
			yaml: "name: a\ndataset: shapes@v1\nmax_time: ten minutes\n",
			want: []string{`job.yaml:3: max_time: "ten minutes" is not a duration (like 90s, 10m or 1h30m)`},
		},
		{
			name: "duration as a bare number",
			yaml: "name: a\ndataset: shapes@v1\nmax_time: 600\n",
			want: []string{`job.yaml:3: max_time: 600 is not a duration (like 90s, 10m or 1h30m)`},
		},
		{
			name: "duration too short",
			yaml: "name: a\ndataset: shapes@v1\nmax_time: 100ms\n",
			want: []string{`job.yaml:3: max_time: must be at least 1s (or omitted for no limit), got 100ms`},
		},
		{
			name: "required fields missing",
			yaml: "model: unet-s\n",
			want: []string{"job.yaml: name: required", "job.yaml: dataset: required (NAME or NAME@VERSION)"},
		},
		{
			name: "duplicate field",
			yaml: "name: a\ndataset: shapes@v1\npriority: 10\npriority: 20\n",
			want: []string{"job.yaml:4: priority: duplicate field (first set on line 3)"},
		},
		{
			name: "hyperparameters scalar",
			yaml: "name: a\ndataset: shapes@v1\nhyperparameters: 5\n",
			want: []string{"job.yaml:3: hyperparameters: 5 is not a mapping"},
		},
		{
			name: "resources list",
			yaml: "name: a\ndataset: shapes@v1\nresources:\n  - ranks: 1\n",
			want: []string{"job.yaml:3: resources: a list is not a mapping"},
		},
		{
			name: "name not a string",
			yaml: "name: 123\ndataset: shapes@v1\n",
			want: []string{`job.yaml:1: name: 123 is not a string (quote it: "123")`},
		},
		{
			name: "name is a mapping",
			yaml: "name: {a: 1}\ndataset: shapes@v1\n",
			want: []string{`job.yaml:1: name: a mapping is not a string`},
		},
		{
			name: "negative lr",
			yaml: "name: a\ndataset: shapes@v1\nhyperparameters:\n  epochs: 2\n  lr: -0.1\n",
			want: []string{"job.yaml:5: hyperparameters.lr: must be a positive number, got -0.1"},
		},
		{
			name: "lr NaN",
			yaml: "name: a\ndataset: shapes@v1\nhyperparameters: {lr: .nan}\n",
			want: []string{"job.yaml:3: hyperparameters.lr: must be a positive number, got NaN"},
		},
		{
			name: "adam momentum zero",
			yaml: "name: a\ndataset: shapes@v1\nhyperparameters:\n  momentum: 0\n",
			want: []string{"job.yaml:4: hyperparameters.momentum: must be in (0, 1) with optimizer adam (it is Adam's β1), got 0"},
		},
		{
			name: "sgd momentum one",
			yaml: "name: a\ndataset: shapes@v1\nhyperparameters:\n  optimizer: sgd\n  momentum: 1\n",
			want: []string{"job.yaml:5: hyperparameters.momentum: must be in [0, 1) with optimizer sgd, got 1"},
		},
		{
			name: "negative seed",
			yaml: "name: a\ndataset: shapes@v1\nhyperparameters:\n  seed: -1\n",
			want: []string{"job.yaml:4: hyperparameters.seed: must be >= 0, got -1"},
		},
		{
			name: "epochs zero and batch too large",
			yaml: "name: a\ndataset: shapes@v1\nhyperparameters:\n  epochs: 0\n  batch: 5000\n",
			want: []string{
				"job.yaml:4: hyperparameters.epochs: must be in 1..100000, got 0",
				"job.yaml:5: hyperparameters.batch: must be in 1..4096, got 5000",
			},
		},
		{
			name: "unknown model",
			yaml: "name: a\ndataset: shapes@v1\nmodel: resnet\n",
			want: []string{`job.yaml:3: model: "resnet" is not a known model (known: unet-s)`},
		},
		{
			name: "resources out of range",
			yaml: "name: a\ndataset: shapes@v1\nresources:\n  cpus_per_rank: 0\n  gpus_per_rank: -2\n",
			want: []string{
				"job.yaml:4: resources.cpus_per_rank: must be in 1..1024, got 0",
				"job.yaml:5: resources.gpus_per_rank: must be in 0..64, got -2",
			},
		},
		{
			name: "negative weight decay and checkpoint period",
			yaml: "name: a\ndataset: shapes@v1\ncheckpoint_every: -5\nhyperparameters: {weight_decay: -1}\n",
			want: []string{
				"job.yaml:3: checkpoint_every: must be in 0..1000000000 steps (0: only at epoch ends), got -5",
				"job.yaml:4: hyperparameters.weight_decay: must be a number >= 0, got -1",
			},
		},
		{
			name: "max restarts too many",
			yaml: "name: a\ndataset: shapes@v1\nmax_restarts: 1000\n",
			want: []string{"job.yaml:3: max_restarts: must be in 0..100, got 1000"},
		},
		{
			name: "integer overflow",
			yaml: "name: a\ndataset: shapes@v1\npriority: 99999999999999999999999\n",
			want: []string{"job.yaml:3: priority: 99999999999999999999999 is not an integer"},
		},
		{
			name: "all errors collected in line order",
			yaml: "dataset: 'shapes@'\nhyperparameters:\n  lr: fast\n  batch: 0\n  colour: red\nresources: {ranks: 0, spot: maybe}\npriority: high\n",
			want: []string{
				"job.yaml: name: required",
				`job.yaml:1: dataset: "shapes@" is not NAME[@VERSION] (NAME: a-z 0-9 . _ -; VERSION: latest, v<N> or an id prefix of 6+ hex digits)`,
				`job.yaml:3: hyperparameters.lr: "fast" is not a number`,
				"job.yaml:4: hyperparameters.batch: must be in 1..4096, got 0",
				"job.yaml:5: hyperparameters.colour: unknown field (known: epochs, batch, lr, optimizer, momentum, weight_decay, seed, flip)",
				`job.yaml:6: resources.spot: "maybe" is not a boolean (true or false)`,
				"job.yaml:6: resources.ranks: must be in 1..1024, got 0",
				`job.yaml:7: priority: "high" is not an integer`,
			},
		},
		{
			name: "top level is a list",
			yaml: "- name: a\n",
			want: []string{"job.yaml:1: the job spec must be a mapping of fields (name: …, dataset: …), got a list"},
		},
		{
			name: "empty file",
			yaml: "# nothing here\n",
			want: []string{"job.yaml: empty job spec (want at least name and dataset)"},
		},
		{
			name: "two documents",
			yaml: "name: a\ndataset: shapes@v1\n---\nname: b\n",
			want: []string{"job.yaml:4: a second YAML document; a job spec is one document"},
		},
		{
			name:   "syntax error",
			yaml:   "name: a\ndataset: [shapes@v1\npriority: 5\n",
			prefix: "job.yaml:",
			want:   []string{"YAML syntax: "},
		},
		{
			name: "alias bomb",
			yaml: "name: a\ndataset: shapes@v1\nhyperparameters: " + bomb(9, 10) + "\n",
			want: []string{"job.yaml:3: hyperparameters: aliases expand to more than 100000 nodes"},
		},
		{
			name: "alias cycle",
			yaml: "name: a\ndataset: shapes@v1\nresources: &r {ranks: *r}\n",
			want: []string{"job.yaml:3: resources: alias *r refers to a value that contains it"},
		},
		{
			name: "merge key",
			yaml: "name: a\ndataset: shapes@v1\nresources:\n  <<: {ranks: 2}\n",
			want: []string{"job.yaml:4: resources: merge keys (<<) are not supported; write the fields out"},
		},
		{
			name: "alias as a key",
			yaml: "name: &k a\ndataset: shapes@v1\n*k : 1\n",
			want: []string{"job.yaml:3: an alias (*k) is not a field name"},
		},
		{
			name: "invalid UTF-8",
			yaml: "name: a\ndataset: shapes@v1\nmodel: \"\xfe\"\n",
			want: []string{"job.yaml:3: YAML syntax: invalid UTF-8 (byte 0xfe)"},
		},
		{
			name: "control character",
			yaml: "name: a\n\x07\n",
			want: []string{"job.yaml:2: YAML syntax: control character U+0007 is not allowed"},
		},
		{
			name: "tab indentation",
			yaml: "name: a\nhyperparameters:\n\tlr: 0.1\n",
			want: []string{"job.yaml:3: YAML syntax: found character that cannot start any token"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Parse([]byte(tt.yaml), "job.yaml")
			if err == nil {
				t.Fatalf("Parse succeeded: %+v", s)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
			if !reflect.DeepEqual(s, Spec{}) {
				t.Errorf("Parse returned a spec with its error: %+v", s)
			}
			if tt.prefix != "" {
				msg := err.Error()
				if !strings.HasPrefix(msg, tt.prefix) || !strings.Contains(msg, tt.want[0]) || strings.Contains(msg, "\n") {
					t.Errorf("error %q: want one line starting %q containing %q", msg, tt.prefix, tt.want[0])
				}
				return
			}
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("error %T is not Errors", err)
			}
			got := make([]string, len(errs))
			for i, e := range errs {
				got[i] = e.Error()
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("errors:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(tt.want, "\n  "))
			}
			if err.Error() != strings.Join(tt.want, "\n") {
				t.Errorf("Error() = %q", err.Error())
			}
		})
	}
}

// TestParseDefaults checks that omitted and null fields take the defaults
// and explicit zeros are kept.
func TestParseDefaults(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want func(*Spec)
	}{
		{
			name: "minimal",
			yaml: "name: a\ndataset: shapes\n",
			want: func(s *Spec) {},
		},
		{
			name: "nulls are omitted fields",
			yaml: "name: a\ndataset: shapes\nhyperparameters:\nresources: {ranks: ~}\nmax_time:\n",
			want: func(s *Spec) {},
		},
		{
			name: "explicit zeros stay",
			yaml: "name: a\ndataset: shapes\npriority: 0\nmax_restarts: 0\ncheckpoint_every: 0\nhyperparameters: {optimizer: sgd, momentum: 0, seed: 0}\n",
			want: func(s *Spec) {
				s.Priority, s.MaxRestarts, s.CheckpointEvery = 0, 0, 0
				s.Hyperparameters.Optimizer, s.Hyperparameters.Momentum, s.Hyperparameters.Seed = OptimizerSGD, 0, 0
			},
		},
		{
			name: "anchors and aliases",
			yaml: "name: shapes-job\ndataset: shapes@v2\nhyperparameters: {epochs: &three 3, batch: *three, lr: 1e-2, flip: true}\n",
			want: func(s *Spec) {
				s.Name, s.Dataset = "shapes-job", "shapes@v2"
				s.Hyperparameters.Epochs, s.Hyperparameters.Batch = 3, 3
				s.Hyperparameters.LR, s.Hyperparameters.Flip = 0.01, true
			},
		},
		{
			name: "integer lr and hex seed",
			yaml: "name: a\ndataset: shapes@0123abcd\nhyperparameters: {lr: 1, seed: 0x10}\nmax_time: 1h30m\n",
			want: func(s *Spec) {
				s.Dataset = "shapes@0123abcd"
				s.Hyperparameters.LR, s.Hyperparameters.Seed = 1, 16
				s.MaxTime = Duration(90 * time.Minute)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse([]byte(tt.yaml), "job.yaml")
			if err != nil {
				t.Fatal(err)
			}
			want := Defaults()
			want.Name, want.Dataset = "a", "shapes"
			tt.want(&want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got  %+v\nwant %+v", got, want)
			}
		})
	}
}

// TestExampleFile parses deploy/examples/job.yaml.
func TestExampleFile(t *testing.T) {
	s, err := ParseFile(filepath.Join("..", "deploy", "examples", "job.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	want := Spec{
		Name: "unet-shapes", Dataset: "shapes@v1", Model: ModelUNetS,
		Hyperparameters: Hyperparameters{Epochs: 5, Batch: 8, LR: 0.001, Optimizer: OptimizerAdam, Momentum: 0.9, Seed: 1},
		Resources:       Resources{Ranks: 1, CPUsPerRank: 2, Spot: true},
		MaxRestarts:     3, CheckpointEvery: 50, Priority: 50, MaxTime: Duration(10 * time.Minute),
	}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("got  %+v\nwant %+v", s, want)
	}
}

func TestParseFileMissing(t *testing.T) {
	_, err := ParseFile(filepath.Join(t.TempDir(), "nope.yaml"))
	if err == nil || !strings.Contains(err.Error(), "nope.yaml") {
		t.Fatalf("err = %v, want one naming the file", err)
	}
}

// TestRoundTrip encodes specs as YAML and JSON and decodes them back.
func TestRoundTrip(t *testing.T) {
	example, err := ParseFile(filepath.Join("..", "deploy", "examples", "job.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	zeros := Defaults()
	zeros.Name, zeros.Dataset = "zeros: \"quoted\" #name", "shapes@latest"
	zeros.Priority, zeros.MaxRestarts, zeros.CheckpointEvery = 0, 0, 0
	zeros.Hyperparameters = Hyperparameters{Epochs: 1, Batch: 1, LR: 1e-7, Optimizer: OptimizerSGD, Seed: 1<<64 - 1, WeightDecay: 0.25}
	for _, s := range []Spec{example, zeros} {
		t.Run(s.Name, func(t *testing.T) {
			y, err := s.YAML()
			if err != nil {
				t.Fatal(err)
			}
			back, err := Parse(y, "roundtrip.yaml")
			if err != nil {
				t.Fatalf("%v\n%s", err, y)
			}
			if !reflect.DeepEqual(back, s) {
				t.Errorf("YAML round trip:\n got  %+v\n want %+v\n%s", back, s, y)
			}
			j, err := json.Marshal(s)
			if err != nil {
				t.Fatal(err)
			}
			var fromJSON Spec
			if err := json.Unmarshal(j, &fromJSON); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(fromJSON, s) {
				t.Errorf("JSON round trip:\n got  %+v\n want %+v\n%s", fromJSON, s, j)
			}
			if err := fromJSON.Validate(); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestJSON checks defaults, strictness and Validate for specs from the API.
func TestJSON(t *testing.T) {
	tests := []struct {
		name    string
		json    string
		want    func(*Spec)
		decode  string // expected UnmarshalJSON error substring
		invalid []string
	}{
		{
			name: "omitted fields take defaults",
			json: `{"name":"a","dataset":"shapes","hyperparameters":{"lr":0.01}}`,
			want: func(s *Spec) { s.Hyperparameters.LR = 0.01 },
		},
		{
			name: "explicit zeros stay",
			json: `{"name":"a","dataset":"shapes","priority":0,"resources":{"spot":false,"ranks":2}}`,
			want: func(s *Spec) { s.Priority = 0; s.Resources.Ranks = 2 },
		},
		{
			name: "max_time",
			json: `{"name":"a","dataset":"shapes","max_time":"2m30s"}`,
			want: func(s *Spec) { s.MaxTime = Duration(150 * time.Second) },
		},
		{
			name:   "unknown field",
			json:   `{"name":"a","dataset":"shapes","prio":3}`,
			decode: `unknown field "prio"`,
		},
		{
			name:   "bad duration",
			json:   `{"name":"a","dataset":"shapes","max_time":"soon"}`,
			decode: `"soon" is not a duration`,
		},
		{
			name:   "wrong type",
			json:   `{"name":"a","dataset":"shapes","priority":"high"}`,
			decode: "priority",
		},
		{
			name: "invalid values",
			json: `{"name":"","dataset":"shapes","hyperparameters":{"lr":-1,"batch":0},"resources":{"ranks":0}}`,
			invalid: []string{
				"name: required",
				"hyperparameters.batch: must be in 1..4096, got 0",
				"hyperparameters.lr: must be a positive number, got -1",
				"resources.ranks: must be in 1..1024, got 0",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s Spec
			err := json.Unmarshal([]byte(tt.json), &s)
			if tt.decode != "" {
				if err == nil || !strings.Contains(err.Error(), tt.decode) {
					t.Fatalf("decode error %v, want one containing %q", err, tt.decode)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			verr := s.Validate()
			if tt.invalid != nil {
				if !errors.Is(verr, ErrInvalid) {
					t.Fatalf("Validate = %v, want ErrInvalid", verr)
				}
				if got := verr.Error(); got != strings.Join(tt.invalid, "\n") {
					t.Errorf("Validate:\n%s\nwant:\n%s", got, strings.Join(tt.invalid, "\n"))
				}
				var fe *FieldError
				if !errors.As(verr, &fe) || fe.Field != "name" || fe.Line != 0 || fe.File != "" {
					t.Errorf("errors.As: %+v", fe)
				}
				return
			}
			if verr != nil {
				t.Fatal(verr)
			}
			want := Defaults()
			want.Name, want.Dataset = "a", "shapes"
			tt.want(&want)
			if !reflect.DeepEqual(s, want) {
				t.Errorf("got  %+v\nwant %+v", s, want)
			}
		})
	}
}

func TestWithDefaults(t *testing.T) {
	got := Spec{Name: "a", Dataset: "shapes", Priority: 7}.WithDefaults()
	want := Defaults()
	want.Name, want.Dataset = "a", "shapes"
	// Fields whose zero is a setting stay as given.
	want.Priority, want.MaxRestarts, want.CheckpointEvery = 7, 0, 0
	want.Hyperparameters.Momentum, want.Hyperparameters.Seed = 0, 0
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
	d := Defaults()
	d.Name, d.Dataset = "a", "shapes"
	if err := d.Validate(); err != nil {
		t.Errorf("defaults do not validate: %v", err)
	}
	if !reflect.DeepEqual(d.WithDefaults(), d) {
		t.Error("WithDefaults changed a complete spec")
	}
}

func ExampleParse() {
	_, err := Parse([]byte(`name: unet-shapes
dataset: shapes@v1
hyperparameters:
  epochs: 5
  lr: fast
resources: {ranks: 0}
`), "job.yaml")
	fmt.Println(err)
	// Output:
	// job.yaml:5: hyperparameters.lr: "fast" is not a number
	// job.yaml:6: resources.ranks: must be in 1..1024, got 0
}
