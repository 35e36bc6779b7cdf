package coordinator

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/trainctl/trainctl/api"
	"github.com/trainctl/trainctl/coordinator/state"
	"github.com/trainctl/trainctl/coordinator/structs"
	"github.com/trainctl/trainctl/coordinator/sweeper"
	"github.com/trainctl/trainctl/tuning"
)

// Sweeps is the endpoint of hyperparameter sweeps.
type Sweeps struct{ srv *Server }

// SweepListRequest is the request of Sweeps.List: State, when set, keeps
// only the sweeps in that state.
type SweepListRequest struct {
	State string
	api.QueryOptions
}

// sweepStates returns the states a sweep list may be filtered by.
func sweepStates() []structs.SweepState {
	return []structs.SweepState{structs.SweepRunning, structs.SweepCompleted, structs.SweepCancelled, structs.SweepFailed}
}

// Submit submits a sweep (POST /v1/sweeps): the reply is the new sweep
// (Created), or the sweep an earlier request with the same request_id
// created. The spec is validated (an error naming every bad field) and
// spec.job.dataset resolved as a job's spec.dataset is: every trial trains
// on that version. The sweep starts with no trials; the leader's sweep
// controller suggests them (sweep.go).
func (e *Sweeps) Submit(ctx context.Context, id Identity, req *api.SubmitSweepBody) (Reply[*api.Sweep], error) {
	s := e.srv
	return submitOnce(ctx, s, id, ActionSweepSubmit, submission[*structs.Sweep]{
		requestID:    req.RequestID,
		validate:     req.Spec.Validate,
		existing:     s.State().SweepByRequestID,
		dataset:      req.Spec.Job.Dataset,
		datasetField: "spec.job.dataset",
		commit: func(ctx context.Context, sweepID, version string) (any, error) {
			return s.raftApply(ctx, structs.SweepSubmitRequestType, &structs.SweepSubmitRequest{
				SweepID: sweepID, RequestID: req.RequestID, Spec: structs.NewSweepSpec(req.Spec.Normalized()), DatasetVersionID: version, SubmitTime: time.Now().UTC(),
			})
		},
		id:   func(sw *structs.Sweep) string { return sw.ID },
		kick: s.kickSweeps,
	}, func(sw *structs.Sweep) *api.Sweep { return convertPtr(sw, apiSweep) })
}

// List lists sweeps in submission order (GET /v1/sweeps[?state=S]).
func (e *Sweeps) List(ctx context.Context, id Identity, req *SweepListRequest) (Reply[[]*api.Sweep], error) {
	s := e.srv
	if err := s.authorize(ctx, id, ActionSweepRead); err != nil {
		return Reply[[]*api.Sweep]{}, err
	}
	want := structs.SweepState(req.State)
	if want != "" && !slices.Contains(sweepStates(), want) {
		return Reply[[]*api.Sweep]{}, fmt.Errorf("state: %w: %q is not a sweep state (want one of %v)", structs.ErrInvalid, api.Truncate(req.State, 32), sweepStates())
	}
	idx := s.waitTables(ctx, req.QueryOptions, state.TableSweeps)
	out := []*api.Sweep{}
	for _, sw := range s.State().Sweeps() {
		if want == "" || sw.State == want {
			out = append(out, convertPtr(sw, apiSweep))
		}
	}
	return Reply[[]*api.Sweep]{Value: out, Index: idx}, nil
}

// sweep is the common start of the reads of one sweep: authorize, check
// the id, wait as a blocking query says when wait is set, and read.
func (e *Sweeps) sweep(ctx context.Context, id Identity, req *ObjectRequest, wait bool) (*structs.Sweep, uint64, error) {
	s := e.srv
	if err := s.authorize(ctx, id, ActionSweepRead); err != nil {
		return nil, 0, err
	}
	if err := checkID("id", api.KindSweep, req.ID); err != nil {
		return nil, 0, err
	}
	var idx uint64
	if wait {
		idx = s.waitTables(ctx, req.QueryOptions, state.TableSweeps)
	}
	sw, err := s.State().Sweep(req.ID)
	return sw, idx, err
}

// Get answers one sweep (GET /v1/sweeps/{id}).
func (e *Sweeps) Get(ctx context.Context, id Identity, req *ObjectRequest) (Reply[*api.Sweep], error) {
	sw, idx, err := e.sweep(ctx, id, req, true)
	if err != nil {
		return Reply[*api.Sweep]{Index: idx}, err
	}
	return Reply[*api.Sweep]{Value: convertPtr(sw, apiSweep), Index: idx}, nil
}

// Cancel cancels a sweep (POST /v1/sweeps/{id}/cancel): its running
// trials end cancelled and their jobs are cancelled; a sweep that ended is
// left as it is. Answers the sweep.
func (e *Sweeps) Cancel(ctx context.Context, id Identity, req *ObjectRequest) (Reply[*api.Sweep], error) {
	s := e.srv
	if err := s.authorize(ctx, id, ActionSweepCancel); err != nil {
		return Reply[*api.Sweep]{}, err
	}
	if err := checkID("id", api.KindSweep, req.ID); err != nil {
		return Reply[*api.Sweep]{}, err
	}
	if err := s.leaderOnly(ctx); err != nil {
		return Reply[*api.Sweep]{}, err
	}
	if _, err := s.State().Sweep(req.ID); err != nil {
		return Reply[*api.Sweep]{}, err // no log entry for a made-up id
	}
	resp, err := s.raftApply(ctx, structs.SweepCancelRequestType, &structs.SweepCancelRequest{
		SweepID: req.ID,
		Time:    time.Now().UTC(),
	})
	if err != nil {
		return Reply[*api.Sweep]{}, err
	}
	// The cancelled jobs' capacity is free.
	s.kickScheduler()
	s.kickSweeps()
	sw, err := answer(resp, apiSweep)
	return reply(sw), err
}

// Trials answers a sweep's trials as a leaderboard (GET
// /v1/sweeps/{id}/trials; see leaderboard).
func (e *Sweeps) Trials(ctx context.Context, id Identity, req *ObjectRequest) (Reply[[]api.Trial], error) {
	sw, idx, err := e.sweep(ctx, id, req, true)
	if err != nil {
		return Reply[[]api.Trial]{Index: idx}, err
	}
	return Reply[[]api.Trial]{Value: convertSlice(leaderboard(sw.Trials, sw.Spec.Objective.Mode), apiTrial), Index: idx}, nil
}

// leaderboard returns a copy of trials ordered best first: the trials with
// a finite result by their best value (highest first when mode is max,
// lowest first otherwise), ties by number; then those whose results all
// diverged, then those with no result yet, each by number.
func leaderboard(trials []structs.Trial, mode tuning.Mode) []structs.Trial {
	out := slices.Clone(trials)
	if out == nil {
		out = []structs.Trial{}
	}
	// rank: 0 with a finite result, 1 with only non-finite ones, 2 with
	// none.
	rank := func(t *structs.Trial) int {
		switch {
		case t.HasFinite():
			return 0
		case t.HasValue:
			return 1
		}
		return 2
	}
	slices.SortStableFunc(out, func(a, b structs.Trial) int {
		if c := cmp.Compare(rank(&a), rank(&b)); c != 0 {
			return c
		}
		if a.HasFinite() {
			c := cmp.Compare(a.BestValue, b.BestValue)
			if mode == tuning.Maximize {
				c = -c
			}
			if c != 0 {
				return c
			}
		}
		return cmp.Compare(a.Number, b.Number)
	})
	return out
}

// Replay replays a sweep's committed results and suggestions through a
// fresh searcher and scheduler built from its spec (sweeper.Replay) and
// reports whether they reproduce the recorded decisions (GET
// /v1/sweeps/{id}/replay). Any coordinator answers from its own state, so
// asking each checks that they all agree.
func (e *Sweeps) Replay(ctx context.Context, id Identity, req *ObjectRequest) (Reply[*api.SweepReplay], error) {
	s := e.srv
	sw, _, err := e.sweep(ctx, id, req, false)
	if err != nil {
		return Reply[*api.SweepReplay]{}, err
	}
	// One replay at a time per server: a replay recomputes every
	// suggestion (seconds to minutes for a large TPE sweep), so a burst of
	// them must not take every core from the server's real work.
	select {
	case s.replaySem <- struct{}{}:
		defer func() { <-s.replaySem }()
	case <-ctx.Done():
		return Reply[*api.SweepReplay]{}, fmt.Errorf("replay sweep %s: waiting for another replay: %w", sw.ID, ctx.Err())
	}
	rep, err := sweeper.Replay(ctx, sw)
	if err != nil {
		return Reply[*api.SweepReplay]{}, fmt.Errorf("replay sweep %s: %w", sw.ID, err)
	}
	return reply(rep), nil
}
