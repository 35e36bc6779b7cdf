package state

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/trainctl/trainctl/coordinator/structs"
)

// Garbage collection: the leader picks what to collect (Plan) and commits
// it; the write methods below apply it on every server alike. What goes:
//
//   - a terminal job past its retention, once its sweep (if any) has ended:
//     its record, metric reports and request id; a JobSummary stays;
//   - a terminal sweep past its retention: its record and request id; a
//     SweepSummary stays;
//   - a checkpoint whose job is gone and that no model, job or sweep
//     refers to: its record, and its blob on every coordinator;
//   - a dataset version a user removed (DatasetRemoveRequest), unless a
//     job that is not terminal, or a running sweep, uses it.
//
// Summaries are bounded by a count the leader puts into each command.

// gcTables is the part of the state garbage collection leaves behind.
type gcTables struct {
	jobSummaries   map[string]*structs.JobSummary
	sweepSummaries map[string]*structs.SweepSummary
}

func newGCTables() gcTables {
	return gcTables{
		jobSummaries:   make(map[string]*structs.JobSummary),
		sweepSummaries: make(map[string]*structs.SweepSummary),
	}
}

// RemovedFunc is called after a command removed blobs or dataset versions,
// outside the store's lock, with the FSM's response; a server deletes the
// blobs from its artifact store. It must not block for long: the FSM waits.
type RemovedFunc func(*structs.GCResponse)

// OnRemoved sets the function called after a command removed blobs or
// dataset versions (nil for none).
func (s *Store) OnRemoved(f RemovedFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onRemoved = f
}

// notifyRemoved calls the OnRemoved function when resp removed something
// with artifacts. Callers do not hold the lock.
func (s *Store) notifyRemoved(resp *structs.GCResponse) {
	s.mu.RLock()
	f := s.onRemoved
	s.mu.RUnlock()
	if f != nil && (len(resp.Blobs) > 0 || len(resp.Datasets) > 0) {
		f(resp)
	}
}

// Policy is what the leader's garbage collection keeps.
type Policy struct {
	// JobRetention and SweepRetention are how long a terminal job or sweep
	// stays after it ended (its last change).
	JobRetention   time.Duration
	SweepRetention time.Duration
	// MaxPerCommand bounds the ids of one command (0: no bound).
	MaxPerCommand int
}

// Plan is what one garbage collection pass collects, each list sorted.
type Plan struct {
	Jobs        []string
	Sweeps      []string
	Checkpoints []string
}

// Empty reports whether the plan collects nothing.
func (p Plan) Empty() bool {
	return len(p.Jobs) == 0 && len(p.Sweeps) == 0 && len(p.Checkpoints) == 0
}

// Plan returns what garbage collection may collect at now under policy: a
// function of the state alone, so every server would pick the same. The
// checkpoints are those collectable once the planned jobs are gone.
func (s *Store) Plan(now time.Time, p Policy) Plan {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var plan Plan
	for id, sw := range s.t.sweeps {
		if sw.State.Terminal() && !sw.EndTime.IsZero() && now.Sub(sw.EndTime) >= p.SweepRetention {
			plan.Sweeps = append(plan.Sweeps, id)
		}
	}
	gone := make(map[string]bool)
	for id, j := range s.t.jobs {
		if !j.State.Terminal() || now.Sub(j.ModifyTime) < p.JobRetention {
			continue
		}
		if sw, ok := s.t.sweeps[j.SweepID]; ok && !sw.State.Terminal() {
			continue // the controller still reads its trials' jobs
		}
		plan.Jobs = append(plan.Jobs, id)
		gone[id] = true
	}
	refs := s.checkpointRefsLocked(gone)
	for dg, c := range s.t.checkpoints {
		if _, live := s.t.jobs[c.JobID]; (!live || gone[c.JobID]) && !refs[dg] {
			plan.Checkpoints = append(plan.Checkpoints, dg)
		}
	}
	slices.Sort(plan.Jobs)
	slices.Sort(plan.Sweeps)
	slices.Sort(plan.Checkpoints)
	if n := p.MaxPerCommand; n > 0 {
		plan.Jobs = plan.Jobs[:min(n, len(plan.Jobs))]
		plan.Sweeps = plan.Sweeps[:min(n, len(plan.Sweeps))]
		plan.Checkpoints = plan.Checkpoints[:min(n, len(plan.Checkpoints))]
	}
	return plan
}

// checkpointRefsLocked returns the checkpoint digests something in the state
// refers to: models, sweeps' trials and best, and the latest checkpoint and
// resume points of jobs other than those in except. A job's own checkpoints
// are kept by its existence (see Plan and collectCheckpoints). Callers hold
// the lock.
func (s *Store) checkpointRefsLocked(except map[string]bool) map[string]bool {
	refs := make(map[string]bool)
	for _, vs := range s.t.models {
		for _, m := range vs {
			refs[m.Checkpoint] = true
		}
	}
	for _, sw := range s.t.sweeps {
		for _, t := range sw.Trials {
			if t.BestCheckpoint != "" {
				refs[t.BestCheckpoint] = true
			}
		}
		if sw.Best != nil && sw.Best.Checkpoint != "" {
			refs[sw.Best.Checkpoint] = true
		}
	}
	for id, j := range s.t.jobs {
		if except[id] {
			continue
		}
		if j.LatestCheckpoint != "" {
			refs[j.LatestCheckpoint] = true
		}
		for _, a := range j.Attempts {
			if a.ResumeFrom != "" {
				refs[a.ResumeFrom] = true
			}
		}
	}
	delete(refs, "")
	return refs
}

func (s *Store) progressJob(index uint64, req *structs.JobProgressRequest) (*structs.Job, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.t.jobs[req.JobID]
	if !ok {
		return nil, fmt.Errorf("job %q progress: %w", req.JobID, structs.ErrNotFound)
	}
	if req.Attempt < len(old.Attempts) {
		return old, nil // a late report of an earlier attempt
	}
	j := old.Copy()
	j.Progress = structs.Progress{Step: req.Step, Epoch: req.Epoch, Metrics: req.Metrics}
	s.touchJob(index, j, req.Time)
	return j, nil
}

func (s *Store) collectJobs(index uint64, req *structs.JobsGCRequest) (*structs.GCResponse, error) {
	if req.SummaryLimit < 0 {
		return nil, fmt.Errorf("collect jobs: summary_limit: %w: negative", structs.ErrInvalid)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	resp := &structs.GCResponse{}
	for _, id := range req.JobIDs {
		j, ok := s.t.jobs[id]
		if !ok || !j.State.Terminal() {
			continue
		}
		s.t.gc.jobSummaries[id] = &structs.JobSummary{
			ID: j.ID, Name: j.Spec.Name, SweepID: j.SweepID, Trial: j.Trial, State: j.State, Error: j.Error,
			Attempts: len(j.Attempts), Restarts: j.Restarts, Progress: j.Progress, LatestCheckpoint: j.LatestCheckpoint,
			SubmitTime: j.SubmitTime, EndTime: j.ModifyTime, CollectTime: req.Time, CollectIndex: index,
		}
		delete(s.t.jobs, id)
		if j.RequestID != "" && s.t.jobsByRequest[j.RequestID] == id {
			delete(s.t.jobsByRequest, j.RequestID)
		}
		delete(s.t.metrics, id)
		resp.Removed = append(resp.Removed, id)
	}
	trimSummaries(s.t.gc.jobSummaries, req.SummaryLimit, func(v *structs.JobSummary) (time.Time, string) { return v.EndTime, v.ID })
	s.changed(index, TableJobs, TableMetrics)
	return resp, nil
}

func (s *Store) collectSweeps(index uint64, req *structs.SweepsGCRequest) (*structs.GCResponse, error) {
	if req.SummaryLimit < 0 {
		return nil, fmt.Errorf("collect sweeps: summary_limit: %w: negative", structs.ErrInvalid)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	resp := &structs.GCResponse{}
	for _, id := range req.SweepIDs {
		sw, ok := s.t.sweeps[id]
		if !ok || !sw.State.Terminal() {
			continue
		}
		var best *structs.SweepBest
		if sw.Best != nil {
			b := *sw.Best
			best = &b
		}
		s.t.gc.sweepSummaries[id] = &structs.SweepSummary{
			ID: sw.ID, Name: sw.Spec.Name, State: sw.State, Error: sw.Error, Trials: len(sw.Trials), Best: best,
			SubmitTime: sw.SubmitTime, EndTime: sw.EndTime, CollectTime: req.Time, CollectIndex: index,
		}
		delete(s.t.sweeps, id)
		if sw.RequestID != "" && s.t.sweepsByRequest[sw.RequestID] == id {
			delete(s.t.sweepsByRequest, sw.RequestID)
		}
		resp.Removed = append(resp.Removed, id)
	}
	trimSummaries(s.t.gc.sweepSummaries, req.SummaryLimit, func(v *structs.SweepSummary) (time.Time, string) { return v.EndTime, v.ID })
	s.changed(index, TableSweeps)
	return resp, nil
}

// trimSummaries drops the summaries beyond limit (0: none), those that
// ended first (then by id) first.
func trimSummaries[V any](m map[string]*V, limit int, key func(*V) (time.Time, string)) {
	if limit <= 0 || len(m) <= limit {
		return
	}
	all := slices.Collect(maps.Values(m))
	slices.SortFunc(all, func(a, b *V) int {
		ta, ia := key(a)
		tb, ib := key(b)
		return cmp.Or(ta.Compare(tb), cmp.Compare(ia, ib))
	})
	for _, v := range all[:len(all)-limit] {
		_, id := key(v)
		delete(m, id)
	}
}

func (s *Store) collectCheckpoints(index uint64, req *structs.CheckpointsGCRequest) (*structs.GCResponse, error) {
	resp := &structs.GCResponse{}
	defer s.notifyRemoved(resp)
	s.mu.Lock()
	defer s.mu.Unlock()
	refs := s.checkpointRefsLocked(nil)
	datasetBlobs := s.datasetBlobsLocked()
	for _, dg := range req.Digests {
		c, ok := s.t.checkpoints[dg]
		if !ok || refs[dg] {
			continue
		}
		if _, live := s.t.jobs[c.JobID]; live {
			continue
		}
		delete(s.t.checkpoints, dg)
		if rest := slices.DeleteFunc(slices.Clone(s.t.jobCheckpoints[c.JobID]), func(d string) bool { return d == dg }); len(rest) > 0 {
			s.t.jobCheckpoints[c.JobID] = rest
		} else {
			delete(s.t.jobCheckpoints, c.JobID)
		}
		resp.Removed = append(resp.Removed, dg)
		if !datasetBlobs[dg] {
			resp.Blobs = append(resp.Blobs, dg)
		}
	}
	s.changed(index, TableCheckpoints)
	return resp, nil
}

// datasetBlobsLocked returns the blob digests of the registered dataset
// versions. Callers hold the lock.
func (s *Store) datasetBlobsLocked() map[string]bool {
	out := make(map[string]bool)
	for _, vs := range s.t.datasets {
		for _, v := range vs {
			if v.Blob != "" {
				out[v.Blob] = true
			}
		}
	}
	return out
}

// DatasetUsers returns the ids of the jobs that are not terminal and of the
// running sweeps that use dataset version id, sorted: what keeps it from
// being removed.
func (s *Store) DatasetUsers(id string) (jobs, sweeps []string) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.datasetUsersLocked(id)
}

func (s *Store) datasetUsersLocked(id string) (jobs, sweeps []string) {
	for _, j := range s.t.jobs {
		if j.DatasetVersionID == id && !j.State.Terminal() {
			jobs = append(jobs, j.ID)
		}
	}
	for _, sw := range s.t.sweeps {
		if sw.DatasetVersionID == id && !sw.State.Terminal() {
			sweeps = append(sweeps, sw.ID)
		}
	}
	slices.Sort(jobs)
	slices.Sort(sweeps)
	return jobs, sweeps
}

func (s *Store) removeDataset(index uint64, req *structs.DatasetRemoveRequest) (*structs.GCResponse, error) {
	resp := &structs.GCResponse{}
	defer s.notifyRemoved(resp)
	s.mu.Lock()
	defer s.mu.Unlock()
	versions := s.t.datasets[req.Name]
	i := slices.IndexFunc(versions, func(v *structs.DatasetVersion) bool { return v.ID == req.ID })
	if i < 0 {
		return nil, fmt.Errorf("remove dataset %s version %s: %w", req.Name, req.ID, structs.ErrNotFound)
	}
	if jobs, sweeps := s.datasetUsersLocked(req.ID); len(jobs) > 0 || len(sweeps) > 0 {
		return nil, fmt.Errorf("remove dataset %s version %s: %w: in use by jobs %v and sweeps %v; cancel them or wait until they end",
			req.Name, req.ID, structs.ErrConflict, jobs, sweeps)
	}
	v := versions[i]
	if rest := slices.Delete(slices.Clone(versions), i, i+1); len(rest) > 0 {
		s.t.datasets[req.Name] = rest
	} else {
		delete(s.t.datasets, req.Name)
	}
	resp.Removed = []string{v.ID}
	resp.Datasets = []*structs.DatasetVersion{v}
	if v.Blob != "" && !s.datasetBlobsLocked()[v.Blob] {
		if _, isCheckpoint := s.t.checkpoints[v.Blob]; !isCheckpoint {
			resp.Blobs = []string{v.Blob}
		}
	}
	s.changed(index, TableDatasets)
	return resp, nil
}

// JobSummary returns the summary of a collected job, or an error wrapping
// structs.ErrNotFound.
func (s *Store) JobSummary(id string) (*structs.JobSummary, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	v, ok := s.t.gc.jobSummaries[id]
	if !ok {
		return nil, fmt.Errorf("job summary %q: %w", id, structs.ErrNotFound)
	}
	return v, nil
}

// JobSummaries returns the summaries of collected jobs, by end time and id.
func (s *Store) JobSummaries() []*structs.JobSummary {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return sortedSummaries(s.t.gc.jobSummaries, func(v *structs.JobSummary) (time.Time, string) { return v.EndTime, v.ID })
}

// SweepSummaries returns the summaries of collected sweeps, by end time and
// id.
func (s *Store) SweepSummaries() []*structs.SweepSummary {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return sortedSummaries(s.t.gc.sweepSummaries, func(v *structs.SweepSummary) (time.Time, string) { return v.EndTime, v.ID })
}

func sortedSummaries[V any](m map[string]*V, key func(*V) (time.Time, string)) []*V {
	out := slices.Collect(maps.Values(m))
	slices.SortFunc(out, func(a, b *V) int {
		ta, ia := key(a)
		tb, ib := key(b)
		return cmp.Or(ta.Compare(tb), cmp.Compare(ia, ib))
	})
	return out
}

// captureGC adds the summaries to a snapshot. Callers hold the lock.
func (s *Store) captureGC(d *snapshotData) {
	d.JobSummaries = sortedSummaries(s.t.gc.jobSummaries, func(v *structs.JobSummary) (time.Time, string) { return v.EndTime, v.ID })
	d.SweepSummaries = sortedSummaries(s.t.gc.sweepSummaries, func(v *structs.SweepSummary) (time.Time, string) { return v.EndTime, v.ID })
}

// restoreGC rebuilds the summaries from a snapshot.
func restoreGC(t *tables, d *snapshotData) {
	for _, v := range d.JobSummaries {
		t.gc.jobSummaries[v.ID] = v
	}
	for _, v := range d.SweepSummaries {
		t.gc.sweepSummaries[v.ID] = v
	}
}

// nextSeq is the seq of a new version of a name: one past the last, so a
// seq stays unique after a version was removed. Without removals it is
// len(versions)+1, as it always was.
func nextSeq(versions []*structs.DatasetVersion) int {
	if len(versions) == 0 {
		return 1
	}
	return versions[len(versions)-1].Seq + 1
}
