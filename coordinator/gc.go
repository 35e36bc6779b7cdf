package coordinator

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/trainctl/trainctl/artifact"
	"github.com/trainctl/trainctl/coordinator/state"
	"github.com/trainctl/trainctl/coordinator/structs"
	"github.com/trainctl/trainctl/dataset"
)

// runGC is the leader's garbage collection (see state/gc.go for what it
// collects): once per GCConfig.Interval it picks, from the state and the
// configuration alone, the terminal jobs and sweeps past their retention and
// the checkpoints nothing refers to any more, and commits them. Every server
// applies the commands alike and deletes the blobs they free
// (removeArtifacts).
func (s *Server) runGC(ctx context.Context) {
	t := time.NewTicker(s.cfg.GC.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		st, err := s.collect(ctx, time.Now().UTC())
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("garbage collection", "err", err)
			}
			continue
		}
		if st != (GCStats{}) {
			s.log.Info("garbage collected", "jobs", st.Jobs, "sweeps", st.Sweeps, "checkpoints", st.Checkpoints, "blobs", st.Blobs)
		}
	}
}

// GCStats counts what one garbage collection pass removed.
type GCStats struct {
	Jobs, Sweeps, Checkpoints, Blobs int
}

// collect runs one garbage collection pass as of now: commands of at most
// GCConfig.MaxPerCommand ids each, until nothing is left to collect or a
// round collects nothing. The caller is the leader.
func (s *Server) collect(ctx context.Context, now time.Time) (GCStats, error) {
	policy := state.Policy{
		JobRetention:   s.cfg.GC.JobRetention,
		SweepRetention: s.cfg.GC.SweepRetention,
		MaxPerCommand:  s.cfg.GC.MaxPerCommand,
	}
	var st GCStats
	for {
		plan := s.State().Plan(now, policy)
		if plan.Empty() {
			return st, nil
		}
		before := st
		steps := []struct {
			ids []string
			t   structs.MessageType
			req any
			n   *int
		}{
			{plan.Sweeps, structs.SweepsGCRequestType, &structs.SweepsGCRequest{SweepIDs: plan.Sweeps, SummaryLimit: s.cfg.GC.SummaryLimit, Time: now}, &st.Sweeps},
			{plan.Jobs, structs.JobsGCRequestType, &structs.JobsGCRequest{JobIDs: plan.Jobs, SummaryLimit: s.cfg.GC.SummaryLimit, Time: now}, &st.Jobs},
			{plan.Checkpoints, structs.CheckpointsGCRequestType, &structs.CheckpointsGCRequest{Digests: plan.Checkpoints}, &st.Checkpoints},
		}
		for _, step := range steps {
			if len(step.ids) == 0 {
				continue
			}
			resp, err := s.raftApply(ctx, step.t, step.req)
			if err != nil {
				return st, fmt.Errorf("gc: %w", err)
			}
			if r, ok := resp.(*structs.GCResponse); ok {
				*step.n += len(r.Removed)
				st.Blobs += len(r.Blobs)
			}
		}
		if st == before {
			return st, nil // what is left was refused at apply: next pass
		}
	}
}

// removeArtifacts deletes, in the background, the blobs and dataset copies
// a committed command freed; the FSM calls it on every server after
// applying the command (state.Store.OnRemoved). A blob that is already gone
// is fine: the entry may be replayed.
func (s *Server) removeArtifacts(resp *structs.GCResponse) {
	blobs, versions := resp.Blobs, resp.Datasets
	go func() {
		for _, d := range blobs {
			if err := s.blobs.Delete(d); err != nil && !errors.Is(err, artifact.ErrNotFound) {
				s.log.Warn("delete collected blob", "digest", d, "err", err)
			}
		}
		if s.datasets == nil {
			return
		}
		for _, v := range versions {
			if _, err := s.datasets.store.Remove(v.Name + "@" + v.ID); err != nil && !errors.Is(err, dataset.ErrNotFound) {
				s.log.Warn("remove dataset version copy", "name", v.Name, "version", dataset.ShortID(v.ID), "err", err)
			}
		}
	}()
}
