package coordinator

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/trainctl/trainctl/api"
	"github.com/trainctl/trainctl/coordinator/state"
	"github.com/trainctl/trainctl/coordinator/structs"
	"github.com/trainctl/trainctl/dataset"
)

// Jobs is the endpoint of jobs and their checkpoints.
type Jobs struct{ srv *Server }

// JobListRequest is the request of Jobs.List: State, when set, keeps only
// the jobs in that state.
type JobListRequest struct {
	State string
	api.QueryOptions
}

// CheckpointListRequest is the request of Jobs.Checkpoints: JobID, when
// set, keeps only that job's checkpoints.
type CheckpointListRequest struct {
	JobID string
	api.QueryOptions
}

// jobStates returns the states a job list may be filtered by.
func jobStates() []structs.JobState {
	return []structs.JobState{structs.JobPending, structs.JobRunning, structs.JobSucceeded, structs.JobFailed, structs.JobCancelled}
}

// Submit submits a job (POST /v1/jobs): the reply is the new job
// (Created), or the job an earlier request with the same request_id
// created. spec.dataset is resolved against the dataset registry and the
// version id stored on the job; a reference to no registered version is an
// error naming spec.dataset.
func (e *Jobs) Submit(ctx context.Context, id Identity, req *api.SubmitJobBody) (Reply[*api.Job], error) {
	s := e.srv
	return submitOnce(ctx, s, id, ActionJobSubmit, submission[*structs.Job]{
		requestID:    req.RequestID,
		validate:     req.Spec.Validate,
		existing:     s.State().JobByRequestID,
		dataset:      req.Spec.Dataset,
		datasetField: "spec.dataset",
		commit: func(ctx context.Context, jobID, version string) (any, error) {
			return s.raftApply(ctx, structs.JobSubmitRequestType, &structs.JobSubmitRequest{
				JobID: jobID, RequestID: req.RequestID, Spec: structs.NewJobSpec(req.Spec), DatasetVersionID: version, SubmitTime: time.Now().UTC(),
			})
		},
		id:   func(j *structs.Job) string { return j.ID },
		kick: s.kickScheduler,
	}, func(j *structs.Job) *api.Job { return convertPtr(j, apiJob) })
}

// submission describes one kind of idempotent submission (a job, a sweep)
// to submitOnce: its request id, spec check and dataset reference, how to
// find an earlier submission with the same request id, how to commit a new
// one, how to answer it and whom to wake up afterwards.
type submission[T any] struct {
	requestID    string
	validate     func() error
	existing     func(requestID string) (T, error)
	dataset      string
	datasetField string
	commit       func(ctx context.Context, id, datasetVersion string) (any, error)
	id           func(T) string
	kick         func()
}

// submitOnce is the flow every submit endpoint shares: authorize, check the
// request id and the spec (an error naming every bad field), forward to
// the leader, answer an earlier submission with the same request id from
// the state (no new log entry), resolve the dataset reference (an error
// naming its field), commit under a new id, and answer the new object
// (Created) or the one an earlier request created.
func submitOnce[T, A any](ctx context.Context, s *Server, ident Identity, action Action, sub submission[T], conv func(T) A) (Reply[A], error) {
	var zero Reply[A]
	if err := s.authorize(ctx, ident, action); err != nil {
		return zero, err
	}
	if err := checkOptionalID("request_id", api.KindRequestID, sub.requestID); err != nil {
		return zero, err
	}
	if err := sub.validate(); err != nil {
		return zero, fmt.Errorf("spec: %w: %w", structs.ErrInvalid, err)
	}
	if err := s.leaderOnly(ctx); err != nil {
		return zero, err
	}
	if sub.requestID != "" {
		// A retry of a committed submission needs no new log entry.
		if obj, err := sub.existing(sub.requestID); err == nil {
			return reply(conv(obj)), nil
		}
	}
	version, err := s.resolveDataset(sub.dataset)
	if err != nil {
		return zero, fmt.Errorf("%s: %w", sub.datasetField, err)
	}
	newID := newID()
	resp, err := sub.commit(ctx, newID, version)
	if err != nil {
		return zero, err
	}
	sub.kick()
	obj, ok := resp.(T)
	if !ok {
		return zero, fmt.Errorf("unexpected response %T from the state machine", resp)
	}
	return Reply[A]{Value: conv(obj), Created: sub.id(obj) == newID}, nil
}

// List lists jobs in submission order (GET /v1/jobs[?state=S]).
func (e *Jobs) List(ctx context.Context, id Identity, req *JobListRequest) (Reply[[]*api.Job], error) {
	s := e.srv
	if err := s.authorize(ctx, id, ActionJobRead); err != nil {
		return Reply[[]*api.Job]{}, err
	}
	want := structs.JobState(req.State)
	if want != "" && !slices.Contains(jobStates(), want) {
		return Reply[[]*api.Job]{}, fmt.Errorf("state: %w: %q is not a job state (want one of %v)", structs.ErrInvalid, api.Truncate(req.State, 32), jobStates())
	}
	idx := s.waitTables(ctx, req.QueryOptions, state.TableJobs)
	out := []*api.Job{}
	for _, j := range s.State().Jobs() {
		if want == "" || j.State == want {
			out = append(out, convertPtr(j, apiJob))
		}
	}
	return Reply[[]*api.Job]{Value: out, Index: idx}, nil
}

// Get answers one job (GET /v1/jobs/{id}).
func (e *Jobs) Get(ctx context.Context, id Identity, req *ObjectRequest) (Reply[*api.Job], error) {
	s := e.srv
	if err := s.authorize(ctx, id, ActionJobRead); err != nil {
		return Reply[*api.Job]{}, err
	}
	if err := checkID("id", api.KindJob, req.ID); err != nil {
		return Reply[*api.Job]{}, err
	}
	idx := s.waitTables(ctx, req.QueryOptions, state.TableJobs)
	j, err := s.State().Job(req.ID)
	if err != nil {
		return Reply[*api.Job]{Index: idx}, err
	}
	return Reply[*api.Job]{Value: convertPtr(j, apiJob), Index: idx}, nil
}

// Cancel cancels a job (POST /v1/jobs/{id}/cancel) and answers it,
// cancelled (or already finished, which cancelling leaves as it is).
func (e *Jobs) Cancel(ctx context.Context, id Identity, req *ObjectRequest) (Reply[*api.Job], error) {
	s := e.srv
	if err := s.authorize(ctx, id, ActionJobCancel); err != nil {
		return Reply[*api.Job]{}, err
	}
	if err := checkID("id", api.KindJob, req.ID); err != nil {
		return Reply[*api.Job]{}, err
	}
	if err := s.leaderOnly(ctx); err != nil {
		return Reply[*api.Job]{}, err
	}
	// An unknown job is not found without a log entry: nobody may grow
	// the log with made-up ids.
	if _, err := s.State().Job(req.ID); err != nil {
		return Reply[*api.Job]{}, err
	}
	resp, err := s.raftApply(ctx, structs.JobCancelRequestType, &structs.JobCancelRequest{
		JobID: req.ID,
		Time:  time.Now().UTC(),
	})
	if err != nil {
		return Reply[*api.Job]{}, err
	}
	if j, ok := resp.(*structs.Job); ok {
		// A cancelled trial job ends its trial.
		s.kickSweepsFor(j)
	}
	j, err := answer(resp, apiJob)
	return reply(j), err
}

// Checkpoints answers checkpoint records, of one job or of all (GET
// /v1/checkpoints[?job=ID]).
func (e *Jobs) Checkpoints(ctx context.Context, id Identity, req *CheckpointListRequest) (Reply[[]*api.Checkpoint], error) {
	s := e.srv
	if err := s.authorize(ctx, id, ActionCheckpointRead); err != nil {
		return Reply[[]*api.Checkpoint]{}, err
	}
	if err := checkOptionalID("job", api.KindJob, req.JobID); err != nil {
		return Reply[[]*api.Checkpoint]{}, err
	}
	tables := []state.Table{state.TableCheckpoints}
	if req.JobID != "" {
		// The answer depends on the job too (not found until it is
		// there): a change to it must end the wait.
		tables = append(tables, state.TableJobs)
	}
	idx := s.waitTables(ctx, req.QueryOptions, tables...)
	if req.JobID != "" {
		if _, err := s.State().Job(req.JobID); err != nil {
			return Reply[[]*api.Checkpoint]{Index: idx}, fmt.Errorf("job: %w", err)
		}
	}
	out := convertPtrs(s.State().Checkpoints(req.JobID), apiCheckpoint)
	return Reply[[]*api.Checkpoint]{Value: out, Index: idx}, nil
}

// resolveDataset returns the id of the registered dataset version a
// NAME[@VERSION] reference names: the newest for NAME and NAME@latest, seq N
// for NAME@vN, the only version whose id starts with the prefix for
// NAME@<hex>. Errors wrap structs.ErrInvalid.
func (s *Server) resolveDataset(ref string) (string, error) {
	r, err := dataset.ParseRef(ref)
	if err != nil {
		return "", fmt.Errorf("%w: %w", structs.ErrInvalid, err)
	}
	versions := s.State().DatasetVersions(r.Name)
	var match []*structs.DatasetVersion
	for _, v := range versions {
		if r.Seq == v.Seq || r.Prefix != "" && strings.HasPrefix(v.ID, r.Prefix) {
			match = append(match, v)
		}
	}
	if r.Latest && len(versions) > 0 {
		match = versions[len(versions)-1:]
	}
	switch len(match) {
	case 0:
		return "", fmt.Errorf("%w: %q names no registered dataset version (%d versions of %q)", structs.ErrInvalid, ref, len(versions), r.Name)
	case 1:
		return match[0].ID, nil
	}
	return "", fmt.Errorf("%w: %q is ambiguous: %d versions of %q have ids starting so", structs.ErrInvalid, ref, len(match), r.Name)
}
