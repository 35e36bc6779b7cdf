package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trainctl/trainctl/api"
	"github.com/trainctl/trainctl/tuning"
)

// Unit tests of `trainctl sweep`, `sweeps` and `models`: the formatting of
// changes, leaderboards and listings, the flag checks, and the commands
// against a fake of the coordinator's sweep and model API. The commands
// against a real cluster are in process_sweep_test.go.

const testSweepSpec = `name: fake-sweep
job:
  name: fake-trial
  dataset: shapes@v1
  hyperparameters: {batch: 4}
search_space:
  lr: {type: loguniform, low: 0.0001, high: 0.01}
  optimizer: {type: choice, values: [adam, sgd]}
objective: {metric: val_mean_iou, mode: max}
scheduler: {name: asha}
max_trials: 2
max_concurrent: 2
budget: {unit: epochs, min: 1, max: 3}
`

var testT0 = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

func testSpec(t *testing.T) tuning.Spec {
	t.Helper()
	s, err := tuning.Parse([]byte(testSweepSpec), "sweep.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func testParams(lr float64, opt string) tuning.Params {
	return tuning.Params{"lr": tuning.Float(lr), "optimizer": tuning.String(opt)}
}

// sweepHistory returns the snapshots of a two-trial sweep as a client
// polling it would see them: submitted; trial 0 started; trial 0 judged at
// epoch 1 and trial 1 started; trial 1 stopped early at epoch 1, trial 0
// completed at epoch 3, best set, sweep ended in state final.
func sweepHistory(t *testing.T, final api.SweepState) []*api.Sweep {
	spec := testSpec(t)
	s0 := &api.Sweep{ID: "5c1e0a9b7d3f2e64", RequestID: "req-1", Spec: spec, DatasetVersionID: "d0e60dcf5a98aa", State: api.SweepRunning, SubmitTime: testT0}
	s1 := s0.Copy()
	s1.Trials = []api.Trial{{Number: 0, Params: testParams(0.0012345, "adam"), JobID: "5c1e0a9b7d3f2e64-t0", State: api.TrialRunning, StartTime: testT0.Add(time.Second)}}
	s2 := s1.Copy()
	s2.Results = []api.SweepResult{{Trial: 0, Budget: 1, Value: 0.41, Decision: "promote", Time: testT0.Add(5 * time.Second)}}
	s2.Trials[0].Budget, s2.Trials[0].HasValue, s2.Trials[0].LastValue, s2.Trials[0].BestValue, s2.Trials[0].BestBudget = 1, true, 0.41, 0.41, 1
	s2.Trials = append(s2.Trials, api.Trial{Number: 1, Params: testParams(0.005, "sgd"), JobID: "5c1e0a9b7d3f2e64-t1", ResultsSeen: 1, State: api.TrialRunning, StartTime: testT0.Add(5 * time.Second)})
	s3 := s2.Copy()
	s3.Results = append(s3.Results,
		api.SweepResult{Trial: 1, Budget: 1, Value: 0, NonFinite: true, Decision: "stop", Time: testT0.Add(8 * time.Second)},
		api.SweepResult{Trial: 0, Budget: 3, Value: 0.62, Decision: "complete", Time: testT0.Add(9 * time.Second)})
	s3.Trials[1].State, s3.Trials[1].Budget, s3.Trials[1].HasValue, s3.Trials[1].BestBudget, s3.Trials[1].EndTime = api.TrialStopped, 1, true, 1, testT0.Add(8*time.Second)
	s3.Trials[0].State, s3.Trials[0].Budget, s3.Trials[0].LastValue, s3.Trials[0].BestValue, s3.Trials[0].BestBudget, s3.Trials[0].EndTime = api.TrialCompleted, 3, 0.62, 0.62, 3, testT0.Add(9*time.Second)
	s3.Trials[0].BestCheckpoint, s3.Trials[0].BestCheckpointValue = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", 0.62
	s3.Best = &api.SweepBest{Trial: 0, JobID: "5c1e0a9b7d3f2e64-t0", Checkpoint: s3.Trials[0].BestCheckpoint, Value: 0.62}
	s3.State, s3.EndTime = final, testT0.Add(10*time.Second)
	if final == api.SweepFailed {
		s3.Error = "searcher: boom"
	}
	return []*api.Sweep{s0, s1, s2, s3}
}

func TestSweepChanges(t *testing.T) {
	h := sweepHistory(t, api.SweepCompleted)
	for _, tc := range []struct {
		name      string
		prev, cur *api.Sweep
		want      []string
	}{
		{"submitted", nil, h[0], []string{"sweep 5c1e0a9b7d3f2e64 (fake-sweep) running"}},
		{"first trial", h[0], h[1], []string{"trial 0 started: lr=0.00123 optimizer=adam (job 5c1e0a9b7d3f2e64-t0)"}},
		{"nothing new", h[1], h[1], nil},
		{"result then start", h[1], h[2], []string{
			"trial 0 epoch 1: val_mean_iou=0.41 → promote",
			"trial 1 started: lr=0.005 optimizer=sgd (job 5c1e0a9b7d3f2e64-t1)",
		}},
		{"stop, complete, best, end", h[2], h[3], []string{
			"trial 1 epoch 1: val_mean_iou=non-finite (diverged) → stop",
			"trial 1 stopped early after 1 epoch (best val_mean_iou=0 at epoch 1)",
			"trial 0 epoch 3: val_mean_iou=0.62 → complete",
			"trial 0 completed (best val_mean_iou=0.62 at epoch 3)",
			"best: trial 0, val_mean_iou=0.62, checkpoint 9f86d081884c",
			"sweep 5c1e0a9b7d3f2e64 completed",
		}},
		{"everything at once, in time order", h[0], h[3], []string{
			"trial 0 started: lr=0.00123 optimizer=adam (job 5c1e0a9b7d3f2e64-t0)",
			"trial 0 epoch 1: val_mean_iou=0.41 → promote",
			"trial 1 started: lr=0.005 optimizer=sgd (job 5c1e0a9b7d3f2e64-t1)",
			"trial 1 epoch 1: val_mean_iou=non-finite (diverged) → stop",
			"trial 1 stopped early after 1 epoch (best val_mean_iou=0 at epoch 1)",
			"trial 0 epoch 3: val_mean_iou=0.62 → complete",
			"trial 0 completed (best val_mean_iou=0.62 at epoch 3)",
			"best: trial 0, val_mean_iou=0.62, checkpoint 9f86d081884c",
			"sweep 5c1e0a9b7d3f2e64 completed",
		}},
		{"failed sweep seen first when over", nil, sweepHistory(t, api.SweepFailed)[3], []string{
			"trial 0 started: lr=0.00123 optimizer=adam (job 5c1e0a9b7d3f2e64-t0)",
			"trial 0 epoch 1: val_mean_iou=0.41 → promote",
			"trial 1 started: lr=0.005 optimizer=sgd (job 5c1e0a9b7d3f2e64-t1)",
			"trial 1 epoch 1: val_mean_iou=non-finite (diverged) → stop",
			"trial 1 stopped early after 1 epoch (best val_mean_iou=0 at epoch 1)",
			"trial 0 epoch 3: val_mean_iou=0.62 → complete",
			"trial 0 completed (best val_mean_iou=0.62 at epoch 3)",
			"best: trial 0, val_mean_iou=0.62, checkpoint 9f86d081884c",
			"sweep 5c1e0a9b7d3f2e64 failed: searcher: boom",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := sweepChanges(tc.prev, tc.cur)
			if !slices.Equal(got, tc.want) {
				t.Errorf("got\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(tc.want, "\n  "))
			}
		})
	}
}

func TestSweepTrialEndLines(t *testing.T) {
	for _, tc := range []struct {
		tr   api.Trial
		unit string
		want string
	}{
		{api.Trial{Number: 4, State: api.TrialStopped, Budget: 40, HasValue: true, BestValue: 0.5, BestBudget: 20}, tuning.UnitSteps,
			"trial 4 stopped early after 40 steps (best val_mean_iou=0.5 at step 20)"},
		{api.Trial{Number: 2, State: api.TrialFailed, JobID: "j-t2", Error: "out of memory"}, tuning.UnitEpochs,
			"trial 2 failed: out of memory (`trainctl jobs logs j-t2`)"},
		{api.Trial{Number: 3, State: api.TrialCancelled}, tuning.UnitEpochs, "trial 3 cancelled"},
		{api.Trial{Number: 5, State: api.TrialCompleted}, tuning.UnitEpochs, "trial 5 completed (no result)"},
		{api.Trial{Number: 6, State: api.TrialStopped, Budget: 1, HasValue: true}, tuning.UnitEpochs,
			"trial 6 stopped early after 1 epoch (every val_mean_iou was non-finite: diverged)"},
	} {
		if got := trialEndLine(&tc.tr, tc.unit, "val_mean_iou"); got != tc.want {
			t.Errorf("trial %+v: got %q, want %q", tc.tr, got, tc.want)
		}
	}
}

func TestSweepFormatting(t *testing.T) {
	h := sweepHistory(t, api.SweepCompleted)
	sw := h[3]
	// Leaderboard order is the API's: best first.
	trials := []api.Trial{sw.Trials[0], sw.Trials[1]}
	wantRows := [][]string{
		{"0", "lr=0.00123 optimizer=adam", "3/3", "0.62", "completed", "9f86d081884c", "5c1e0a9b7d3f2e64-t0"},
		{"1", "lr=0.005 optimizer=sgd", "1/3", "0", "stopped early", "-", "5c1e0a9b7d3f2e64-t1"},
	}
	if got := leaderboardRows(sw, trials); !slices.EqualFunc(got, wantRows, slices.Equal) {
		t.Errorf("leaderboard rows\n%q\nwant\n%q", got, wantRows)
	}
	if got, want := leaderboardHeader(sw), []string{"TRIAL", "PARAMS", "EPOCHS", "BEST VAL_MEAN_IOU", "STATE", "CHECKPOINT", "JOB"}; !slices.Equal(got, want) {
		t.Errorf("header %q, want %q", got, want)
	}
	// A trial without a result yet.
	running := api.Trial{Number: 7, Params: tuning.Params{"batch": tuning.IntValue(16), "flip": tuning.Bool(true)}, State: api.TrialRunning}
	if got, want := leaderboardRows(sw, []api.Trial{running})[0], []string{"7", "batch=16 flip=true", "0/3", "-", "running", "-", "-"}; !slices.Equal(got, want) {
		t.Errorf("running trial row %q, want %q", got, want)
	}

	ls := sweepsLsRows([]*api.Sweep{h[2], sw})
	if want := []string{"5c1e0a9b7d3f2e64", "fake-sweep", "running", "0/2/2", "-"}; !slices.Equal(ls[0][:5], want) {
		t.Errorf("ls row of a running sweep %q, want %q", ls[0], want)
	}
	if want := []string{"5c1e0a9b7d3f2e64", "fake-sweep", "completed", "2/0/2", "val_mean_iou=0.62"}; !slices.Equal(ls[1][:5], want) {
		t.Errorf("ls row of a completed sweep %q, want %q", ls[1], want)
	}

	var b strings.Builder
	if err := writeSweep(&b, sw, trials); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"state        completed\n",
		"dataset      shapes@v1 (version d0e60dcf5a98)\n",
		"objective    maximize val_mean_iou\n",
		"search       random (seed 1) over lr, optimizer\n",
		"scheduler    asha\n",
		"budget       1..3 epochs per trial\n",
		"trials       2 started of 2 (2 ended, 0 running), 2 at a time\n",
		"results      3 judged\n",
		"ended        2026-11-22T10:00:10Z (after 10s)\n",
		"best checkpoint: sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 (trial 0, job 5c1e0a9b7d3f2e64-t0, val_mean_iou=0.62)\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("sweeps get output lacks %q:\n%s", want, b.String())
		}
	}
	if !regexp.MustCompile(`(?m)^0 +lr=0\.00123 optimizer=adam +3/3 +0\.62 +completed +9f86d081884c`).MatchString(b.String()) {
		t.Errorf("no leaderboard row for trial 0:\n%s", b.String())
	}
	if got := bestLine(h[1]); got != "best checkpoint: none yet" {
		t.Errorf("best line before any checkpoint: %q", got)
	}

	for _, tc := range []struct {
		spec tuning.Spec
		want string
	}{
		{tuning.Spec{Scheduler: tuning.SchedulerSpec{Name: "fifo"}}, "fifo (no early stopping)"},
		{tuning.Spec{Scheduler: tuning.SchedulerSpec{Name: "asha", ReductionFactor: 3, GracePeriod: 2}}, "asha (reduction factor 3, grace period 2)"},
		{tuning.Spec{Scheduler: tuning.SchedulerSpec{Name: "median", MinTrials: 5}}, "median (min trials 5)"},
	} {
		if got := schedulerString(tc.spec); got != tc.want {
			t.Errorf("scheduler %+v: %q, want %q", tc.spec.Scheduler, got, tc.want)
		}
	}
	tpe := tuning.Spec{Seed: 7, Searcher: tuning.SearcherSpec{Name: "tpe", TPE: tuning.TPEConfig{NStartup: 8}}}
	if got, want := searcherString(tpe), "tpe (seed 7, n_startup 8)"; got != want {
		t.Errorf("searcher %q, want %q", got, want)
	}
}

func TestModelFormatting(t *testing.T) {
	vs := []*api.ModelVersion{
		{Name: "a", Version: 1, Checkpoint: "sha256:1111111111111111", SweepID: "s1", JobID: "s1-t0", Metric: "val_mean_iou", Value: 0.5, CreateTime: testT0},
		{Name: "b", Version: 1, Checkpoint: "sha256:2222222222222222", JobID: "j9", CreateTime: testT0},
		{Name: "a", Version: 2, Checkpoint: "sha256:3333333333333333", CreateTime: testT0.Add(time.Hour)},
	}
	latest, counts := latestModels(vs)
	rows := modelsLsRows(latest, counts)
	want := [][]string{
		{"a", "v2", "2", "333333333333", "-", "-"},
		{"b", "v1", "1", "222222222222", "job j9", "-"},
	}
	if len(rows) != len(want) {
		t.Fatalf("rows %q, want %q", rows, want)
	}
	for i := range want {
		if !slices.Equal(rows[i][:6], want[i]) {
			t.Errorf("row %d %q, want %q", i, rows[i], want[i])
		}
	}
	if got, want := modelVersionRows(vs[:1])[0], []string{"v1", "sha256:1111111111111111", "sweep s1, job s1-t0", "val_mean_iou=0.5", "2026-11-22T10:00:00Z"}; !slices.Equal(got, want) {
		t.Errorf("version row %q, want %q", got, want)
	}
}

// TestSweepCommandFlags checks what the commands reject before they ask a
// coordinator (there is none at --coordinator).
func TestSweepCommandFlags(t *testing.T) {
	good := writeSpec(t, "sweep.yaml", testSweepSpec)
	bad := writeSpec(t, "bad.yaml", strings.NewReplacer("mode: max", "mode: maxx", "name: asha", "name: bohb").Replace(testSweepSpec))
	none := []string{"--coordinator", "127.0.0.1:1", "--timeout", "0s"}
	for _, tc := range []struct {
		cmd, rest []string // the command and what follows its flags
		want      []string
	}{
		{[]string{"sweep"}, []string{"-f", bad}, []string{"bad.yaml has 2 problem(s); nothing was submitted", "bad.yaml:9: objective.mode:", "bad.yaml:10: scheduler.name:"}},
		{[]string{"sweep"}, []string{"-f", good, "--request-id", " "}, []string{"--request-id is empty"}},
		{[]string{"sweep"}, []string{"-f", good, "--request-id", strings.Repeat("x", 129)}, []string{"--request-id: request id:", "is 129 bytes, the limit is 128"}},
		{[]string{"sweep"}, []string{"-f", good, "--request-id", "a b"}, []string{`--request-id: request id: "a b" has ' ' at byte 1`}},
		{[]string{"sweep"}, []string{"-f", good, "--poll-interval", "0s"}, []string{"--poll-interval 0s"}},
		{[]string{"sweep"}, []string{"-f", good, "extra"}, []string{"takes no arguments"}},
		{[]string{"sweep"}, []string{"-f", "/nonexistent/sweep.yaml"}, []string{"/nonexistent/sweep.yaml"}},
		{[]string{"-o", "yaml", "sweeps", "ls"}, nil, []string{`-o "yaml"`}},
		{[]string{"sweeps", "ls"}, []string{"--state", "bogus"}, []string{`--state "bogus"`, "running, completed, cancelled, failed"}},
		{[]string{"sweeps", "get"}, nil, []string{"wants one argument ID"}},
		{[]string{"sweeps", "get"}, []string{"a", "b"}, []string{"wants one argument ID"}},
		{[]string{"sweeps", "trials"}, []string{"a", "-o", "json"}, []string{"flag -o must come before the arguments"}},
		{[]string{"models", "get"}, nil, []string{"wants one argument NAME"}},
		{[]string{"models", "ls"}, []string{"x"}, []string{"takes no arguments"}},
		{[]string{"models", "register"}, []string{"m"}, []string{"--checkpoint DIGEST, --job ID (its latest) or --sweep ID (its best)"}},
		{[]string{"models", "register"}, []string{"--job", "j", "--sweep", "s", "m"}, []string{"--job and --sweep: give exactly one"}},
		{[]string{"models", "register"}, []string{"--job", " ", "m"}, []string{"--job is empty"}},
		{[]string{"models", "register"}, []string{"--sweep", "s", " "}, []string{"the model NAME is empty"}},
		{[]string{"models", "register"}, []string{"m", "--sweep", "s"}, []string{"flag --sweep must come before the arguments", "[flags] NAME"}},
	} {
		args := slices.Concat(tc.cmd, none, tc.rest)
		if tc.cmd[0] == "-o" {
			args = slices.Concat(tc.cmd, tc.rest)
		}
		_, _, err := ctl(t, args...)
		if err == nil {
			t.Errorf("trainctl %s: no error", strings.Join(args, " "))
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("trainctl %s: error lacks %q:\n%v", strings.Join(args, " "), w, err)
			}
		}
	}
}

// fakeSweepAPI is a fake of the coordinator's sweep and model API: a
// sweep that moves one snapshot on at every GET, and a model registry.
type fakeSweepAPI struct {
	t *testing.T

	mu        sync.Mutex
	history   []*api.Sweep
	gets      int
	submitted []api.SubmitSweepBody
	cancelled []string
	replay    api.SweepReplay
	models    []*api.ModelVersion
	registers []api.RegisterModelBody
}

func (f *fakeSweepAPI) current() *api.Sweep { return f.history[min(f.gets, len(f.history)-1)] }

func (f *fakeSweepAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	reply := func(status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		if err := json.NewEncoder(w).Encode(v); err != nil {
			f.t.Errorf("fake API: %v", err)
		}
	}
	notFound := func(what string) {
		reply(http.StatusNotFound, api.ErrorBody{Error: what + " not found", Code: api.CodeNotFound})
	}
	sweepID := func() (string, bool) {
		id := r.PathValue("id")
		if id != f.history[0].ID {
			notFound(fmt.Sprintf("sweep %q", id))
			return "", false
		}
		return id, true
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/sweeps", func(w http.ResponseWriter, r *http.Request) {
		var body api.SubmitSweepBody
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			reply(http.StatusBadRequest, api.ErrorBody{Error: err.Error(), Code: api.CodeInvalid})
			return
		}
		f.submitted = append(f.submitted, body)
		sw := f.history[0].Copy()
		sw.RequestID = body.RequestID
		reply(http.StatusOK, sw)
	})
	mux.HandleFunc("GET /v1/sweeps", func(w http.ResponseWriter, r *http.Request) {
		if st := r.URL.Query().Get("state"); st != "" && st != string(f.current().State) {
			reply(http.StatusOK, []*api.Sweep{})
			return
		}
		reply(http.StatusOK, []*api.Sweep{f.current()})
	})
	mux.HandleFunc("GET /v1/sweeps/{id}", func(w http.ResponseWriter, r *http.Request) {
		if _, ok := sweepID(); ok {
			reply(http.StatusOK, f.current())
			f.gets++
		}
	})
	mux.HandleFunc("GET /v1/sweeps/{id}/trials", func(w http.ResponseWriter, r *http.Request) {
		if _, ok := sweepID(); ok {
			trials := slices.Clone(f.current().Trials)
			slices.SortStableFunc(trials, func(a, b api.Trial) int {
				switch {
				case a.HasValue && b.HasValue && a.BestValue != b.BestValue:
					if a.BestValue > b.BestValue {
						return -1
					}
					return 1
				case a.HasValue != b.HasValue:
					if a.HasValue {
						return -1
					}
					return 1
				}
				return a.Number - b.Number
			})
			reply(http.StatusOK, trials)
		}
	})
	mux.HandleFunc("POST /v1/sweeps/{id}/cancel", func(w http.ResponseWriter, r *http.Request) {
		if id, ok := sweepID(); ok {
			f.cancelled = append(f.cancelled, id)
			sw := f.current().Copy()
			sw.State = api.SweepCancelled
			reply(http.StatusOK, sw)
		}
	})
	mux.HandleFunc("GET /v1/sweeps/{id}/replay", func(w http.ResponseWriter, r *http.Request) {
		if _, ok := sweepID(); ok {
			reply(http.StatusOK, f.replay)
		}
	})
	mux.HandleFunc("GET /v1/models", func(w http.ResponseWriter, r *http.Request) { reply(http.StatusOK, f.models) })
	mux.HandleFunc("GET /v1/models/{name}", func(w http.ResponseWriter, r *http.Request) {
		var out []*api.ModelVersion
		for _, m := range f.models {
			if m.Name == r.PathValue("name") {
				out = append(out, m)
			}
		}
		if len(out) == 0 {
			notFound(fmt.Sprintf("model %q", r.PathValue("name")))
			return
		}
		reply(http.StatusOK, out)
	})
	mux.HandleFunc("POST /v1/models", func(w http.ResponseWriter, r *http.Request) {
		var body api.RegisterModelBody
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			reply(http.StatusBadRequest, api.ErrorBody{Error: err.Error(), Code: api.CodeInvalid})
			return
		}
		f.registers = append(f.registers, body)
		if body.SweepID != "" && body.SweepID != f.history[0].ID {
			notFound(fmt.Sprintf("sweep %q", body.SweepID))
			return
		}
		best := f.current().Best
		// As the coordinator does: the checkpoint the model's latest
		// version has already is no new version (200), else 201.
		for _, m := range slices.Backward(f.models) {
			if m.Name == body.Name {
				if m.Checkpoint == best.Checkpoint {
					reply(http.StatusOK, m)
					return
				}
				break
			}
		}
		m := &api.ModelVersion{Name: body.Name, Version: 1, Checkpoint: best.Checkpoint, SweepID: body.SweepID, JobID: best.JobID,
			Metric: "val_mean_iou", Value: best.Value, CreateTime: testT0}
		f.models = append(f.models, m)
		reply(http.StatusCreated, m)
	})
	mux.ServeHTTP(w, r)
}

// startFakeSweepAPI serves a fake API with the given sweep history and
// points TRAINCTL_COORDINATOR at it.
func startFakeSweepAPI(t *testing.T, history []*api.Sweep) *fakeSweepAPI {
	t.Helper()
	f := &fakeSweepAPI{t: t, history: history, replay: api.SweepReplay{Results: 3, Suggestions: 2}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	t.Setenv("TRAINCTL_COORDINATOR", srv.URL)
	return f
}

// TestSweepCommandsFakeAPI runs the commands against a fake of the API:
// submit and wait through a sweep's history, the listings, cancel, replay
// and the model registry, and errors naming unknown ids.
func TestSweepCommandsFakeAPI(t *testing.T) {
	spec := writeSpec(t, "sweep.yaml", testSweepSpec)
	t.Run("wait completed", func(t *testing.T) {
		f := startFakeSweepAPI(t, sweepHistory(t, api.SweepCompleted))
		out, errOut, err := ctl(t, []string{"sweep", "-f", spec, "--wait", "--poll-interval", "1ms"}...)
		if err != nil {
			t.Fatalf("sweep --wait: %v\n%s%s", err, out, errOut)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if lines[0] != "5c1e0a9b7d3f2e64" {
			t.Errorf("first line %q, want the sweep id", lines[0])
		}
		// Every change once, in order, then the leaderboard and the best.
		var seen []string
		for _, l := range lines[1:] {
			if m := regexp.MustCompile(`^\d\d:\d\d:\d\d  (.*)$`).FindStringSubmatch(l); m != nil {
				seen = append(seen, m[1])
			}
		}
		want := slices.Concat(sweepChanges(nil, f.history[0]), sweepChanges(f.history[0], f.history[1]),
			sweepChanges(f.history[1], f.history[2]), sweepChanges(f.history[2], f.history[3]))
		if !slices.Equal(seen, want) {
			t.Errorf("progress lines\n  %s\nwant\n  %s", strings.Join(seen, "\n  "), strings.Join(want, "\n  "))
		}
		for _, w := range []string{"TRIAL  PARAMS", "stopped early", "best checkpoint: sha256:9f86d081884c7d65"} {
			if !strings.Contains(out, w) {
				t.Errorf("output lacks %q:\n%s", w, out)
			}
		}
		if len(f.submitted) != 1 {
			t.Fatalf("%d submissions", len(f.submitted))
		}
		sub := f.submitted[0]
		if !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(sub.RequestID) {
			t.Errorf("request id %q is not a random UUID", sub.RequestID)
		}
		if sub.Spec.Name != "fake-sweep" || sub.Spec.MaxTrials != 2 || sub.Spec.Budget.Max != 3 || len(sub.Spec.SearchSpace.Params) != 2 {
			t.Errorf("submitted spec %+v", sub.Spec)
		}
		if !strings.Contains(errOut, "request id "+sub.RequestID) {
			t.Errorf("stderr does not say the request id:\n%s", errOut)
		}
	})
	t.Run("get --wait", func(t *testing.T) {
		f := startFakeSweepAPI(t, sweepHistory(t, api.SweepCompleted))
		out := mustCtl(t, []string{"sweeps", "get", "--wait", "--poll-interval", "1ms", "5c1e0a9b7d3f2e64"}...)
		var seen []string
		for _, l := range strings.Split(out, "\n") {
			if m := regexp.MustCompile(`^\d\d:\d\d:\d\d  (.*)$`).FindStringSubmatch(l); m != nil {
				seen = append(seen, m[1])
			}
		}
		want := slices.Concat(sweepChanges(nil, f.history[0]), sweepChanges(f.history[0], f.history[1]),
			sweepChanges(f.history[1], f.history[2]), sweepChanges(f.history[2], f.history[3]))
		if !slices.Equal(seen, want) {
			t.Errorf("progress lines\n  %s\nwant\n  %s", strings.Join(seen, "\n  "), strings.Join(want, "\n  "))
		}
		if !strings.Contains(out, "TRIAL  PARAMS") || !strings.Contains(out, "best checkpoint: sha256:9f86d081884c7d65") {
			t.Errorf("no leaderboard and best after the sweep ended:\n%s", out)
		}
		startFakeSweepAPI(t, sweepHistory(t, api.SweepFailed))
		if _, _, err := ctl(t, []string{"sweeps", "get", "--wait", "--poll-interval", "1ms", "5c1e0a9b7d3f2e64"}...); err == nil ||
			!strings.Contains(err.Error(), "sweep 5c1e0a9b7d3f2e64 failed: searcher: boom") {
			t.Errorf("get --wait of a failing sweep: %v, want its failure", err)
		}
	})
	t.Run("wait failed", func(t *testing.T) {
		startFakeSweepAPI(t, sweepHistory(t, api.SweepFailed))
		out, _, err := ctl(t, []string{"sweep", "-f", spec, "--wait", "--poll-interval", "1ms", "--request-id", "r-7"}...)
		if err == nil || !strings.Contains(err.Error(), "sweep 5c1e0a9b7d3f2e64 failed: searcher: boom") {
			t.Errorf("error %v, want the sweep's failure", err)
		}
		if !strings.Contains(out, "TRIAL  PARAMS") {
			t.Errorf("no leaderboard after a failed sweep:\n%s", out)
		}
	})
	t.Run("json", func(t *testing.T) {
		f := startFakeSweepAPI(t, sweepHistory(t, api.SweepCompleted))
		out, errOut, err := ctl(t, []string{"-o", "json", "sweep", "-f", spec, "--wait", "--poll-interval", "1ms", "--request-id", "r-8"}...)
		if err != nil {
			t.Fatal(err)
		}
		var sw api.Sweep
		if err := json.Unmarshal([]byte(out), &sw); err != nil {
			t.Fatalf("stdout is not one sweep object: %v\n%s", err, out)
		}
		if sw.State != api.SweepCompleted || f.submitted[0].RequestID != "r-8" {
			t.Errorf("sweep %+v, request id %q", sw, f.submitted[0].RequestID)
		}
		if !strings.Contains(errOut, "trial 0 started") {
			t.Errorf("progress not on stderr under -o json:\n%s", errOut)
		}
	})
	t.Run("ls get trials", func(t *testing.T) {
		f := startFakeSweepAPI(t, sweepHistory(t, api.SweepCompleted))
		f.gets = 3
		if out := mustCtl(t, []string{"sweeps", "ls"}...); !regexp.MustCompile(`(?m)^5c1e0a9b7d3f2e64 +fake-sweep +completed +2/0/2 +val_mean_iou=0\.62`).MatchString(out) {
			t.Errorf("sweeps ls:\n%s", out)
		}
		if out := mustCtl(t, []string{"sweeps", "ls", "--state", "running"}...); strings.Contains(out, "5c1e") {
			t.Errorf("sweeps ls --state running lists a completed sweep:\n%s", out)
		}
		out := mustCtl(t, []string{"sweeps", "get", "5c1e0a9b7d3f2e64"}...)
		if !strings.Contains(out, "scheduler    asha") || !strings.Contains(out, "best checkpoint: sha256:") {
			t.Errorf("sweeps get:\n%s", out)
		}
		var sw api.Sweep
		if err := json.Unmarshal([]byte(mustCtl(t, []string{"-o", "json", "sweeps", "get", "5c1e0a9b7d3f2e64"}...)), &sw); err != nil || len(sw.Results) != 3 {
			t.Errorf("sweeps get -o json: %v, %+v", err, sw)
		}
		out = mustCtl(t, []string{"sweeps", "trials", "5c1e0a9b7d3f2e64"}...)
		rows := strings.Split(strings.TrimSpace(out), "\n")
		if len(rows) != 3 || !strings.HasPrefix(rows[1], "0 ") || !strings.HasPrefix(rows[2], "1 ") {
			t.Errorf("sweeps trials, best first:\n%s", out)
		}
		var trials []api.Trial
		if err := json.Unmarshal([]byte(mustCtl(t, []string{"-o", "json", "sweeps", "trials", "5c1e0a9b7d3f2e64"}...)), &trials); err != nil || len(trials) != 2 {
			t.Errorf("sweeps trials -o json: %v, %+v", err, trials)
		}
	})
	t.Run("unknown ids", func(t *testing.T) {
		startFakeSweepAPI(t, sweepHistory(t, api.SweepCompleted))
		for _, args := range [][]string{
			{"sweeps", "get", "nope"}, {"sweeps", "trials", "nope"}, {"sweeps", "cancel", "nope"}, {"sweeps", "replay", "nope"},
		} {
			wantErr(t, args, `no sweep "nope" in the cluster`, "`trainctl sweeps ls` lists the sweeps")
		}
		wantErr(t, []string{"models", "get", "nope"}, `no model "nope" in the cluster`, "`trainctl models ls`")
		wantErr(t, []string{"models", "register", "--sweep", "nope", "m"}, `models register m: no sweep "nope" in the cluster`)
	})
	t.Run("cancel", func(t *testing.T) {
		f := startFakeSweepAPI(t, sweepHistory(t, api.SweepCompleted))
		f.gets = 2
		out := mustCtl(t, []string{"sweeps", "cancel", "5c1e0a9b7d3f2e64"}...)
		if out != "sweep 5c1e0a9b7d3f2e64 cancelled (2 running trial(s) cancelled)\n" || len(f.cancelled) != 1 {
			t.Errorf("cancel of a running sweep: %q, cancelled %v", out, f.cancelled)
		}
		f.gets = 3
		out = mustCtl(t, []string{"sweeps", "cancel", "5c1e0a9b7d3f2e64"}...)
		if !strings.Contains(out, "had already ended (completed)") || len(f.cancelled) != 1 {
			t.Errorf("cancel of a completed sweep: %q, cancelled %v", out, f.cancelled)
		}
	})
	t.Run("replay", func(t *testing.T) {
		f := startFakeSweepAPI(t, sweepHistory(t, api.SweepCompleted))
		out := mustCtl(t, []string{"sweeps", "replay", "5c1e0a9b7d3f2e64"}...)
		if out != "sweep 5c1e0a9b7d3f2e64: replayed 3 decisions and 2 suggestions: identical\n" {
			t.Errorf("replay: %q", out)
		}
		f.replay.Mismatches = []string{"results[1]: recorded stop, replay continue", "trials[1]: recorded lr=0.005, replay lr=0.004"}
		out, _, err := ctl(t, []string{"sweeps", "replay", "5c1e0a9b7d3f2e64"}...)
		if err == nil || !strings.Contains(err.Error(), "does not replay identically (2 mismatch(es))") {
			t.Errorf("replay with mismatches: error %v", err)
		}
		for _, m := range f.replay.Mismatches {
			if !strings.Contains(out, "  "+m+"\n") {
				t.Errorf("replay output lacks mismatch %q:\n%s", m, out)
			}
		}
	})
	t.Run("models", func(t *testing.T) {
		f := startFakeSweepAPI(t, sweepHistory(t, api.SweepCompleted))
		f.gets = 3
		out := mustCtl(t, []string{"models", "register", "--sweep", "5c1e0a9b7d3f2e64", "unet-prod"}...)
		if want := "registered unet-prod v1: checkpoint sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 (from sweep 5c1e0a9b7d3f2e64, job 5c1e0a9b7d3f2e64-t0), val_mean_iou=0.62\n"; out != want {
			t.Errorf("register:\n%q\nwant\n%q", out, want)
		}
		if want := (api.RegisterModelBody{Name: "unet-prod", SweepID: "5c1e0a9b7d3f2e64"}); len(f.registers) != 1 || f.registers[0] != want {
			t.Errorf("register bodies %+v, want %+v", f.registers, want)
		}
		// The same checkpoint again makes no new version, and says so.
		out = mustCtl(t, []string{"models", "register", "--sweep", "5c1e0a9b7d3f2e64", "unet-prod"}...)
		if want := "no new version: unet-prod v1, the latest, already has checkpoint sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 (from sweep 5c1e0a9b7d3f2e64, job 5c1e0a9b7d3f2e64-t0), val_mean_iou=0.62\n"; out != want {
			t.Errorf("register again:\n%q\nwant\n%q", out, want)
		}
		mustCtl(t, []string{"models", "register", "--checkpoint", "sha256:abc", "other"}...)
		if want := (api.RegisterModelBody{Name: "other", Checkpoint: "sha256:abc"}); f.registers[2] != want {
			t.Errorf("register body %+v, want %+v", f.registers[2], want)
		}
		out = mustCtl(t, []string{"models", "ls"}...)
		if !regexp.MustCompile(`(?m)^unet-prod +v1 +1 +9f86d081884c +sweep 5c1e0a9b7d3f2e64, job 5c1e0a9b7d3f2e64-t0 +val_mean_iou=0\.62`).MatchString(out) {
			t.Errorf("models ls:\n%s", out)
		}
		var vs []*api.ModelVersion
		if err := json.Unmarshal([]byte(mustCtl(t, []string{"-o", "json", "models", "get", "unet-prod"}...)), &vs); err != nil || len(vs) != 1 || vs[0].Version != 1 {
			t.Errorf("models get -o json: %v, %+v", err, vs)
		}
	})
}

// TestSweepWaitInterrupted checks that Ctrl-C during --wait stops waiting
// only, and says the sweep keeps running.
func TestSweepWaitInterrupted(t *testing.T) {
	h := sweepHistory(t, api.SweepCompleted)
	f := startFakeSweepAPI(t, h[:2]) // never ends
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	spec := writeSpec(t, "sweep.yaml", testSweepSpec)
	out, done := runAsync(t, ctx, []string{"sweep", "-f", spec, "--wait", "--poll-interval", "5ms"}...)
	waitOutput(t, out, done, regexp.MustCompile(`trial 0 started`), "the first trial")
	cancel()
	err := waitDone(t, done, "sweep --wait after Ctrl-C")
	if err == nil || !strings.Contains(err.Error(), "stopped waiting; sweep 5c1e0a9b7d3f2e64 keeps running (follow it again with `trainctl sweeps get --wait 5c1e0a9b7d3f2e64`") ||
		!strings.Contains(err.Error(), "trainctl sweeps cancel 5c1e0a9b7d3f2e64") {
		t.Errorf("error %v, want one saying the sweep keeps running and how to follow it", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.cancelled) != 0 {
		t.Errorf("Ctrl-C cancelled the sweep: %v", f.cancelled)
	}
}
