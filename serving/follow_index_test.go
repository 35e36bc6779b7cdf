package serving

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/trainctl/trainctl/api"
)

// set replaces f's state: its index, the job and its checkpoints.
func (f *fakeCoordinator) set(index uint64, job api.Job, cks ...*api.Checkpoint) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.index, f.job, f.checkpoints = index, job, cks
}

// TestTargetQueryIgnoresOlderIndex: after failing over to a coordinator
// that lags behind one whose answer was taken, the target's queries do not
// report its older state as a change (Follow would resolve the target from
// it and swap an older checkpoint back in); they report changes again once
// it caught up.
func TestTargetQueryIgnoresOlderIndex(t *testing.T) {
	f := newFakeCoordinator(t)
	const id = "job-123456789"
	ca := &api.Checkpoint{Digest: "sha256:" + strings.Repeat("a", 64), JobID: id, Attempt: 1, Step: 10, CreateIndex: 10}
	cb := &api.Checkpoint{Digest: "sha256:" + strings.Repeat("b", 64), JobID: id, Attempt: 1, Step: 20, CreateIndex: 20}
	cc := &api.Checkpoint{Digest: "sha256:" + strings.Repeat("c", 64), JobID: id, Attempt: 1, Step: 30, CreateIndex: 30}
	cfg := FollowConfig{API: f.client(), Target: Target{JobID: id}, Interval: time.Millisecond, AskTimeout: 10 * time.Second}
	queries := targetQueries(cfg)
	if len(queries) != 2 {
		t.Fatalf("%d queries on a job, want 2 (the job and its checkpoints)", len(queries))
	}
	steps := []struct {
		name  string
		index uint64
		job   api.Job
		cks   []*api.Checkpoint
		want  bool // a change reported by each query
	}{
		{"first answer", 10, api.Job{ID: id, ModifyIndex: 10}, []*api.Checkpoint{ca}, true},
		{"newer state", 20, api.Job{ID: id, ModifyIndex: 20}, []*api.Checkpoint{ca, cb}, true},
		{"lagging coordinator", 15, api.Job{ID: id, ModifyIndex: 10}, []*api.Checkpoint{ca}, false},
		{"caught up, unchanged", 25, api.Job{ID: id, ModifyIndex: 20}, []*api.Checkpoint{ca, cb}, false},
		{"caught up, changed", 30, api.Job{ID: id, ModifyIndex: 30}, []*api.Checkpoint{ca, cb, cc}, true},
	}
	for _, st := range steps {
		f.set(st.index, st.job, st.cks...)
		for i, q := range queries {
			changed, _, err := q.next(context.Background(), cfg, time.Second)
			if err != nil || changed != st.want {
				t.Fatalf("%s: query %d: changed %v, %v; want changed %v", st.name, i, changed, err, st.want)
			}
		}
	}
}

// TestFollowNewCheckpointOnly: a checkpoint that does not change the job
// (taken after a restart from an earlier one, at a step below the job's
// latest checkpoint) but is its best is served: Follow watches the job's
// checkpoints too.
func TestFollowNewCheckpointOnly(t *testing.T) {
	f := newFakeCoordinator(t)
	a, c := f.addBlob(checkpointBytes(t, 1)), f.addBlob(checkpointBytes(t, 3))
	const id = "job-123456789"
	job := api.Job{ID: id, LatestCheckpoint: a, ModifyIndex: 20}
	ca := &api.Checkpoint{Digest: a, JobID: id, Attempt: 1, Step: 300, CreateIndex: 18}
	f.metrics = []api.Metric{
		{JobID: id, Attempt: 1, Step: 300, Values: map[string]float64{"val_mean_iou": 0.5}},
		{JobID: id, Attempt: 2, Step: 150, Values: map[string]float64{"val_mean_iou": 0.9}},
	}
	f.set(20, job, ca)
	s := startServer(t, Config{Name: "job"}, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Follow(ctx, s.Server, FollowConfig{
			API: f.client(), Peers: []string{f.ts.URL}, Target: Target{JobID: id}, Dir: t.TempDir(),
			Interval: 5 * time.Millisecond, Threads: 1, MaxBatch: 1, Logger: quietLogger(),
		})
	}()
	defer func() {
		cancel()
		if err := recv(t, done, "Follow to return"); !errors.Is(err, context.Canceled) {
			t.Errorf("Follow returned %v, want context.Canceled", err)
		}
	}()
	serving := func(digest string) func() bool {
		return func() bool {
			m := s.Model()
			return m != nil && strings.HasSuffix(m.Version(), "-"+shortHex(digest))
		}
	}
	waitFor(t, "the job's only checkpoint to be served", serving(a))
	// A few more questions on the job, which does not change: the
	// changes its first answers brought are acted on.
	f.mu.Lock()
	asked := f.jobQueries
	f.mu.Unlock()
	waitFor(t, "three more questions on the job", func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.jobQueries >= asked+3
	})
	// Attempt 2, resumed from an earlier checkpoint, registers its best
	// one: the job (its ModifyIndex, its latest checkpoint) does not change.
	f.set(25, job, ca, &api.Checkpoint{Digest: c, JobID: id, Attempt: 2, Step: 150, CreateIndex: 25})
	waitFor(t, "the new best checkpoint to be served", serving(c))
}
