package state

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/trainctl/trainctl/coordinator/structs"
	"github.com/trainctl/trainctl/tuning"
)

// Sweeps and the model registry. The sweep controller (on the leader) drives
// a sweep with SweepStep commands; everything a step changes (the sweep, its
// trials, the jobs it creates or cancels, the model version a finished sweep
// registers) changes in that one entry, so replaying the log rebuilds the
// same sweep. As for the other writes, a command is checked whole before
// anything changes, and changed objects are replaced, never edited.

// Sweep returns the sweep with the given id, or an error wrapping
// structs.ErrNotFound.
func (s *Store) Sweep(id string) (*structs.Sweep, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	sw, ok := s.t.sweeps[id]
	if !ok {
		return nil, fmt.Errorf("sweep %q: %w", id, structs.ErrNotFound)
	}
	return sw, nil
}

// SweepByRequestID returns the sweep submitted with the given client request
// id (the idempotency key of sweep submission), or an error wrapping
// structs.ErrNotFound.
func (s *Store) SweepByRequestID(requestID string) (*structs.Sweep, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	id, ok := s.t.sweepsByRequest[requestID]
	if !ok {
		return nil, fmt.Errorf("sweep with request id %q: %w", requestID, structs.ErrNotFound)
	}
	return s.t.sweeps[id], nil
}

// Sweeps returns all sweeps in submission order (create index, then id).
func (s *Store) Sweeps() []*structs.Sweep {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return sortedSweeps(s.t.sweeps)
}

func sortedSweeps(m map[string]*structs.Sweep) []*structs.Sweep {
	out := slices.Collect(maps.Values(m))
	slices.SortFunc(out, func(a, b *structs.Sweep) int {
		return cmp.Or(cmp.Compare(a.CreateIndex, b.CreateIndex), cmp.Compare(a.ID, b.ID))
	})
	return out
}

// ModelVersions returns the versions of one model name in version order, or
// of all names ordered by name and then version when name is empty.
func (s *Store) ModelVersions(name string) []*structs.ModelVersion {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if name != "" {
		return slices.Clone(s.t.models[name])
	}
	var out []*structs.ModelVersion
	for _, n := range slices.Sorted(maps.Keys(s.t.models)) {
		out = append(out, s.t.models[n]...)
	}
	return out
}

// Model returns the newest version of a named model (what `trainctl serve
// --model NAME` serves), or an error wrapping structs.ErrNotFound.
func (s *Store) Model(name string) (*structs.ModelVersion, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	vs := s.t.models[name]
	if len(vs) == 0 {
		return nil, fmt.Errorf("model %q: %w", name, structs.ErrNotFound)
	}
	return vs[len(vs)-1], nil
}

func (s *Store) submitSweep(index uint64, req *structs.SweepSubmitRequest) (*structs.Sweep, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if req.RequestID != "" {
		if id, ok := s.t.sweepsByRequest[req.RequestID]; ok {
			return s.t.sweeps[id], nil
		}
	}
	if req.SweepID == "" {
		return nil, fmt.Errorf("submit sweep: sweep_id: %w: required", structs.ErrInvalid)
	}
	if _, ok := s.t.sweeps[req.SweepID]; ok {
		return nil, fmt.Errorf("submit sweep %q: %w: id exists", req.SweepID, structs.ErrConflict)
	}
	// The endpoint validated the spec; the state needs only the name, which
	// a completed sweep registers its best checkpoint under.
	if req.Spec.Name == "" {
		return nil, fmt.Errorf("submit sweep %q: spec.name: %w: required", req.SweepID, structs.ErrInvalid)
	}
	sw := &structs.Sweep{
		ID:               req.SweepID,
		RequestID:        req.RequestID,
		Spec:             req.Spec,
		DatasetVersionID: req.DatasetVersionID,
		State:            structs.SweepRunning,
		SubmitTime:       req.SubmitTime,
		ModifyTime:       req.SubmitTime,
		CreateIndex:      index,
		ModifyIndex:      index,
	}
	s.t.sweeps[sw.ID] = sw
	if sw.RequestID != "" {
		s.t.sweepsByRequest[sw.RequestID] = sw.ID
	}
	s.changed(index, TableSweeps)
	return sw, nil
}

// stepSweep applies one pass of the sweep controller in the order
// SweepStepRequest documents. It works on a copy of the sweep and collects
// the jobs to cancel and create and the model version to register; only
// when every part has passed does it store them.
func (s *Store) stepSweep(index uint64, req *structs.SweepStepRequest) (*structs.Sweep, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.t.sweeps[req.SweepID]
	if !ok {
		return nil, fmt.Errorf("step sweep %q: %w", req.SweepID, structs.ErrNotFound)
	}
	if old.State.Terminal() {
		return nil, fmt.Errorf("step sweep %q: %w: sweep is %s", req.SweepID, structs.ErrConflict, old.State)
	}
	bad := func(field string, sentinel error, format string, args ...any) error {
		return fmt.Errorf("step sweep %q: %s: %w: %s", req.SweepID, field, sentinel, fmt.Sprintf(format, args...))
	}
	sw := old.Copy()
	trial := func(n int) *structs.Trial {
		if n < 0 || n >= len(sw.Trials) {
			return nil
		}
		return &sw.Trials[n]
	}
	var cancel []string // jobs of trials that stopped or completed early
	steps := sw.Spec.Budget.Unit == tuning.UnitSteps
	maximize := sw.Spec.Objective.Mode == tuning.Maximize

	for i, r := range req.Results {
		field := fmt.Sprintf("results[%d]", i)
		tr := trial(r.Trial)
		switch {
		case tr == nil:
			return nil, bad(field+".trial", structs.ErrInvalid, "trial %d does not exist", r.Trial)
		case !knownDecision(r.Decision):
			return nil, bad(field+".decision", structs.ErrInvalid, "%q is not one of continue, promote, stop, complete", r.Decision)
		case r.NonFinite && r.Value != 0:
			return nil, bad(field+".value", structs.ErrInvalid, "a non-finite result is recorded as 0, got %v", r.Value)
		case tr.State != structs.TrialRunning:
			return nil, bad(field+".trial", structs.ErrConflict, "trial %d is %s", r.Trial, tr.State)
		case r.Budget <= tr.Budget:
			return nil, bad(field+".budget", structs.ErrConflict, "%d does not exceed trial %d's budget %d", r.Budget, r.Trial, tr.Budget)
		}
		sw.Results = append(sw.Results, r)
		tr.Budget = r.Budget
		tr.LastValue = r.Value
		tr.HasValue = true
		tr.Decision = r.Decision
		// Budgets start above 0, so BestBudget 0 means no finite result yet.
		if !r.NonFinite && (tr.BestBudget == 0 || better(maximize, r.Value, tr.BestValue)) {
			tr.BestValue, tr.BestBudget = r.Value, r.Budget
		}
		switch {
		case r.Decision == tuning.DecisionStop.String():
			tr.State = structs.TrialStopped
		case r.Decision == tuning.DecisionComplete.String() && steps:
			// The trial reached its step budget; with epochs its job ends
			// by itself and a TrialEnd completes the trial.
			tr.State = structs.TrialCompleted
		default:
			continue
		}
		tr.EndTime = req.Time
		cancel = append(cancel, tr.JobID)
	}

	for i, e := range req.Ends {
		field := fmt.Sprintf("ends[%d]", i)
		tr := trial(e.Trial)
		switch {
		case tr == nil:
			return nil, bad(field+".trial", structs.ErrInvalid, "trial %d does not exist", e.Trial)
		case e.State != structs.TrialCompleted && e.State != structs.TrialFailed && e.State != structs.TrialCancelled:
			return nil, bad(field+".state", structs.ErrInvalid, "%q is not one of completed, failed, cancelled", e.State)
		case tr.State != structs.TrialRunning:
			return nil, bad(field+".trial", structs.ErrConflict, "trial %d is %s", e.Trial, tr.State)
		}
		tr.State = e.State
		tr.Error = e.Error
		tr.EndTime = req.Time
	}

	for i, c := range req.Checkpoints {
		field := fmt.Sprintf("checkpoints[%d]", i)
		tr := trial(c.Trial)
		if tr == nil {
			return nil, bad(field+".trial", structs.ErrInvalid, "trial %d does not exist", c.Trial)
		}
		if err := s.checkTrialCheckpoint(c.Checkpoint, tr.JobID); err != nil {
			return nil, bad(field+".checkpoint", structs.ErrInvalid, "%s", err)
		}
		tr.BestCheckpoint = c.Checkpoint
		tr.BestCheckpointValue = c.Value
	}

	var jobs []*structs.Job
	for i, nt := range req.NewTrials {
		field := fmt.Sprintf("new_trials[%d]", i)
		switch {
		case nt.Number != len(sw.Trials):
			return nil, bad(field+".number", structs.ErrConflict, "%d, want %d", nt.Number, len(sw.Trials))
		case nt.Number >= sw.Spec.MaxTrials:
			return nil, bad(field+".number", structs.ErrConflict, "%d is past max_trials %d", nt.Number, sw.Spec.MaxTrials)
		case sw.Exhausted:
			return nil, bad(field, structs.ErrConflict, "the sweep's search space is exhausted")
		case nt.JobID == "":
			return nil, bad(field+".job_id", structs.ErrInvalid, "required")
		case s.t.jobs[nt.JobID] != nil || slices.ContainsFunc(jobs, func(j *structs.Job) bool { return j.ID == nt.JobID }):
			return nil, bad(field+".job_id", structs.ErrConflict, "job %q exists", nt.JobID)
		case nt.ResultsSeen < 0 || nt.ResultsSeen > len(sw.Results):
			return nil, bad(field+".results_seen", structs.ErrInvalid, "%d is outside 0..%d", nt.ResultsSeen, len(sw.Results))
		}
		sw.Trials = append(sw.Trials, structs.Trial{
			Number:      nt.Number,
			Params:      nt.Params,
			JobID:       nt.JobID,
			ResultsSeen: nt.ResultsSeen,
			State:       structs.TrialRunning,
			StartTime:   req.Time,
		})
		jobs = append(jobs, &structs.Job{
			ID:               nt.JobID,
			Spec:             nt.Job,
			DatasetVersionID: sw.DatasetVersionID,
			SweepID:          sw.ID,
			Trial:            nt.Number,
			State:            structs.JobPending,
			SubmitTime:       req.Time,
			ModifyTime:       req.Time,
			CreateIndex:      index,
			ModifyIndex:      index,
		})
	}

	if b := req.Best; b != nil {
		tr := trial(b.Trial)
		switch {
		case tr == nil:
			return nil, bad("best.trial", structs.ErrInvalid, "trial %d does not exist", b.Trial)
		case tr.JobID != b.JobID:
			return nil, bad("best.job_id", structs.ErrInvalid, "%q is not the job of trial %d (%q)", b.JobID, b.Trial, tr.JobID)
		}
		if err := s.checkTrialCheckpoint(b.Checkpoint, b.JobID); err != nil {
			return nil, bad("best.checkpoint", structs.ErrInvalid, "%s", err)
		}
		best := *b
		sw.Best = &best
	}

	sw.Exhausted = sw.Exhausted || req.Exhausted

	var model *structs.ModelVersion
	if f := req.Finish; f != nil {
		switch {
		case f.State != structs.SweepCompleted && f.State != structs.SweepFailed:
			return nil, bad("finish.state", structs.ErrInvalid, "%q is not one of completed, failed", f.State)
		case sw.RunningTrials() > 0:
			return nil, bad("finish", structs.ErrConflict, "%d trials are still running", sw.RunningTrials())
		}
		sw.State = f.State
		sw.Error = f.Error
		sw.EndTime = req.Time
		vs := s.t.models[sw.Spec.Name]
		// As registerModel: a latest version with this checkpoint already
		// (registered by hand from the running sweep) gets no twin.
		if f.State == structs.SweepCompleted && sw.Best != nil && (len(vs) == 0 || vs[len(vs)-1].Checkpoint != sw.Best.Checkpoint) {
			model = &structs.ModelVersion{
				Name:        sw.Spec.Name,
				Version:     len(s.t.models[sw.Spec.Name]) + 1,
				Checkpoint:  sw.Best.Checkpoint,
				JobID:       sw.Best.JobID,
				SweepID:     sw.ID,
				Metric:      sw.Spec.Objective.Metric,
				Value:       sw.Best.Value,
				CreateTime:  req.Time,
				CreateIndex: index,
			}
		}
	}

	// Every part fits: store the results.
	for _, id := range cancel {
		if j, ok := s.t.jobs[id]; ok && !j.State.Terminal() {
			s.cancelJobLocked(index, j, req.Time)
		}
	}
	for _, j := range jobs {
		s.t.jobs[j.ID] = j
	}
	if model != nil {
		s.t.models[model.Name] = append(s.t.models[model.Name], model)
	}
	sw.ModifyIndex = index
	sw.ModifyTime = req.Time
	s.t.sweeps[sw.ID] = sw
	s.changed(index, TableSweeps, TableJobs, TableModels)
	return sw, nil
}

// knownDecision reports whether name is the name of a tuning.Decision.
func knownDecision(name string) bool {
	switch name {
	case tuning.DecisionContinue.String(), tuning.DecisionPromote.String(),
		tuning.DecisionStop.String(), tuning.DecisionComplete.String():
		return true
	}
	return false
}

// better reports whether objective value v beats best.
func better(maximize bool, v, best float64) bool {
	if maximize {
		return v > best
	}
	return v < best
}

// checkTrialCheckpoint checks that digest is a registered checkpoint of job
// jobID. Callers hold the lock.
func (s *Store) checkTrialCheckpoint(digest, jobID string) error {
	c, ok := s.t.checkpoints[digest]
	switch {
	case digest == "":
		return errors.New("required")
	case !ok:
		return fmt.Errorf("checkpoint %q is not registered", digest)
	case c.JobID != jobID:
		return fmt.Errorf("checkpoint %q belongs to job %q, not %q", digest, c.JobID, jobID)
	}
	return nil
}

func (s *Store) cancelSweep(index uint64, req *structs.SweepCancelRequest) (*structs.Sweep, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.t.sweeps[req.SweepID]
	if !ok {
		return nil, fmt.Errorf("cancel sweep %q: %w", req.SweepID, structs.ErrNotFound)
	}
	if old.State.Terminal() {
		return old, nil
	}
	sw := old.Copy()
	for i := range sw.Trials {
		tr := &sw.Trials[i]
		if tr.State != structs.TrialRunning {
			continue
		}
		tr.State = structs.TrialCancelled
		tr.EndTime = req.Time
		if j, ok := s.t.jobs[tr.JobID]; ok && !j.State.Terminal() {
			s.cancelJobLocked(index, j, req.Time)
		}
	}
	sw.State = structs.SweepCancelled
	sw.EndTime = req.Time
	sw.ModifyIndex = index
	sw.ModifyTime = req.Time
	s.t.sweeps[sw.ID] = sw
	s.changed(index, TableSweeps, TableJobs)
	return sw, nil
}

// registerModel applies a ModelRegister entry: the next version of the
// named model, or, when the model's latest version already has the
// checkpoint, that version unchanged (its CreateTime, not req.Time, tells
// the caller so). Checking that here rather than only in the API makes
// concurrent or retried registrations of one checkpoint add one version.
func (s *Store) registerModel(index uint64, req *structs.ModelRegisterRequest) (*structs.ModelVersion, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// The endpoint checked the name by tuning.CheckModelName.
	if req.Name == "" {
		return nil, fmt.Errorf("register model: name: %w: required", structs.ErrInvalid)
	}
	if req.Checkpoint == "" {
		return nil, fmt.Errorf("register model %q: checkpoint: %w: required", req.Name, structs.ErrInvalid)
	}
	c, ok := s.t.checkpoints[req.Checkpoint]
	if !ok {
		return nil, fmt.Errorf("register model %q: checkpoint %q: %w", req.Name, req.Checkpoint, structs.ErrNotFound)
	}
	jobID := cmp.Or(req.JobID, c.JobID)
	if jobID != c.JobID {
		return nil, fmt.Errorf("register model %q: job_id: %w: checkpoint %q belongs to job %q, not %q",
			req.Name, structs.ErrInvalid, req.Checkpoint, c.JobID, req.JobID)
	}
	if req.SweepID != "" {
		if _, ok := s.t.sweeps[req.SweepID]; !ok {
			return nil, fmt.Errorf("register model %q: sweep %q: %w", req.Name, req.SweepID, structs.ErrNotFound)
		}
	}
	versions := s.t.models[req.Name]
	if n := len(versions); n > 0 && versions[n-1].Checkpoint == req.Checkpoint {
		return versions[n-1], nil
	}
	m := &structs.ModelVersion{
		Name:        req.Name,
		Version:     len(versions) + 1,
		Checkpoint:  req.Checkpoint,
		JobID:       jobID,
		SweepID:     req.SweepID,
		Metric:      req.Metric,
		Value:       req.Value,
		CreateTime:  req.Time,
		CreateIndex: index,
	}
	s.t.models[req.Name] = append(versions, m)
	s.changed(index, TableModels)
	return m, nil
}
