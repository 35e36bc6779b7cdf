package coordinator

import (
	"fmt"
	"net/http"
	"time"

	"github.com/trainctl/trainctl/api"
	"github.com/trainctl/trainctl/coordinator/structs"
)

// handleDatasetRemove is DELETE /v1/datasets/{name}/versions/{ver}: removes
// the version ver (v<N>, an id prefix or latest) names from the registry;
// every coordinator then deletes its blob (unless another version has the
// same content) and its copy. Answers 409, naming them, while jobs that
// have not ended or running sweeps use the version, and the removed version
// otherwise.
func (s *Server) handleDatasetRemove(w http.ResponseWriter, r *http.Request) {
	if s.forward(w, r) {
		return
	}
	name := r.PathValue("name")
	id, err := s.resolveDataset(name + "@" + r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	if jobs, sweeps := s.State().DatasetUsers(id); len(jobs) > 0 || len(sweeps) > 0 {
		writeError(w, fmt.Errorf("dataset %s@%s: %w: in use by jobs %v and sweeps %v; cancel them or wait until they end",
			name, r.PathValue("id"), structs.ErrConflict, jobs, sweeps))
		return
	}
	resp, err := s.raftApply(r.Context(), structs.DatasetRemoveRequestType, &structs.DatasetRemoveRequest{
		Name: name, ID: id, Time: time.Now().UTC(),
	})
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, resp.(*structs.GCResponse).Datasets[0])
}

// handleJobSummaries is GET /v1/gc/jobs: what garbage collection kept of
// the jobs it removed, oldest end first.
func (s *Server) handleJobSummaries(w http.ResponseWriter, r *http.Request) {
	out := convertPtrs(s.State().JobSummaries(), apiJobSummary)
	if out == nil {
		out = []*api.JobSummary{}
	}
	writeJSON(w, http.StatusOK, out)
}

// handleSweepSummaries is GET /v1/gc/sweeps: what garbage collection kept
// of the sweeps it removed, oldest end first.
func (s *Server) handleSweepSummaries(w http.ResponseWriter, r *http.Request) {
	out := convertPtrs(s.State().SweepSummaries(), apiSweepSummary)
	if out == nil {
		out = []*api.SweepSummary{}
	}
	writeJSON(w, http.StatusOK, out)
}

func apiJobSummary(v structs.JobSummary) api.JobSummary {
	return api.JobSummary{
		ID: v.ID, Name: v.Name, SweepID: v.SweepID, Trial: v.Trial, State: api.JobState(v.State), Error: v.Error,
		Attempts: v.Attempts, Restarts: v.Restarts, Progress: apiProgress(v.Progress), LatestCheckpoint: v.LatestCheckpoint,
		SubmitTime: v.SubmitTime, EndTime: v.EndTime, CollectTime: v.CollectTime,
	}
}

func apiSweepSummary(v structs.SweepSummary) api.SweepSummary {
	return api.SweepSummary{
		ID: v.ID, Name: v.Name, State: api.SweepState(v.State), Error: v.Error, Trials: v.Trials,
		Best: convertPtr(v.Best, apiSweepBest), SubmitTime: v.SubmitTime, EndTime: v.EndTime, CollectTime: v.CollectTime,
	}
}
