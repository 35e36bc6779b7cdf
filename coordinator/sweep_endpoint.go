package coordinator

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/trainctl/trainctl/api"
	"github.com/trainctl/trainctl/coordinator/structs"
	"github.com/trainctl/trainctl/coordinator/sweeper"
	"github.com/trainctl/trainctl/tuning"
)

// handleSweepSubmit is POST /v1/sweeps: body api.SubmitSweepBody;
// answers 201 with the new sweep, or 200 with the sweep an earlier request
// with the same request_id created. The spec is validated (a 400 naming
// every bad field) and spec.job.dataset resolved as a job's spec.dataset
// is: every trial trains on that version. The sweep starts with no trials;
// the leader's sweep controller suggests them (sweep.go).
func (s *Server) handleSweepSubmit(w http.ResponseWriter, r *http.Request) {
	var body api.SubmitSweepBody
	submitOnce(s, w, r, &body, submission[*structs.Sweep]{
		requestID:    func() string { return body.RequestID },
		validate:     func() error { return body.Spec.Validate() },
		existing:     s.State().SweepByRequestID,
		dataset:      func() string { return body.Spec.Job.Dataset },
		datasetField: "spec.job.dataset",
		commit: func(ctx context.Context, id, version string) (any, error) {
			return s.raftApply(ctx, structs.SweepSubmitRequestType, &structs.SweepSubmitRequest{
				SweepID: id, RequestID: body.RequestID, Spec: structs.NewSweepSpec(body.Spec), DatasetVersionID: version, SubmitTime: time.Now().UTC(),
			})
		},
		id:   func(sw *structs.Sweep) string { return sw.ID },
		kick: s.kickSweeps,
	})
}

// handleSweepList is GET /v1/sweeps[?state=S]: sweeps in submission order.
func (s *Server) handleSweepList(w http.ResponseWriter, r *http.Request) {
	want := structs.SweepState(r.URL.Query().Get("state"))
	out := []*structs.Sweep{}
	for _, sw := range s.State().Sweeps() {
		if want == "" || sw.State == want {
			out = append(out, sw)
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// handleSweepGet is GET /v1/sweeps/{id}.
func (s *Server) handleSweepGet(w http.ResponseWriter, r *http.Request) {
	sw, err := s.State().Sweep(r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, sw)
}

// handleSweepCancel is POST /v1/sweeps/{id}/cancel: the sweep's running
// trials end cancelled and their jobs are cancelled; a sweep that ended is
// left as it is. Answers the sweep.
func (s *Server) handleSweepCancel(w http.ResponseWriter, r *http.Request) {
	if s.forward(w, r) {
		return
	}
	resp, err := s.raftApply(r.Context(), structs.SweepCancelRequestType, &structs.SweepCancelRequest{
		SweepID: r.PathValue("id"),
		Time:    time.Now().UTC(),
	})
	if err != nil {
		writeError(w, err)
		return
	}
	// The cancelled jobs' capacity is free.
	s.kickScheduler()
	s.kickSweeps()
	writeJSON(w, http.StatusOK, resp)
}

// handleSweepTrials is GET /v1/sweeps/{id}/trials: the sweep's trials as a
// leaderboard (see leaderboard).
func (s *Server) handleSweepTrials(w http.ResponseWriter, r *http.Request) {
	sw, err := s.State().Sweep(r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, leaderboard(sw.Trials, sw.Spec.Objective.Mode))
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

// handleSweepReplay is GET /v1/sweeps/{id}/replay: the answering server
// replays the sweep's committed results and suggestions through a fresh
// searcher and scheduler built from its spec (sweeper.Replay) and reports
// whether they reproduce the recorded decisions. Any coordinator answers
// from its own state, so asking each checks that they all agree.
func (s *Server) handleSweepReplay(w http.ResponseWriter, r *http.Request) {
	sw, err := s.State().Sweep(r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	rep, err := sweeper.Replay(sw)
	if err != nil {
		writeError(w, fmt.Errorf("replay sweep %s: %w", sw.ID, err))
		return
	}
	writeJSON(w, http.StatusOK, rep)
}
