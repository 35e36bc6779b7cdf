package coordinator

import (
	"net/http"
	"time"

	"github.com/trainctl/trainctl/coordinator/structs"
)

// handleWorkerList is GET /v1/workers: workers ordered by id.
func (s *Server) handleWorkerList(w http.ResponseWriter, r *http.Request) {
	out := s.State().Workers()
	if out == nil {
		out = []*structs.Worker{}
	}
	writeJSON(w, http.StatusOK, out)
}

// handleWorkerGet is GET /v1/workers/{id}.
func (s *Server) handleWorkerGet(w http.ResponseWriter, r *http.Request) {
	wk, err := s.State().Worker(r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, wk)
}

// handleWorkerDrain is POST /v1/workers/{id}/drain: the worker takes no new
// ranks; the ones it runs continue.
func (s *Server) handleWorkerDrain(w http.ResponseWriter, r *http.Request) {
	if s.forward(w, r) {
		return
	}
	resp, err := s.raftApply(r.Context(), structs.WorkerDrainRequestType, &structs.WorkerDrainRequest{
		ID:   r.PathValue("id"),
		Time: time.Now().UTC(),
	})
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}
