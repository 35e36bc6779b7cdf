package coordinator

import (
	"fmt"
	"net/http"

	"github.com/trainctl/trainctl/api"
	"github.com/trainctl/trainctl/coordinator/structs"
)

// handleClusterStatus is GET /v1/cluster/status: this server's view of the
// Raft cluster (api.ClusterStatus).
func (s *Server) handleClusterStatus(w http.ResponseWriter, r *http.Request) {
	st, err := s.Status()
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// handleClusterJoin is POST /v1/cluster/join: body api.JoinRequest. The
// leader adds the server as a voter (a no-op when it already is one at that
// address) and records its addresses in the server registry; answers the
// cluster status.
func (s *Server) handleClusterJoin(w http.ResponseWriter, r *http.Request) {
	if s.forward(w, r) {
		return
	}
	var req api.JoinRequest
	if err := decodeBody(w, r, &req); err != nil {
		writeError(w, err)
		return
	}
	for _, f := range []struct{ name, value string }{{"id", req.ID}, {"raft_addr", req.RaftAddr}, {"http_addr", req.HTTPAddr}} {
		if f.value == "" {
			writeError(w, fmt.Errorf("%s: %w: required", f.name, structs.ErrInvalid))
			return
		}
	}
	if err := s.addVoter(r.Context(), req); err != nil {
		writeError(w, err)
		return
	}
	s.handleClusterStatus(w, r)
}
