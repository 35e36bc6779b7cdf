package coordinator

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/trainctl/trainctl/api"
	"github.com/trainctl/trainctl/artifact"
	"github.com/trainctl/trainctl/coordinator/state"
	"github.com/trainctl/trainctl/coordinator/structs"
	"github.com/trainctl/trainctl/jobspec"
)

// maxBodyBytes bounds a request body (a dataset manifest is the largest).
const maxBodyBytes = 4 << 20

// retryAfterSeconds is the Retry-After of a 503: about one election.
const retryAfterSeconds = "1"

// routes returns the /v1/ API. Reads are served from this server's state
// store, which may lag the leader's by the entries it has not applied yet
// (normally a heartbeat or less; unbounded on a server cut off from the
// leader); writes go to the leader (see forward).
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/jobs", s.handleJobSubmit)
	mux.HandleFunc("GET /v1/jobs", s.blocking(s.handleJobList, state.TableJobs))
	mux.HandleFunc("GET /v1/jobs/{id}", s.blocking(s.handleJobGet, state.TableJobs))
	mux.HandleFunc("POST /v1/jobs/{id}/cancel", s.handleJobCancel)
	mux.HandleFunc("GET /v1/jobs/{id}/metrics", s.blocking(s.handleJobMetrics, state.TableMetrics, state.TableJobs))
	mux.HandleFunc("POST /v1/jobs/{id}/metrics", s.handleMetricsReport)
	mux.HandleFunc("POST /v1/jobs/{id}/attempts/{n}", s.handleAttemptReport)
	mux.HandleFunc("GET /v1/checkpoints", s.blocking(s.handleCheckpointList, state.TableCheckpoints))
	mux.HandleFunc("POST /v1/checkpoints", s.handleCheckpointRegister)
	mux.HandleFunc("POST /v1/sweeps", s.handleSweepSubmit)
	mux.HandleFunc("GET /v1/sweeps", s.blocking(s.handleSweepList, state.TableSweeps))
	mux.HandleFunc("GET /v1/sweeps/{id}", s.blocking(s.handleSweepGet, state.TableSweeps))
	mux.HandleFunc("POST /v1/sweeps/{id}/cancel", s.handleSweepCancel)
	mux.HandleFunc("GET /v1/sweeps/{id}/trials", s.blocking(s.handleSweepTrials, state.TableSweeps))
	mux.HandleFunc("GET /v1/sweeps/{id}/replay", s.handleSweepReplay)
	mux.HandleFunc("GET /v1/models", s.blocking(s.handleModelList, state.TableModels))
	mux.HandleFunc("POST /v1/models", s.handleModelRegister)
	mux.HandleFunc("GET /v1/models/{name}", s.blocking(s.handleModelGet, state.TableModels))
	mux.HandleFunc("GET /v1/workers", s.blocking(s.handleWorkerList, state.TableWorkers))
	mux.HandleFunc("POST /v1/workers/register", s.handleWorkerRegister)
	mux.HandleFunc("GET /v1/workers/{id}", s.blocking(s.handleWorkerGet, state.TableWorkers))
	mux.HandleFunc("GET /v1/workers/{id}/assignments", s.blocking(s.handleWorkerAssignments, state.TableAssignments))
	mux.HandleFunc("POST /v1/workers/{id}/drain", s.handleWorkerDrain)
	mux.HandleFunc("GET /v1/datasets", s.blocking(s.handleDatasetList, state.TableDatasets))
	mux.HandleFunc("POST /v1/datasets", s.handleDatasetRegister)
	mux.HandleFunc("POST /v1/datasets/upload", s.handleDatasetUpload)
	mux.HandleFunc("GET /v1/datasets/flight", s.handleDatasetFlight)
	mux.HandleFunc("DELETE /v1/datasets/{name}/versions/{id}", s.handleDatasetRemove)
	mux.HandleFunc("GET /v1/gc/jobs", s.blocking(s.handleJobSummaries, state.TableJobs))
	mux.HandleFunc("GET /v1/gc/sweeps", s.blocking(s.handleSweepSummaries, state.TableSweeps))
	mux.HandleFunc("GET /v1/cluster/status", s.handleClusterStatus)
	mux.HandleFunc("POST /v1/cluster/join", s.handleClusterJoin)
	mux.Handle(artifact.BlobsPath, artifact.NewHandler(s.blobs, artifact.HandlerConfig{Logger: s.log.With("component", "blobs")}))
	return mux
}

// writeJSON answers with v, converted to its wire type (toWire), as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(toWire(v))
}

// httpStatus maps an error to its HTTP status through the sentinel it wraps.
func httpStatus(err error) int {
	switch {
	case errors.Is(err, structs.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, structs.ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, structs.ErrConflict):
		return http.StatusConflict
	case errors.Is(err, structs.ErrNotLeader), errors.Is(err, structs.ErrNoLeader), errors.Is(err, ErrReplication):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// writeError answers with the JSON error body {"error", "code"}; a 503 also
// carries Retry-After.
func writeError(w http.ResponseWriter, err error) {
	status := httpStatus(err)
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", retryAfterSeconds)
	}
	writeJSON(w, status, api.ErrorBody{Error: err.Error(), Code: structs.Code(err)})
}

// decodeBody reads a JSON request body strictly into out. Errors wrap
// structs.ErrInvalid and name the offending field where JSON says which.
func decodeBody(w http.ResponseWriter, r *http.Request, out any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	dec.DisallowUnknownFields()
	err := dec.Decode(out)
	if err == nil && dec.More() {
		err = errors.New("trailing data after the JSON object")
	}
	var (
		typeErr *json.UnmarshalTypeError
		synErr  *json.SyntaxError
		sizeErr *http.MaxBytesError
	)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, io.EOF):
		return fmt.Errorf("body: %w: empty, want a JSON object", structs.ErrInvalid)
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if errors.Is(err, jobspec.ErrInvalid) { // inside the spec's own decoder
			field = strings.TrimSuffix("spec."+field, ".")
		}
		return fmt.Errorf("body: %s: %w: got JSON %s, want %s", field, structs.ErrInvalid, typeErr.Value, typeErr.Type)
	case errors.As(err, &synErr):
		return fmt.Errorf("body: %w: malformed JSON at byte %d: %w", structs.ErrInvalid, synErr.Offset, err)
	case errors.As(err, &sizeErr):
		return fmt.Errorf("body: %w: larger than %d bytes", structs.ErrInvalid, sizeErr.Limit)
	case errors.Is(err, jobspec.ErrInvalid):
		return fmt.Errorf("body: spec: %w: %w", structs.ErrInvalid, err)
	}
	return fmt.Errorf("body: %w: %w", structs.ErrInvalid, err)
}

// newID returns a random 16-hex-digit id. Only the leader calls it, and
// puts the id into the command, so applying stays deterministic.
func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}
