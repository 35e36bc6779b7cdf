package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/trainctl/trainctl/api"
	"github.com/trainctl/trainctl/coordinator/structs"
)

// finishJob commits, on leader s, a finished job ended at end with one
// checkpoint, as the endpoints would.
func finishJob(t *testing.T, s *Server, id, digest string, end time.Time, done bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmds := []struct {
		t   structs.MessageType
		req any
	}{
		{structs.JobSubmitRequestType, &structs.JobSubmitRequest{JobID: id, RequestID: "req-" + id, Spec: structs.NewJobSpec(testSpec(id)), DatasetVersionID: shapesV1, SubmitTime: end}},
		{structs.JobPlaceRequestType, &structs.JobPlaceRequest{JobID: id, Attempt: 1, Time: end,
			Placements: []structs.Placement{{Rank: 0, WorkerID: "gc-w", Resources: structs.Resources{Cores: 1}}}}},
		{structs.CheckpointRegisterRequestType, &structs.CheckpointRegisterRequest{Checkpoint: structs.Checkpoint{Digest: digest, JobID: id, Attempt: 1, Step: 10, Time: end}}},
	}
	if done {
		cmds = append(cmds, struct {
			t   structs.MessageType
			req any
		}{structs.AttemptUpdateRequestType, &structs.AttemptUpdateRequest{JobID: id, Attempt: 1, State: structs.AttemptSucceeded, Time: end}})
	}
	for _, c := range cmds {
		if _, err := s.raftApply(ctx, c.t, c.req); err != nil {
			t.Fatalf("job %s: %s: %v", id, c.t, err)
		}
	}
}

// TestGCCollectsOnEveryNode: the leader collects a job past its retention
// and its checkpoint, record and blob, on every node; a recent job, a
// checkpoint a model refers to and a live job's checkpoint survive; the
// nodes end with identical state.
func TestGCCollectsOnEveryNode(t *testing.T) {
	c := newCluster(t, 3, gcTune)
	l := c.leader(nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := l.srv.raftApply(ctx, structs.WorkerUpsertRequestType, &structs.WorkerUpsertRequest{
		ID: "gc-w", Addr: "gc-w:1", Meta: structs.WorkerMeta{Cores: 16}, Time: time.Now()}); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	blobs := map[string]string{}
	for _, id := range []string{"old", "recent", "modelled", "live"} {
		d := uploadBlob(t, l.srv.HTTPAddr(), []byte("checkpoint of "+id))
		if _, err := l.srv.replicateBlob(ctx, d); err != nil {
			t.Fatal(err)
		}
		blobs[id] = d
		end := now.Add(-2 * time.Hour)
		if id == "recent" {
			end = now.Add(-time.Minute)
		}
		finishJob(t, l.srv, id, d, end, id != "live")
	}
	if _, err := l.srv.raftApply(ctx, structs.ModelRegisterRequestType, &structs.ModelRegisterRequest{
		Name: "keep", Checkpoint: blobs["modelled"], JobID: "modelled", Time: now}); err != nil {
		t.Fatal(err)
	}
	st, err := l.srv.collect(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	if st != (GCStats{Jobs: 2, Checkpoints: 1, Blobs: 1}) {
		t.Fatalf("collected %+v, want old and modelled jobs, old's checkpoint and blob", st)
	}
	c.converged(c.live())
	for _, n := range c.live() {
		s := n.srv.State()
		for _, id := range []string{"old", "modelled"} {
			if _, err := s.Job(id); !errors.Is(err, structs.ErrNotFound) {
				t.Fatalf("%s: job %s not collected: %v", n.cfg.NodeID, id, err)
			}
			if _, err := s.JobSummary(id); err != nil {
				t.Fatalf("%s: no summary of %s: %v", n.cfg.NodeID, id, err)
			}
		}
		for _, id := range []string{"recent", "live"} {
			if _, err := s.Job(id); err != nil {
				t.Fatalf("%s: job %s collected: %v", n.cfg.NodeID, id, err)
			}
		}
		for _, id := range []string{"recent", "modelled", "live"} {
			if _, err := s.Checkpoint(blobs[id]); err != nil || !n.srv.blobs.Has(blobs[id]) {
				t.Fatalf("%s: checkpoint of %s gone: %v", n.cfg.NodeID, id, err)
			}
		}
	}
	waitFor(t, 10*time.Second, "old's blob deleted on every node", func() error {
		for _, n := range c.live() {
			if n.srv.blobs.Has(blobs["old"]) {
				return fmt.Errorf("%s still has it", n.cfg.NodeID)
			}
		}
		return nil
	})
	sums, err := api.New(c.followers(l)[0].srv.HTTPAddr()).JobSummaries(ctx)
	if err != nil || len(sums) != 2 || sums[0].State != api.JobSucceeded {
		t.Fatalf("summaries from a follower: %+v, %v", sums, err)
	}
	// Nothing more to collect: a second pass commits nothing.
	if st, err := l.srv.collect(ctx, now); err != nil || st != (GCStats{}) {
		t.Fatalf("second pass collected %+v, %v", st, err)
	}
}

// TestDatasetRemove: dataset rm is refused while a job uses the version,
// and after the job ends removes the version and its blob on every node.
func TestDatasetRemove(t *testing.T) {
	c := newCluster(t, 3, gcTune)
	l := c.leader(nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	blob := uploadBlob(t, c.followers(l)[0].srv.HTTPAddr(), []byte("dataset content"))
	cl := c.client()
	const id = "7c9e0c4d1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c"
	if _, err := cl.RegisterDataset(ctx, api.RegisterDatasetBody{Name: "blobbed", ID: id, Manifest: json.RawMessage(`{"name":"blobbed","id":"` + id + `"}`), Blob: blob}); err != nil {
		t.Fatal(err)
	}
	spec := testSpec("uses-blobbed")
	spec.Dataset = "blobbed@v1"
	j := submit(t, cl, spec)
	follower := api.New(c.followers(l)[1].srv.HTTPAddr())
	_, err := follower.RemoveDataset(ctx, "blobbed", "v1")
	if !errors.Is(err, api.ErrConflict) || !strings.Contains(err.Error(), j.ID) {
		t.Fatalf("remove while job %s pending: %v, want a conflict naming it", j.ID, err)
	}
	if _, err := cl.CancelJob(ctx, j.ID); err != nil {
		t.Fatal(err)
	}
	v, err := follower.RemoveDataset(ctx, "blobbed", "v1")
	if err != nil || v.ID != id {
		t.Fatalf("remove after cancel: %+v, %v", v, err)
	}
	c.converged(c.live())
	waitFor(t, 10*time.Second, "dataset blob deleted on every node", func() error {
		for _, n := range c.live() {
			if n.srv.blobs.Has(blob) || len(n.srv.State().DatasetVersions("blobbed")) != 0 {
				return fmt.Errorf("%s still has it", n.cfg.NodeID)
			}
		}
		return nil
	})
	if _, err := follower.RemoveDataset(ctx, "blobbed", "v1"); err == nil {
		t.Fatal("removing it again succeeded")
	}
}

// TestStepMetricsFromAnyCoordinator: step points stay on the coordinator
// that received them, are readable through any coordinator, and the first
// one becomes the job's progress through the log.
func TestStepMetricsFromAnyCoordinator(t *testing.T) {
	c := newCluster(t, 3, func(cfg *Config) {
		gcTune(cfg)
		cfg.GC.ProgressInterval = time.Hour // only the first report's progress is due
	})
	l := c.leader(nil)
	fs := c.followers(l)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	j := submit(t, c.client(), testSpec("curves"))
	for _, f := range fs {
		waitJob(t, f.srv, j.ID, "the job on "+f.cfg.NodeID, func(*api.Job) error { return nil })
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	point := func(step int64) api.Metric {
		return api.Metric{Kind: api.MetricStep, Attempt: 1, Step: step, Time: now.Add(time.Duration(step)), Values: map[string]float64{"loss": 1 / float64(step)}}
	}
	// To the leader: steps 1 and 2; to a follower: step 3; an epoch report
	// through the other follower.
	if _, err := api.New(l.srv.HTTPAddr()).ReportMetrics(ctx, j.ID, []api.Metric{point(1), point(2)}); err != nil {
		t.Fatal(err)
	}
	if _, err := api.New(fs[0].srv.HTTPAddr()).ReportMetrics(ctx, j.ID, []api.Metric{point(3)}); err != nil {
		t.Fatal(err)
	}
	if _, err := api.New(fs[1].srv.HTTPAddr()).ReportMetrics(ctx, j.ID, []api.Metric{{Attempt: 1, Step: 3, Time: now, Values: map[string]float64{"val_loss": 0.5}}}); err != nil {
		t.Fatal(err)
	}
	if got := len(l.srv.metrics.Series(j.ID)); got != 2 {
		t.Fatalf("leader holds %d step points, want its own 2", got)
	}
	if got := len(fs[0].srv.metrics.Series(j.ID)); got != 1 {
		t.Fatalf("follower holds %d step points, want the 1 it received", got)
	}
	if got := len(fs[1].srv.metrics.Series(j.ID)); got != 0 {
		t.Fatalf("follower that got only a report holds %d step points", got)
	}
	if n := len(l.srv.State().Metrics(j.ID)); n != 1 {
		t.Fatalf("%d replicated reports, want the epoch report only", n)
	}
	waitJob(t, fs[1].srv, j.ID, "progress from the epoch report", func(j *api.Job) error {
		if j.Progress.Step != 3 || j.Progress.Metrics["val_loss"] != 0.5 {
			return fmt.Errorf("progress %+v", j.Progress)
		}
		return nil
	})
	for _, n := range c.live() {
		ms, err := api.New(n.srv.HTTPAddr()).JobMetrics(ctx, j.ID)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, m := range ms {
			got = append(got, fmt.Sprintf("%s%d", cmpKind(m.Kind), m.Step))
		}
		if want := []string{"s1", "s2", "s3", "r3"}; !slices.Equal(got, want) {
			t.Fatalf("metrics through %s: %v, want %v", n.cfg.NodeID, got, want)
		}
	}
}

func cmpKind(k string) string {
	if k == api.MetricStep {
		return "s"
	}
	return "r"
}
