package state

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/trainctl/trainctl/coordinator/structs"
	"github.com/trainctl/trainctl/jobspec"
)

// fixtureEntry is one line of a testdata/v1/*.log.jsonl file: a Raft log
// entry exactly as the v1 code wrote it (Data = the type byte followed by
// Payload).
type fixtureEntry struct {
	Index   uint64 `json:"index"`
	Type    uint8  `json:"type"`
	Name    string `json:"name"`
	Payload string `json:"payload"`
}

// TestWriteFixtureV1 records, with the v1 command code, the logs the
// rolling-upgrade test replays: the lifecycle, batch and sweep logs of this
// package's tests, less the entries a v1 leader could never commit (raw
// bytes, and commands rejected only by the user-facing spec and model-name
// rules, which its endpoints enforced before proposing), plus one job whose
// every spec field differs from its default. Each log goes to
// testdata/v1/NAME.log.jsonl and the state it leaves, as a v1 snapshot, to
// testdata/v1/NAME.state.json. Run with TRAINCTL_WRITE_FIXTURE=1.
func TestWriteFixtureV1(t *testing.T) {
	if os.Getenv("TRAINCTL_WRITE_FIXTURE") != "1" {
		t.Skip("set TRAINCTL_WRITE_FIXTURE=1 to rewrite testdata/v1")
	}
	userRule := []string{
		"submit invalid spec", "new trial with an invalid job",
		"model with a long name", "model with a control character", "model with a blank name", "model with a slash in its name",
	}
	every := jobspec.Spec{
		Name: "every field", Dataset: "shapes@v2", Model: jobspec.ModelUNetS,
		Hyperparameters: jobspec.Hyperparameters{Epochs: 3, Batch: 16, LR: 0.0125, Optimizer: jobspec.OptimizerSGD,
			Momentum: 0.5, WeightDecay: 1e-4, Seed: 7, Flip: true},
		Resources:   jobspec.Resources{Ranks: 2, GPUsPerRank: 1, CPUsPerRank: 3, Spot: true},
		MaxRestarts: 0, CheckpointEvery: 0, Priority: 0, MaxTime: jobspec.Duration(90 * time.Minute),
	}
	lifecycle := append(lifecycle(), step{name: "submit a job with every field set", typ: structs.JobSubmitRequestType,
		req: &structs.JobSubmitRequest{JobID: "j-every", RequestID: "r-every", Spec: every, DatasetVersionID: "dv2", SubmitTime: t0}})
	logs := map[string][]step{"lifecycle": lifecycle, "batch": batchLog(), "sweeps": sweepLog()}
	dir := filepath.Join("testdata", "v1")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, steps := range logs {
		var kept []step
		for _, st := range steps {
			if st.raw == nil && !slices.Contains(userRule, st.name) {
				kept = append(kept, st)
			}
		}
		f := NewFSM(quietLogger())
		var out bytes.Buffer
		enc := json.NewEncoder(&out)
		for _, l := range runLog(t, f, kept, false) {
			e := fixtureEntry{Index: l.Index, Type: l.Data[0], Name: structs.MessageType(l.Data[0]).String(), Payload: string(l.Data[1:])}
			if err := enc.Encode(e); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, name+".log.jsonl"), out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name+".state.json"), encodeState(t, f.State()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
