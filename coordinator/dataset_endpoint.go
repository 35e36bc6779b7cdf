package coordinator

import (
	"fmt"
	"net/http"
	"time"

	"github.com/trainctl/trainctl/api"
	"github.com/trainctl/trainctl/coordinator/structs"
)

// handleDatasetList is GET /v1/datasets[?name=N]: registered versions, by
// name and then seq.
func (s *Server) handleDatasetList(w http.ResponseWriter, r *http.Request) {
	out := s.State().DatasetVersions(r.URL.Query().Get("name"))
	if out == nil {
		out = []*structs.DatasetVersion{}
	}
	writeJSON(w, http.StatusOK, out)
}

// handleDatasetRegister is POST /v1/datasets: body
// api.RegisterDatasetBody; answers the registry entry (201 when new, 200
// when that name and id were registered before). A version with a blob is
// committed only once the blob is on a majority of the coordinators (see
// replicateBlob).
func (s *Server) handleDatasetRegister(w http.ResponseWriter, r *http.Request) {
	if s.forward(w, r) {
		return
	}
	var body api.RegisterDatasetBody
	if err := decodeBody(w, r, &body); err != nil {
		writeError(w, err)
		return
	}
	for _, f := range []struct{ name, value string }{{"name", body.Name}, {"id", body.ID}, {"manifest", string(body.Manifest)}} {
		if f.value == "" {
			writeError(w, fmt.Errorf("%s: %w: required", f.name, structs.ErrInvalid))
			return
		}
	}
	for _, v := range s.State().DatasetVersions(body.Name) {
		if v.ID == body.ID {
			writeJSON(w, http.StatusOK, v) // registered before
			return
		}
	}
	if body.Blob != "" {
		if _, err := s.replicateBlob(r.Context(), body.Blob); err != nil {
			writeError(w, fmt.Errorf("register dataset: blob: %w", err))
			return
		}
	}
	now := time.Now().UTC()
	resp, err := s.raftApply(r.Context(), structs.DatasetRegisterRequestType, &structs.DatasetRegisterRequest{
		Name:     body.Name,
		ID:       body.ID,
		Manifest: body.Manifest,
		Blob:     body.Blob,
		Time:     now,
	})
	if err != nil {
		writeError(w, err)
		return
	}
	v := resp.(*structs.DatasetVersion)
	status := http.StatusOK
	if v.CreateTime.Equal(now) {
		status = http.StatusCreated
	}
	writeJSON(w, status, v)
}
