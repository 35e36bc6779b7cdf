package coordinator

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/trainctl/trainctl/api"
	"github.com/trainctl/trainctl/coordinator/structs"
	"github.com/trainctl/trainctl/tuning"
)

// handleModelList is GET /v1/models: every version of every model, by name
// and then version.
func (s *Server) handleModelList(w http.ResponseWriter, r *http.Request) {
	out := s.State().ModelVersions("")
	if out == nil {
		out = []*structs.ModelVersion{}
	}
	writeJSON(w, http.StatusOK, out)
}

// handleModelGet is GET /v1/models/{name}: the versions of one model, oldest
// first; a name with no versions is a 404.
func (s *Server) handleModelGet(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	out := s.State().ModelVersions(name)
	if len(out) == 0 {
		writeError(w, fmt.Errorf("model %q: %w", name, structs.ErrNotFound))
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// handleModelRegister is POST /v1/models: body api.RegisterModelBody,
// which names exactly one source: a checkpoint digest, a job (its latest
// checkpoint) or a sweep (its best checkpoint, with the sweep's objective
// and value). Answers 201 with the new version. Registering the checkpoint
// the model's latest version already points at answers 200 with that
// version, so a retried registration adds no second version.
func (s *Server) handleModelRegister(w http.ResponseWriter, r *http.Request) {
	if s.forward(w, r) {
		return
	}
	var body api.RegisterModelBody
	if err := decodeBody(w, r, &body); err != nil {
		writeError(w, err)
		return
	}
	if err := validModelName(body.Name); err != nil {
		writeError(w, err)
		return
	}
	req, err := s.modelSource(body)
	if err != nil {
		writeError(w, err)
		return
	}
	if latest, err := s.State().Model(body.Name); err == nil && latest.Checkpoint == req.Checkpoint {
		writeJSON(w, http.StatusOK, latest)
		return
	}
	if err := s.verifyCheckpointBlob(r.Context(), req.Checkpoint); err != nil {
		writeError(w, fmt.Errorf("register model: %w", err))
		return
	}
	req.Name = body.Name
	req.Time = time.Now().UTC()
	resp, err := s.raftApply(r.Context(), structs.ModelRegisterRequestType, req)
	if err != nil {
		writeError(w, err)
		return
	}
	// The FSM answers the latest version unchanged when it already has
	// the checkpoint (a concurrent twin of this request committed first).
	status := http.StatusOK
	if m, ok := resp.(*structs.ModelVersion); ok && m.CreateTime.Equal(req.Time) {
		status = http.StatusCreated
	}
	writeJSON(w, status, resp)
}

// validModelName checks a model name by tuning.CheckModelName, the rule
// sweep specs and the FSM follow too: one URL path segment without
// escaping.
func validModelName(name string) error {
	if err := tuning.CheckModelName(name); err != nil {
		return fmt.Errorf("name: %w: %w", structs.ErrInvalid, err)
	}
	return nil
}

// modelSource resolves the one source a registration names to the
// checkpoint, job, sweep and objective of the new version (Name and Time
// left for the caller).
func (s *Server) modelSource(body api.RegisterModelBody) (*structs.ModelRegisterRequest, error) {
	var given []string
	for _, f := range []struct{ name, value string }{
		{"checkpoint", body.Checkpoint}, {"job_id", body.JobID}, {"sweep_id", body.SweepID},
	} {
		if f.value != "" {
			given = append(given, f.name)
		}
	}
	if len(given) != 1 {
		got := "none"
		if len(given) > 0 {
			got = strings.Join(given, ", ")
		}
		return nil, fmt.Errorf("checkpoint, job_id, sweep_id: %w: give exactly one, got %s", structs.ErrInvalid, got)
	}
	switch {
	case body.Checkpoint != "":
		c, err := s.State().Checkpoint(body.Checkpoint)
		if err != nil {
			return nil, fmt.Errorf("checkpoint: %w", err)
		}
		return s.checkpointModel(c), nil
	case body.JobID != "":
		j, err := s.State().Job(body.JobID)
		if err != nil {
			return nil, fmt.Errorf("job_id: %w", err)
		}
		if j.LatestCheckpoint == "" {
			return nil, fmt.Errorf("job_id: %w: job %s has no checkpoint yet", structs.ErrConflict, j.ID)
		}
		c, err := s.State().Checkpoint(j.LatestCheckpoint)
		if err != nil {
			return nil, fmt.Errorf("job_id: latest checkpoint of job %s: %w", j.ID, err)
		}
		return s.checkpointModel(c), nil
	}
	sw, err := s.State().Sweep(body.SweepID)
	if err != nil {
		return nil, fmt.Errorf("sweep_id: %w", err)
	}
	if sw.Best == nil {
		return nil, fmt.Errorf("sweep_id: %w: sweep %s has no checkpoint with an objective value yet", structs.ErrConflict, sw.ID)
	}
	return &structs.ModelRegisterRequest{
		Checkpoint: sw.Best.Checkpoint,
		JobID:      sw.Best.JobID,
		SweepID:    sw.ID,
		Metric:     sw.Spec.Objective.Metric,
		Value:      sw.Best.Value,
	}, nil
}

// checkpointModel is the version a checkpoint makes; a checkpoint of a
// sweep trial carries the sweep and its objective's value when the
// checkpoint recorded it.
func (s *Server) checkpointModel(c *structs.Checkpoint) *structs.ModelRegisterRequest {
	req := &structs.ModelRegisterRequest{Checkpoint: c.Digest, JobID: c.JobID}
	j, err := s.State().Job(c.JobID)
	if err != nil || j.SweepID == "" {
		return req
	}
	req.SweepID = j.SweepID
	if sw, err := s.State().Sweep(j.SweepID); err == nil {
		if v, ok := c.Metrics[sw.Spec.Objective.Metric]; ok {
			req.Metric, req.Value = sw.Spec.Objective.Metric, v
		}
	}
	return req
}
