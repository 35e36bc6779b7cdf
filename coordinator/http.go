package coordinator

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/trainctl/trainctl/api"
	"github.com/trainctl/trainctl/artifact"
	"github.com/trainctl/trainctl/coordinator/structs"
	"github.com/trainctl/trainctl/jobspec"
)

// The HTTP transport: a thin adapter over the endpoints (endpoint.go).
// Each route decodes the HTTP request (path values, query, JSON body) into
// the endpoint's request, calls the endpoint and writes its Reply as JSON,
// or the error as an api.ErrorBody; a write that reached a follower is
// proxied to the leader (forward.go). All routes share one middleware
// chain (middleware.go).

// maxBodyBytes bounds a request body (a dataset manifest is the largest).
const maxBodyBytes = 4 << 20

// maxJSONDepth bounds the nesting of a JSON request body.
const maxJSONDepth = 64

// retryAfterSeconds is the Retry-After of a 503: about one election.
const retryAfterSeconds = "1"

// route is one route of the /v1/ API.
type route struct {
	// pattern is the http.ServeMux pattern, method included.
	pattern string
	handler http.Handler
}

// apiRoutes returns the /v1/ API. Reads are served from this server's
// state store, which may lag the leader's by the entries it has not
// applied yet (normally a heartbeat or less; unbounded on a server cut off
// from the leader); writes go to the leader (see forward.go).
func (s *Server) apiRoutes() []route {
	e := s.endpoints
	return []route{
		{"POST /v1/jobs", serve(s, jsonBody[api.SubmitJobBody], e.Jobs.Submit)},
		{"GET /v1/jobs", serve(s, decodeJobList, e.Jobs.List)},
		{"GET /v1/jobs/{id}", serve(s, pathID("id"), e.Jobs.Get)},
		{"POST /v1/jobs/{id}/cancel", serve(s, pathID("id"), e.Jobs.Cancel)},
		{"GET /v1/jobs/{id}/metrics", serve(s, decodeJobMetrics, e.Jobs.Metrics)},
		{"POST /v1/jobs/{id}/metrics", serve(s, decodeMetricsReport, e.Attempts.ReportMetrics)},
		{"POST /v1/jobs/{id}/attempts/{n}", serve(s, decodeAttemptReport, e.Attempts.Report)},
		{"POST /v1/jobs/{id}/attempts/{n}/ranks/{r}", serve(s, decodeRankRequest, e.Attempts.RegisterRank)},
		{"GET /v1/jobs/{id}/attempts/{n}/rendezvous", serve(s, decodeRendezvous, e.Attempts.Rendezvous)},
		{"GET /v1/checkpoints", serve(s, decodeCheckpointList, e.Jobs.Checkpoints)},
		{"POST /v1/checkpoints", serve(s, jsonBody[api.RegisterCheckpointBody], e.Attempts.RegisterCheckpoint)},
		{"POST /v1/sweeps", serve(s, jsonBody[api.SubmitSweepBody], e.Sweeps.Submit)},
		{"GET /v1/sweeps", serve(s, decodeSweepList, e.Sweeps.List)},
		{"GET /v1/sweeps/{id}", serve(s, pathID("id"), e.Sweeps.Get)},
		{"POST /v1/sweeps/{id}/cancel", serve(s, pathID("id"), e.Sweeps.Cancel)},
		{"GET /v1/sweeps/{id}/trials", serve(s, pathID("id"), e.Sweeps.Trials)},
		{"GET /v1/sweeps/{id}/replay", serve(s, pathID("id"), e.Sweeps.Replay)},
		{"GET /v1/models", serve(s, decodeList, e.Models.List)},
		{"POST /v1/models", serve(s, jsonBody[api.RegisterModelBody], e.Models.Register)},
		{"GET /v1/models/{name}", serve(s, pathID("name"), e.Models.Get)},
		{"GET /v1/workers", serve(s, decodeList, e.Workers.List)},
		{"POST /v1/workers/register", serve(s, jsonBody[api.RegisterWorkerBody], e.Workers.Register)},
		{"GET /v1/workers/{id}", serve(s, pathID("id"), e.Workers.Get)},
		{"GET /v1/workers/{id}/assignments", serve(s, pathID("id"), e.Workers.Assignments)},
		{"POST /v1/workers/{id}/drain", serve(s, pathID("id"), e.Workers.Drain)},
		{"GET /v1/datasets", serve(s, decodeDatasetList, e.Datasets.List)},
		{"POST /v1/datasets", serve(s, jsonBody[api.RegisterDatasetBody], e.Datasets.Register)},
		{"POST /v1/datasets/upload", http.HandlerFunc(s.handleDatasetUpload)},
		{"GET /v1/datasets/flight", serve(s, queryID("id"), e.Datasets.Flight)},
		{"DELETE /v1/datasets/{name}/versions/{version}", serve(s, decodeDatasetRemove, e.Datasets.Remove)},
		{"GET /v1/gc/jobs", serve(s, decodeList, e.Jobs.Summaries)},
		{"GET /v1/gc/sweeps", serve(s, decodeList, e.Sweeps.Summaries)},
		{"GET /v1/cluster/status", serve(s, noRequest[StatusRequest], e.Cluster.Status)},
		{"POST /v1/cluster/join", serve(s, jsonBody[api.JoinRequest], e.Cluster.Join)},
		{artifact.BlobsPath, artifact.NewHandler(s.blobs, artifact.HandlerConfig{MaxBlobSize: s.cfg.MaxBlobBytes, Logger: s.log.With("component", "blobs")})},
	}
}

// routes returns the HTTP handler of the server: the /v1/ API behind the
// middleware chain. extra routes are added to the API's, for tests.
func (s *Server) routes(extra ...route) http.Handler {
	mux := http.NewServeMux()
	for _, rt := range append(s.apiRoutes(), extra...) {
		mux.Handle(rt.pattern, rt.handler)
	}
	return s.middleware(mux, s.cfg.limits.withDefaults())
}

// authenticate returns the identity of an HTTP request's sender. Until the
// API has authentication every request is anonymous.
func (s *Server) authenticate(*http.Request) (Identity, error) {
	return Identity{}, nil
}

// decodeFunc fills an endpoint's request from an HTTP request and its
// body (nil for a GET). Errors wrap structs.ErrInvalid and name the field.
type decodeFunc[Req any] func(r *http.Request, body []byte, req *Req) error

// endpointFunc is the shape of every endpoint method.
type endpointFunc[Req, Resp any] func(context.Context, Identity, *Req) (Reply[Resp], error)

// serve adapts an endpoint to HTTP: authenticate, read the body (at most
// maxBodyBytes), decode the request, call the endpoint, and answer its
// Reply as JSON (201 when Created, the index header for reads), its error
// as an api.ErrorBody, or pass the request on to the leader when the
// endpoint says so.
func serve[Req, Resp any](s *Server, decode decodeFunc[Req], call endpointFunc[Req, Resp]) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := s.authenticate(r)
		if err != nil {
			writeError(w, err)
			return
		}
		body, err := readBody(w, r)
		if err != nil {
			writeError(w, err)
			return
		}
		var req Req
		if err := decode(r, body, &req); err != nil {
			writeError(w, err)
			return
		}
		ctx := withForwardedBy(r.Context(), r.Header.Get(forwardedHeader))
		rep, err := call(ctx, id, &req)
		var nl *notLeaderError
		if errors.As(err, &nl) {
			s.proxyToLeader(w, r, bytes.NewReader(body), nl)
			return
		}
		for k, vs := range rep.Header {
			w.Header()[k] = vs
		}
		if rep.Index > 0 {
			// A read answers its index with an error too (a blocking
			// query for an object that does not exist yet).
			w.Header().Set(api.IndexHeader, strconv.FormatUint(rep.Index, 10))
		}
		if err != nil {
			writeError(w, err)
			return
		}
		status := http.StatusOK
		if rep.Created {
			status = http.StatusCreated
		}
		writeJSON(w, status, rep.Value)
	})
}

// readBody reads the body of a POST, at most maxBodyBytes; a GET has
// none (nil).
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return nil, nil
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	var sizeErr *http.MaxBytesError
	switch {
	case errors.As(err, &sizeErr):
		return nil, fmt.Errorf("body: %w: larger than %d bytes", structs.ErrInvalid, sizeErr.Limit)
	case err != nil:
		return nil, fmt.Errorf("body: %w: reading it: %w", structs.ErrInvalid, err)
	}
	return body, nil
}

// jsonBody decodes a request that is the JSON body alone.
func jsonBody[B any](_ *http.Request, body []byte, req *B) error {
	return decodeJSON(body, req)
}

// noRequest decodes a request without parameters.
func noRequest[Req any](*http.Request, []byte, *Req) error { return nil }

// pathID decodes an ObjectRequest whose id is path value name.
func pathID(name string) decodeFunc[ObjectRequest] {
	return func(r *http.Request, _ []byte, req *ObjectRequest) error {
		req.ID = r.PathValue(name)
		return queryOptions(r, &req.QueryOptions)
	}
}

// queryID decodes an ObjectRequest whose id is query parameter name.
func queryID(name string) decodeFunc[ObjectRequest] {
	return func(r *http.Request, _ []byte, req *ObjectRequest) error {
		req.ID = r.URL.Query().Get(name)
		return queryOptions(r, &req.QueryOptions)
	}
}

func decodeList(r *http.Request, _ []byte, req *ListRequest) error {
	return queryOptions(r, &req.QueryOptions)
}

func decodeJobList(r *http.Request, _ []byte, req *JobListRequest) error {
	req.State = r.URL.Query().Get("state")
	return queryOptions(r, &req.QueryOptions)
}

func decodeSweepList(r *http.Request, _ []byte, req *SweepListRequest) error {
	req.State = r.URL.Query().Get("state")
	return queryOptions(r, &req.QueryOptions)
}

func decodeCheckpointList(r *http.Request, _ []byte, req *CheckpointListRequest) error {
	req.JobID = r.URL.Query().Get("job")
	return queryOptions(r, &req.QueryOptions)
}

func decodeDatasetList(r *http.Request, _ []byte, req *DatasetListRequest) error {
	req.Name = r.URL.Query().Get("name")
	return queryOptions(r, &req.QueryOptions)
}

func decodeMetricsReport(r *http.Request, body []byte, req *MetricsReportRequest) error {
	req.JobID = r.PathValue("id")
	req.StepsStoredBy = r.Header.Get(stepsStoredHeader)
	return decodeJSON(body, &req.Body)
}

func decodeJobMetrics(r *http.Request, _ []byte, req *JobMetricsRequest) error {
	req.ID = r.PathValue("id")
	if v := r.URL.Query().Get("local"); v != "" {
		local, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("local: %w: %q is not a boolean", structs.ErrInvalid, api.Truncate(v, 16))
		}
		req.Local = local
	}
	return queryOptions(r, &req.QueryOptions)
}

func decodeDatasetRemove(r *http.Request, _ []byte, req *DatasetRemoveRequest) error {
	req.Name, req.Version = r.PathValue("name"), r.PathValue("version")
	return nil
}

func decodeAttemptReport(r *http.Request, body []byte, req *AttemptReportRequest) error {
	req.JobID = r.PathValue("id")
	n, err := strconv.Atoi(r.PathValue("n"))
	if err != nil || n < 1 {
		return fmt.Errorf("attempt %q: %w: want a number from 1", api.Truncate(r.PathValue("n"), 32), structs.ErrInvalid)
	}
	req.Attempt = n
	return decodeJSON(body, &req.Body)
}

// queryOptions reads a blocking query's index and wait.
func queryOptions(r *http.Request, q *api.QueryOptions) error {
	o, err := api.ParseQueryOptions(r.URL.Query())
	if err != nil {
		return fmt.Errorf("%w: %w", structs.ErrInvalid, err)
	}
	*q = o
	return nil
}

// writeJSON answers with v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
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
	case errors.Is(err, structs.ErrTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, structs.ErrNotLeader), errors.Is(err, structs.ErrNoLeader), errors.Is(err, ErrReplication):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// writeError answers with the JSON error body {"error", "code",
// "request_id"}; a 503 also carries Retry-After.
func writeError(w http.ResponseWriter, err error) {
	status := httpStatus(err)
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", retryAfterSeconds)
	}
	writeJSON(w, status, api.ErrorBody{Error: err.Error(), Code: api.Code(err), RequestID: w.Header().Get(requestIDHeader)})
}

// decodeJSON decodes a JSON request body strictly into out: valid UTF-8,
// nested at most maxJSONDepth deep, one value with no unknown fields.
// Errors wrap structs.ErrInvalid and name the offending field where JSON
// says which.
func decodeJSON(body []byte, out any) error {
	if !utf8.Valid(body) {
		return fmt.Errorf("body: %w: not valid UTF-8", structs.ErrInvalid)
	}
	if d := jsonDepth(body); d > maxJSONDepth {
		return fmt.Errorf("body: %w: nested deeper than %d levels", structs.ErrInvalid, maxJSONDepth)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	err := dec.Decode(out)
	if err == nil && dec.More() {
		err = errors.New("trailing data after the JSON object")
	}
	var (
		typeErr *json.UnmarshalTypeError
		synErr  *json.SyntaxError
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
		if field == "" {
			return fmt.Errorf("body: %w: got JSON %s, want an object (%s)", structs.ErrInvalid, typeErr.Value, typeErr.Type)
		}
		return fmt.Errorf("body: %s: %w: got JSON %s, want %s", field, structs.ErrInvalid, typeErr.Value, typeErr.Type)
	case errors.As(err, &synErr):
		return fmt.Errorf("body: %w: malformed JSON at byte %d: %w", structs.ErrInvalid, synErr.Offset, err)
	case errors.Is(err, jobspec.ErrInvalid):
		return fmt.Errorf("body: spec: %w: %w", structs.ErrInvalid, err)
	}
	return fmt.Errorf("body: %w: %w", structs.ErrInvalid, err)
}

// jsonDepth returns the deepest nesting of arrays and objects in JSON
// text (which need not be valid), ignoring brackets inside strings.
func jsonDepth(b []byte) int {
	depth, deepest := 0, 0
	inString, escaped := false, false
	for _, c := range b {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			depth++
			deepest = max(deepest, depth)
		case c == '}' || c == ']':
			depth--
		}
	}
	return deepest
}

// newID returns a random 16-hex-digit id. Only the leader calls it, and
// puts the id into the command, so applying stays deterministic.
func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}
