package coordinator

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/trainctl/trainctl/api"
	"github.com/trainctl/trainctl/coordinator/structs"
	"github.com/trainctl/trainctl/dataset"
)

// maxRequestIDLen bounds a client request id.
const maxRequestIDLen = 128

// handleJobSubmit is POST /v1/jobs: body api.SubmitJobBody; answers 201
// with the new job, or 200 with the job an earlier request with the same
// request_id created. spec.dataset is resolved against the dataset registry
// and the version id stored on the job; a reference to no registered
// version is a 400 naming spec.dataset.
func (s *Server) handleJobSubmit(w http.ResponseWriter, r *http.Request) {
	var body api.SubmitJobBody
	submitOnce(s, w, r, &body, submission[*structs.Job]{
		requestID:    func() string { return body.RequestID },
		validate:     func() error { return body.Spec.Validate() },
		existing:     s.State().JobByRequestID,
		dataset:      func() string { return body.Spec.Dataset },
		datasetField: "spec.dataset",
		commit: func(ctx context.Context, id, version string) (any, error) {
			return s.raftApply(ctx, structs.JobSubmitRequestType, &structs.JobSubmitRequest{
				JobID: id, RequestID: body.RequestID, Spec: body.Spec, DatasetVersionID: version, SubmitTime: time.Now().UTC(),
			})
		},
		id:   func(j *structs.Job) string { return j.ID },
		kick: s.kickScheduler,
	})
}

// submission describes one kind of idempotent submission (a job, a sweep)
// to submitOnce: where its request id, spec check and dataset reference
// are, how to find an earlier submission with the same request id, how to
// commit a new one and whom to wake up afterwards.
type submission[T any] struct {
	requestID    func() string
	validate     func() error
	existing     func(requestID string) (T, error)
	dataset      func() string
	datasetField string
	commit       func(ctx context.Context, id, datasetVersion string) (any, error)
	id           func(T) string
	kick         func()
}

// submitOnce is the flow every submit endpoint shares: forward to the
// leader, decode body strictly, check the request id and the spec (a 400
// naming every bad field), answer an earlier submission with the same
// request id from the state (200, no new log entry), resolve the dataset
// reference (a 400 naming its field), commit under a new id, and answer
// 201 with the new object or 200 with the one an earlier request created.
func submitOnce[T any](s *Server, w http.ResponseWriter, r *http.Request, body any, sub submission[T]) {
	if s.forward(w, r) {
		return
	}
	if err := decodeBody(w, r, body); err != nil {
		writeError(w, err)
		return
	}
	rid := sub.requestID()
	if len(rid) > maxRequestIDLen {
		writeError(w, fmt.Errorf("request_id: %w: longer than %d bytes", structs.ErrInvalid, maxRequestIDLen))
		return
	}
	if err := sub.validate(); err != nil {
		writeError(w, fmt.Errorf("spec: %w: %w", structs.ErrInvalid, err))
		return
	}
	if rid != "" {
		// A retry of a committed submission needs no new log entry.
		if obj, err := sub.existing(rid); err == nil {
			writeJSON(w, http.StatusOK, obj)
			return
		}
	}
	version, err := s.resolveDataset(sub.dataset())
	if err != nil {
		writeError(w, fmt.Errorf("%s: %w", sub.datasetField, err))
		return
	}
	id := newID()
	resp, err := sub.commit(r.Context(), id, version)
	if err != nil {
		writeError(w, err)
		return
	}
	sub.kick()
	obj := resp.(T)
	status := http.StatusOK
	if sub.id(obj) == id {
		status = http.StatusCreated
	}
	writeJSON(w, status, obj)
}

// handleJobList is GET /v1/jobs[?state=S]: jobs in submission order.
func (s *Server) handleJobList(w http.ResponseWriter, r *http.Request) {
	want := structs.JobState(r.URL.Query().Get("state"))
	out := []*structs.Job{}
	for _, j := range s.State().Jobs() {
		if want == "" || j.State == want {
			out = append(out, j)
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// handleJobGet is GET /v1/jobs/{id}.
func (s *Server) handleJobGet(w http.ResponseWriter, r *http.Request) {
	j, err := s.State().Job(r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, j)
}

// handleJobCancel is POST /v1/jobs/{id}/cancel: answers the job, cancelled
// (or already finished, which cancelling leaves as it is).
func (s *Server) handleJobCancel(w http.ResponseWriter, r *http.Request) {
	if s.forward(w, r) {
		return
	}
	resp, err := s.raftApply(r.Context(), structs.JobCancelRequestType, &structs.JobCancelRequest{
		JobID: r.PathValue("id"),
		Time:  time.Now().UTC(),
	})
	if err != nil {
		writeError(w, err)
		return
	}
	if j, ok := resp.(*structs.Job); ok {
		// A cancelled trial job ends its trial.
		s.kickSweepsFor(j)
	}
	writeJSON(w, http.StatusOK, resp)
}

// handleCheckpointList is GET /v1/checkpoints[?job=ID]: checkpoint records,
// of one job or of all.
func (s *Server) handleCheckpointList(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("job")
	if id != "" {
		if _, err := s.State().Job(id); err != nil {
			writeError(w, fmt.Errorf("job: %w", err))
			return
		}
	}
	out := s.State().Checkpoints(id)
	if out == nil {
		out = []*structs.Checkpoint{}
	}
	writeJSON(w, http.StatusOK, out)
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
