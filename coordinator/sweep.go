package coordinator

import (
	"context"
	"fmt"
	"time"

	"github.com/trainctl/trainctl/coordinator/structs"
	"github.com/trainctl/trainctl/coordinator/sweeper"
	"github.com/trainctl/trainctl/tuning"
)

// kickSweeps asks the leader's sweep controller for a pass soon. It never
// blocks and kicks while a pass is pending are merged, as kickScheduler.
func (s *Server) kickSweeps() {
	select {
	case s.sweepKick <- struct{}{}:
	default:
	}
}

// kickSweepsFor kicks the sweep controller when j trains a sweep trial:
// its metrics, checkpoints and attempt ends are what the controller acts on.
func (s *Server) kickSweepsFor(j *structs.Job) {
	if j != nil && j.SweepID != "" {
		s.kickSweeps()
	}
}

// runSweeps is the leader's sweep controller loop: a pass on each kick (a
// submission, a trial's metrics, checkpoint or attempt end) and every
// SweepInterval, until ctx ends with the leadership. The controller is
// created here, once per leadership term, so a new leader starts with an
// empty cache and rebuilds each sweep's searcher and scheduler by replaying
// the results its predecessors committed.
func (s *Server) runSweeps(ctx context.Context) {
	ctl := sweeper.New(s.log.With("component", "sweeper"))
	// active holds the sweeps the controller may cache, to forget each once
	// it has ended.
	active := make(map[string]bool)
	t := time.NewTicker(s.cfg.SweepInterval)
	defer t.Stop()
	for {
		s.sweepPass(ctx, ctl, active)
		select {
		case <-ctx.Done():
			return
		case <-s.sweepKick:
		case <-t.C:
		}
	}
}

// sweepPass steps every running sweep once. A sweep whose step fails is
// logged and skipped; the others go on, and the next pass tries it again.
func (s *Server) sweepPass(ctx context.Context, ctl *sweeper.Controller, active map[string]bool) {
	for _, sw := range s.State().Sweeps() {
		if ctx.Err() != nil {
			return
		}
		if sw.State.Terminal() {
			if active[sw.ID] {
				ctl.Forget(sw.ID)
				delete(active, sw.ID)
			}
			continue
		}
		active[sw.ID] = true
		if err := s.stepSweep(ctx, ctl, sw); err != nil && ctx.Err() == nil {
			s.log.Warn("sweep step", "sweep", sw.ID, "err", err)
		}
	}
}

// stepSweep runs the controller over one running sweep and commits the step
// it returns, if any, as one SweepStep entry.
func (s *Server) stepSweep(ctx context.Context, ctl *sweeper.Controller, sw *structs.Sweep) error {
	now := time.Now().UTC()
	req, err := ctl.Step(s.sweepView(sw, now), now)
	if err != nil {
		// The controller rebuilds its cache from the committed sweep.
		ctl.Forget(sw.ID)
		return fmt.Errorf("controller: %w", err)
	}
	if req == nil {
		return nil
	}
	resp, err := s.raftApply(ctx, structs.SweepStepRequestType, req)
	if err != nil {
		// The cache is ahead of the committed state: rebuild it from the
		// state on the next pass.
		ctl.Forget(sw.ID)
		return fmt.Errorf("commit step: %w", err)
	}
	s.logStep(sw, req, resp)
	if len(req.NewTrials) > 0 || stopsTrial(req) {
		// New pending jobs to place, or stopped trials' cancelled jobs
		// whose capacity is free.
		s.kickScheduler()
	}
	return nil
}

// lateCheckpointWindow is how long after a trial ended the controller still
// looks at its checkpoints: a stopped trial's job is cancelled while its
// last epoch's checkpoint may still be on its way to the store.
const lateCheckpointWindow = 5 * time.Minute

// sweepView is what the controller needs to step sw: the jobs, metric
// reports and checkpoints of its running trials and of those that ended
// within lateCheckpointWindow, from the state store.
func (s *Server) sweepView(sw *structs.Sweep, now time.Time) sweeper.View {
	v := sweeper.View{
		Sweep:       sw,
		Jobs:        make(map[string]*structs.Job),
		Metrics:     make(map[string][]structs.Metric),
		Checkpoints: make(map[string][]*structs.Checkpoint),
	}
	for i := range sw.Trials {
		tr := &sw.Trials[i]
		if tr.State.Terminal() && now.Sub(tr.EndTime) > lateCheckpointWindow {
			continue
		}
		if j, err := s.State().Job(tr.JobID); err == nil {
			v.Jobs[tr.JobID] = j
		}
		v.Metrics[tr.JobID] = s.State().Metrics(tr.JobID)
		v.Checkpoints[tr.JobID] = s.State().Checkpoints(tr.JobID)
	}
	return v
}

// stopsTrial reports whether a step stops a trial early (and so cancels its
// job).
func stopsTrial(req *structs.SweepStepRequest) bool {
	for _, r := range req.Results {
		if r.Decision == tuning.DecisionStop.String() {
			return true
		}
	}
	return false
}

// logStep logs a committed step's decisions that change what runs: trials
// started, stopped and ended, and the sweep's end. Results that let a trial
// go on are logged at Debug only.
func (s *Server) logStep(sw *structs.Sweep, req *structs.SweepStepRequest, resp any) {
	for _, r := range req.Results {
		if r.Decision == tuning.DecisionStop.String() {
			s.log.Info("trial stopped", "sweep", sw.ID, "trial", r.Trial, "budget", r.Budget, "value", r.Value)
		} else {
			s.log.Debug("trial result", "sweep", sw.ID, "trial", r.Trial, "budget", r.Budget, "value", r.Value, "decision", r.Decision)
		}
	}
	for _, e := range req.Ends {
		s.log.Info("trial ended", "sweep", sw.ID, "trial", e.Trial, "state", e.State, "err", e.Error)
	}
	for _, nt := range req.NewTrials {
		s.log.Info("trial started", "sweep", sw.ID, "trial", nt.Number, "job", nt.JobID, "params", nt.Params.String())
	}
	if req.Finish != nil {
		attrs := []any{"sweep", sw.ID, "state", req.Finish.State, "trials", len(sw.Trials) + len(req.NewTrials)}
		if out, ok := resp.(*structs.Sweep); ok && out.Best != nil {
			attrs = append(attrs, "best_trial", out.Best.Trial, "best_value", out.Best.Value, "best_checkpoint", out.Best.Checkpoint)
		}
		if req.Finish.Error != "" {
			attrs = append(attrs, "err", req.Finish.Error)
		}
		s.log.Info("sweep ended", attrs...)
	}
}
