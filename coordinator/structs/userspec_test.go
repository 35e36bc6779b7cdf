package structs

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/trainctl/trainctl/jobspec"
	"github.com/trainctl/trainctl/tuning"
)

// everyJobField is a valid job spec whose every field differs from its
// default.
func everyJobField() jobspec.Spec {
	return jobspec.Spec{
		Name: "every field", Dataset: "shapes@v2", Model: jobspec.ModelUNetS,
		Hyperparameters: jobspec.Hyperparameters{Epochs: 3, Batch: 16, LR: 0.0125, Optimizer: jobspec.OptimizerSGD,
			Momentum: 0.5, WeightDecay: 1e-4, Seed: 7, Flip: true},
		Resources:   jobspec.Resources{Ranks: 2, GPUsPerRank: 1, CPUsPerRank: 3, Spot: true},
		MaxRestarts: 0, CheckpointEvery: 0, Priority: 0, MaxTime: jobspec.Duration(90 * time.Minute),
	}
}

func everySweepField() tuning.Spec {
	return tuning.Spec{
		Name: "s", Job: everyJobField(),
		SearchSpace: tuning.Space{Params: []tuning.Param{
			{Name: "lr", Type: tuning.LogUniform, Low: 1e-4, High: 0.1, GridPoints: 3},
			{Name: "optimizer", Type: tuning.Choice, Values: []tuning.Value{tuning.String("adam"), tuning.String("sgd")}},
			{Name: "seed", Type: tuning.Int, Low: 1, High: 64, Log: true},
		}},
		Objective:     tuning.Objective{Metric: "val_loss", Mode: tuning.Minimize},
		Searcher:      tuning.SearcherSpec{Name: tuning.SearcherTPE, TPE: tuning.TPEConfig{NStartup: 4, NCandidates: 8, Gamma: 0.3}},
		Scheduler:     tuning.SchedulerSpec{Name: tuning.SchedulerMedian, ReductionFactor: 4, GracePeriod: 2, MinTrials: 5},
		MaxTrials:     9,
		MaxConcurrent: 3,
		Budget:        tuning.Budget{Unit: tuning.UnitSteps, Min: 10, Max: 100},
		Seed:          11,
	}
}

// TestUserSpecRoundTrip: converting a user spec to the server's and back
// loses nothing, and the server's JSON is the v1 commands' JSON (what
// jobspec.Spec and tuning.Spec wrote), so v1 snapshots decode unchanged.
func TestUserSpecRoundTrip(t *testing.T) {
	job := everyJobField()
	if got := NewJobSpec(job).User(); got != job {
		t.Errorf("job spec round trip:\n got %+v\nwant %+v", got, job)
	}
	sweep := everySweepField()
	if got := NewSweepSpec(sweep).User(); !reflect.DeepEqual(got, sweep) {
		t.Errorf("sweep spec round trip:\n got %+v\nwant %+v", got, sweep)
	}
	for name, pair := range map[string][2]any{
		"job":   {job, NewJobSpec(job)},
		"sweep": {sweep, NewSweepSpec(sweep)},
	} {
		user, err := json.Marshal(pair[0])
		if err != nil {
			t.Fatal(err)
		}
		server, err := json.Marshal(pair[1])
		if err != nil {
			t.Fatal(err)
		}
		if string(user) != string(server) {
			t.Errorf("%s JSON differs:\n user   %s\n server %s", name, user, server)
		}
	}
}

// TestJobSpecDecodesPlainly: the server's spec takes no defaults; v1's
// decoder takes v1's, for top-level and nested fields alike (v1 decoded a
// nested object into the defaults' copy of it).
func TestJobSpecDecodesPlainly(t *testing.T) {
	var s JobSpec
	if err := json.Unmarshal([]byte(`{"name":"x"}`), &s); err != nil {
		t.Fatal(err)
	}
	if s != (JobSpec{Name: "x"}) {
		t.Errorf("plain decode = %+v, want only the name", s)
	}
	req, err := DecodeJobSubmitV1([]byte(`{"job_id":"j","spec":{"name":"x","resources":{"ranks":2}}}`))
	if err != nil {
		t.Fatal(err)
	}
	want := JobSpec{
		Name: "x", Model: "unet-s",
		Hyperparameters: Hyperparameters{Epochs: 10, Batch: 8, LR: 0.001, Optimizer: "adam", Momentum: 0.9, Seed: 1},
		Resources:       JobResources{Ranks: 2, CPUsPerRank: 1},
		MaxRestarts:     3, CheckpointEvery: 100, Priority: 50,
	}
	if req.Spec != want {
		t.Errorf("v1 decode =\n %+v\nwant\n %+v", req.Spec, want)
	}
}
