package tuning

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/trainctl/trainctl/jobspec"
)

const baseJob = "job:\n  name: t\n  dataset: shapes@v1\n"
const minimal = "name: s\n" + baseJob + "search_space:\n  lr: {type: loguniform, low: 0.0001, high: 0.1}\nobjective: {metric: val_loss, mode: min}\n"

func TestParseExample(t *testing.T) {
	path := filepath.Join("..", "deploy", "examples", "sweep.yaml")
	s, err := ParseFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "unet-shapes-lr" || s.Job.Dataset != "shapes@v1" || s.Job.Resources.CPUsPerRank != 2 ||
		len(s.SearchSpace.Params) != 5 || s.Searcher.Name != SearcherTPE || s.Searcher.TPE.NStartup != 8 ||
		s.Scheduler.Name != SchedulerASHA || s.MaxTrials != 40 || s.MaxConcurrent != 4 || s.Budget.Max != 9 || s.Seed != 7 {
		t.Fatalf("parsed %+v", s)
	}
	if got := strings.Join(s.SearchSpace.Names(), ","); got != "batch,lr,momentum,optimizer,weight_decay" {
		t.Fatalf("names %s", got)
	}
	for _, name := range []string{SearcherGrid, SearcherRandom, SearcherTPE} {
		s.Searcher.Name = name
		srch, err := s.NewSearcher()
		if err != nil {
			t.Fatal(name, err)
		}
		p, err := srch.Suggest(0, nil)
		if err != nil {
			t.Fatal(name, err)
		}
		job, err := s.TrialJob(p)
		if err != nil {
			t.Fatal(name, err)
		}
		if job.Hyperparameters.Epochs != 9 || job.Hyperparameters.LR != p["lr"].Float() || job.Hyperparameters.Optimizer != p["optimizer"].Str() {
			t.Fatalf("%s: trial job %+v for %s", name, job.Hyperparameters, p)
		}
	}
}

func TestParseDefaults(t *testing.T) {
	s, err := Parse([]byte(minimal), "sweep.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if s.Searcher.Name != SearcherRandom || s.Scheduler.Name != SchedulerFIFO || s.MaxTrials != 20 ||
		s.MaxConcurrent != 1 || s.Budget != (Budget{Unit: UnitEpochs, Min: 1, Max: 10}) || s.Seed != 1 {
		t.Fatalf("defaults: %+v", s)
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestParseErrors(t *testing.T) {
	const topKnown = "name, job, search_space, objective, searcher, scheduler, max_trials, max_concurrent, budget, seed"
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{"name not a model name", "name: my sweep\n" + strings.TrimPrefix(minimal, "name: s\n"),
			[]string{`sweep.yaml:1: name: "my sweep" has ' ' at byte 2; use letters, digits, '.', '_' and '-' (a finished sweep registers its best checkpoint as a model of this name)`}},
		{"unknown top-level field", minimal + "max_trial: 3\n",
			[]string{"sweep.yaml:8: max_trial: unknown field (known: " + topKnown + ")"}},
		{"job field wrong type, line mapped", "name: s\n" + baseJob + "  hyperparameters:\n    lr: fast\nsearch_space: {lr: {type: uniform, low: 0.1, high: 0.2}}\nobjective: {metric: m, mode: max}\n",
			[]string{`sweep.yaml:6: job.hyperparameters.lr: "fast" is not a number`}},
		{"job unknown field in flow mapping", "name: s\n" + baseJob + "  resources: {ranks: 1, gpu: 1}\nsearch_space: {lr: {type: uniform, low: 0.1, high: 0.2}}\nobjective: {metric: m, mode: max}\n",
			[]string{"sweep.yaml:5: job.resources.gpu: unknown field (known: ranks, gpus_per_rank, cpus_per_rank, spot)"}},
		{"job missing dataset", "name: s\njob:\n  name: t\nsearch_space: {lr: {type: uniform, low: 0.1, high: 0.2}}\nobjective: {metric: m, mode: max}\n",
			[]string{"sweep.yaml:2: job.dataset: required (NAME or NAME@VERSION)"}},
		{"job duplicate field", "name: s\n" + baseJob + "  name: u\nsearch_space: {lr: {type: uniform, low: 0.1, high: 0.2}}\nobjective: {metric: m, mode: max}\n",
			[]string{"sweep.yaml:5: job.name: duplicate field (first set on line 3)"}},
		{"job missing", "name: s\nsearch_space: {lr: {type: uniform, low: 0.1, high: 0.2}}\nobjective: {metric: m, mode: max}\n",
			[]string{"sweep.yaml: job: required (a job spec: name, dataset, hyperparameters, …)"}},
		{"all problems collected", "name: \"\"\n" + baseJob +
			"search_space:\n  lr: {type: loguniform, low: 0, high: 0.1}\n  batch: {type: uniform, low: 1, high: 8}\n  dropout: {type: uniform, low: 0, high: 1}\n  momentum: {type: gaussian}\n" +
			"objective: {metric: m, mode: maximize}\nsearcher: {name: bayes}\nscheduler: {name: asha, reduction_factor: 1, min_trials: 2}\nmax_trials: 0\nbudget: {unit: hours, min: 0}\nseed: -1\n",
			[]string{
				`sweep.yaml:1: name: required`,
				`sweep.yaml:6: search_space.lr: loguniform needs low > 0, got 0`,
				`sweep.yaml:7: search_space.batch: batch is an integer hyperparameter (use type int or a choice of integers), got float 1`,
				`sweep.yaml:8: search_space.dropout: not a hyperparameter (known: batch, epochs, flip, lr, momentum, optimizer, seed, weight_decay)`,
				`sweep.yaml:9: search_space.momentum: type "gaussian" is not one of uniform, loguniform, int, choice`,
				`sweep.yaml:10: objective.mode: "maximize" is not min or max`,
				`sweep.yaml:11: searcher.name: "bayes" is not one of grid, random, tpe`,
				`sweep.yaml:12: scheduler.min_trials: applies to scheduler median only`,
				`sweep.yaml:12: scheduler.reduction_factor: must be in 2..100, got 1`,
				`sweep.yaml:13: max_trials: must be in 1..100000, got 0`,
				`sweep.yaml:14: budget.unit: "hours" is not epochs or steps`,
				`sweep.yaml:14: budget.min: must be in 1..1000000000, got 0`,
				`sweep.yaml:15: seed: must be >= 0, got -1`,
			}},
		{"value out of job range", "name: s\n" + baseJob + "search_space:\n  momentum: {type: uniform, low: 0, high: 0.9}\nobjective: {metric: m, mode: min}\n",
			[]string{`sweep.yaml:6: search_space.momentum: value 0 makes an invalid job: hyperparameters.momentum: must be in (0, 1) with optimizer adam (it is Adam's β1), got 0`}},
		{"choice wrong kinds and types", "name: s\n" + baseJob + "search_space:\n  optimizer: {type: choice, values: [adam, 1]}\n  flip: {type: choice, values: [true, false], low: \"x\"}\nobjective: {metric: m, mode: min}\n",
			[]string{
				`sweep.yaml:6: search_space.optimizer: values must be all numbers, all strings or all booleans (value 2 is int, value 1 is string)`,
				`sweep.yaml:7: search_space.flip.low: "x" is not a number`,
			}},
		{"epochs tuned with epoch budget; grid without points", "name: s\n" + baseJob + "search_space:\n  epochs: {type: int, low: 1, high: 5}\n  lr: {type: uniform, low: 0.1, high: 0.2}\nobjective: {metric: m, mode: min}\nsearcher: {name: grid, gamma: 0.5}\n",
			[]string{
				`sweep.yaml:6: search_space.epochs: epochs is set by budget.max when budget.unit is epochs; tune it with budget and a scheduler instead`,
				`sweep.yaml:7: search_space.lr: grid search needs grid_points (how many values to take from low..high)`,
				`sweep.yaml:9: searcher.gamma: applies to searcher tpe only`,
			}},
		{"grid too large", "name: s\n" + baseJob + "search_space:\n  seed: {type: int, low: 0, high: 2000000}\nobjective: {metric: m, mode: min}\nsearcher: {name: grid}\n",
			[]string{`sweep.yaml:6: search_space.seed: 0..2000000 has more than 10000 integers for a grid; set grid_points`}},
		{"tpe option invalid", minimal + "searcher: {name: tpe, gamma: 1.5}\n",
			[]string{`sweep.yaml:8: searcher.gamma: must be in (0, 1), got 1.5`}},
		{"steps need max", minimal + "budget: {unit: steps}\n",
			[]string{`sweep.yaml:8: budget.max: required with unit steps`}},
		{"not a mapping", "- a\n", []string{`sweep.yaml:1: the sweep spec must be a mapping of fields (name: …, job: …), got a list`}},
		{"empty", "", []string{`sweep.yaml: empty sweep spec`}},
		{"two documents", minimal + "---\nname: x\n", []string{`sweep.yaml:9: a second YAML document; a sweep spec is one document`}},
		{"alias bomb in job", "name: s\njob: {name: t, dataset: shapes@v1, model: " + bomb(9, 10) + "}\nsearch_space: {lr: {type: uniform, low: 0.1, high: 0.2}}\nobjective: {metric: m, mode: max}\n",
			[]string{`sweep.yaml:2: job: aliases expand to more than 100000 nodes`}},
		{"alias bomb in job, block style", "name: s\n" + baseJob + "  hyperparameters:\n    lr: " + bomb(9, 10) + "\nsearch_space: {lr: {type: uniform, low: 0.1, high: 0.2}}\nobjective: {metric: m, mode: max}\n",
			[]string{`sweep.yaml:2: job: aliases expand to more than 100000 nodes`}},
		{"alias bomb in budget", minimal + "searcher: {name: tpe}\nmax_trials: 5\nbudget: " + bomb(9, 10) + "\n",
			[]string{`sweep.yaml:10: budget: aliases expand to more than 100000 nodes`}},
		{"many aliases of one large choice", "name: s\n" + baseJob + "search_space:\n  lr: &c {type: choice, values: [" + strings.Repeat("0.1, ", 1000) + "0.2]}\n" +
			func() string {
				var b strings.Builder
				for i := range 200 {
					fmt.Fprintf(&b, "  p%d: *c\n", i)
				}
				return b.String()
			}() + "objective: {metric: m, mode: max}\n",
			[]string{`sweep.yaml:5: search_space: aliases expand to more than 100000 nodes`}},
		{"alias cycle in job", "name: s\njob: &j {name: t, dataset: shapes@v1, model: [*j]}\nsearch_space: {lr: {type: uniform, low: 0.1, high: 0.2}}\nobjective: {metric: m, mode: max}\n",
			[]string{`sweep.yaml:2: job: alias *j refers to a value that contains it`}},
		{"scheduler name from an alias", "name: &n asha\n" + strings.TrimPrefix(minimal, "name: s\n") + "scheduler: {name: *n, reduction_factor: 1}\n",
			[]string{`sweep.yaml:8: scheduler.reduction_factor: must be in 2..100, got 1`}},
		{"searcher name from an alias", "name: s\n" + baseJob + "search_space:\n  lr: {type: loguniform, low: 0.0001, high: 0.1}\nobjective: {metric: &t tpe, mode: min}\nsearcher: {name: *t, gamma: 1.5}\n",
			[]string{`sweep.yaml:8: searcher.gamma: must be in (0, 1), got 1.5`}},
		{"merge key in job", "name: s\njob:\n  <<: {name: t, dataset: shapes@v1}\nsearch_space: {lr: {type: uniform, low: 0.1, high: 0.2}}\nobjective: {metric: m, mode: max}\n",
			[]string{
				`sweep.yaml:2: job.name: required`,
				`sweep.yaml:2: job.dataset: required (NAME or NAME@VERSION)`,
				`sweep.yaml:3: job: merge keys (<<) are not supported; write the fields out`,
			}},
		{"alias as a key", "name: &k s\n" + baseJob + "*k : 1\nsearch_space: {lr: {type: uniform, low: 0.1, high: 0.2}}\nobjective: {metric: m, mode: max}\n",
			[]string{`sweep.yaml:5: an alias (*k) is not a field name`}},
		{"invalid UTF-8 has a line", minimal + "max_trials: \xff\n",
			[]string{`sweep.yaml:8: YAML syntax: invalid UTF-8 (byte 0xff)`}},
		{"control character has a line", "name: s\n" + baseJob + "  model: \"u\x1b[0m\"\n",
			[]string{`sweep.yaml:5: YAML syntax: control character U+001B is not allowed`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Parse([]byte(tt.yaml), "sweep.yaml")
			if err == nil {
				t.Fatalf("no error; parsed %+v", s)
			}
			if !errors.Is(err, jobspec.ErrInvalid) {
				t.Errorf("error does not wrap jobspec.ErrInvalid: %v", err)
			}
			var errs jobspec.Errors
			if !errors.As(err, &errs) {
				t.Fatalf("error is %T, not jobspec.Errors", err)
			}
			got := strings.Split(err.Error(), "\n")
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestParseFileMissing(t *testing.T) {
	_, err := ParseFile(filepath.Join(t.TempDir(), "nope.yaml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err = %v", err)
	}
}

func TestTrialJobAndApply(t *testing.T) {
	s, err := Parse([]byte(minimal), "sweep.yaml")
	if err != nil {
		t.Fatal(err)
	}
	job, err := s.TrialJob(Params{"lr": Float(0.01), "batch": IntValue(16), "optimizer": String("sgd"), "flip": Bool(true), "seed": IntValue(4)})
	if err != nil {
		t.Fatal(err)
	}
	h := job.Hyperparameters
	if h.LR != 0.01 || h.Batch != 16 || h.Optimizer != "sgd" || !h.Flip || h.Seed != 4 || h.Epochs != 10 {
		t.Fatalf("hyperparameters %+v", h)
	}
	for _, tt := range []struct {
		p    Params
		want string
	}{
		{Params{"batch": Float(2)}, "sweep s: batch is an integer hyperparameter (use type int or a choice of integers), got float 2"},
		{Params{"dropout": Float(0.1)}, "sweep s: dropout is not a hyperparameter (known: batch, epochs, flip, lr, momentum, optimizer, seed, weight_decay)"},
		{Params{"lr": String("x")}, `sweep s: lr is a number, got string "x"`},
		{Params{"batch": IntValue(0)}, "sweep s: trial parameters batch=0: hyperparameters.batch: must be in 1..4096, got 0"},
	} {
		if _, err := s.TrialJob(tt.p); err == nil || err.Error() != tt.want {
			t.Errorf("TrialJob(%s) = %v, want %q", tt.p, err, tt.want)
		}
	}
}

func TestValidateJSONSpec(t *testing.T) {
	s, err := Parse([]byte(minimal), "sweep.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s.Job.Hyperparameters.LR = -1
	s.MaxConcurrent = 0
	err = s.Validate()
	want := "job.hyperparameters.lr: must be a positive number, got -1\nmax_concurrent: must be in 1..max_trials (20), got 0"
	if err == nil || err.Error() != want {
		t.Fatalf("Validate = %v, want %q", err, want)
	}
}
