package coordinator

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/trainctl/trainctl/api"
	"github.com/trainctl/trainctl/coordinator/scheduler"
	"github.com/trainctl/trainctl/coordinator/structs"
)

// handleAttemptReport is POST /v1/jobs/{id}/attempts/{n}: body
// api.AttemptReportBody, a worker's report on attempt n. Running
// reports progress (recorded as a metric report when it carries metrics);
// succeeded finishes the job; preempted requeues it without counting;
// failed requeues it excluding the reporting worker, or fails it once
// max_restarts are used up (scheduler.NextAttempt). The first outcome any
// rank reports ends the attempt for all its ranks. Reporting an outcome
// the attempt already has answers the job unchanged, so a retried report
// (or the same outcome from another rank) is safe; another outcome for an
// attempt that ended is a conflict. Answers the job.
func (s *Server) handleAttemptReport(w http.ResponseWriter, r *http.Request) {
	if s.forward(w, r) {
		return
	}
	var body api.AttemptReportBody
	if err := decodeBody(w, r, &body); err != nil {
		writeError(w, err)
		return
	}
	n, err := strconv.Atoi(r.PathValue("n"))
	if err != nil || n < 1 {
		writeError(w, fmt.Errorf("attempt %q: %w: want a number from 1", r.PathValue("n"), structs.ErrInvalid))
		return
	}
	j, err := s.State().Job(r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	if n > len(j.Attempts) {
		writeError(w, fmt.Errorf("attempt %d of job %s: %w", n, j.ID, structs.ErrNotFound))
		return
	}
	att := j.Attempts[n-1]
	if body.WorkerID != "" {
		if !slices.Contains(att.Nodes, body.WorkerID) {
			writeError(w, fmt.Errorf("worker_id: %w: %s runs no rank of attempt %d of job %s", structs.ErrInvalid, body.WorkerID, n, j.ID))
			return
		}
		s.renewLease(body.WorkerID)
	}
	var kind scheduler.EndKind
	state := structs.AttemptState(body.State)
	switch state {
	case structs.AttemptRunning:
		s.reportProgress(w, r, j, att, body)
		return
	case structs.AttemptSucceeded:
	case structs.AttemptFailed:
		kind = scheduler.Failed
	case structs.AttemptPreempted:
		kind = scheduler.Preempted
	default:
		writeError(w, fmt.Errorf("state: %w: %q (want running, succeeded, failed or preempted)", structs.ErrInvalid, body.State))
		return
	}
	if att.State != structs.AttemptRunning {
		if att.State == state {
			writeJSON(w, http.StatusOK, j)
			return
		}
		writeError(w, fmt.Errorf("attempt %d of job %s: %w: it ended %s", n, j.ID, structs.ErrConflict, att.State))
		return
	}
	if len(body.Metrics) > 0 {
		if _, err := s.raftApply(r.Context(), structs.MetricsReportRequestType, progressReport(j.ID, n, body)); err != nil {
			writeError(w, err)
			return
		}
	}
	out, err := s.endAttempt(r.Context(), j, n, kind, state, body.WorkerID, body.Error)
	if errors.Is(err, structs.ErrConflict) {
		// Another rank reported the same outcome first.
		if now, jerr := s.State().Job(j.ID); jerr == nil && now.Attempts[n-1].State == state {
			out, err = now, nil
		}
	}
	if err != nil {
		writeError(w, err)
		return
	}
	s.kickSweepsFor(out)
	writeJSON(w, http.StatusOK, out)
}

// reportProgress handles a running report: its metrics, if any, become a
// step point of the job (recordMetrics).
func (s *Server) reportProgress(w http.ResponseWriter, r *http.Request, j *structs.Job, att structs.Attempt, body api.AttemptReportBody) {
	if att.State != structs.AttemptRunning {
		writeError(w, fmt.Errorf("attempt %d of job %s: %w: it ended %s", att.Number, j.ID, structs.ErrConflict, att.State))
		return
	}
	if len(body.Metrics) == 0 {
		writeJSON(w, http.StatusOK, j)
		return
	}
	s.recordMetrics(w, r, j, []api.Metric{{
		Kind: api.MetricStep, JobID: j.ID, Attempt: att.Number, Epoch: body.Epoch, Step: body.Step,
		Values: body.Metrics, Time: time.Now().UTC(),
	}})
}

// progressReport is the metric report of an attempt report's metrics.
func progressReport(jobID string, attempt int, body api.AttemptReportBody) *structs.MetricsReportRequest {
	return &structs.MetricsReportRequest{JobID: jobID, Metrics: []structs.Metric{{
		JobID: jobID, Attempt: attempt, Epoch: body.Epoch, Step: body.Step,
		Values: body.Metrics, Time: time.Now().UTC(),
	}}}
}

// handleCheckpointRegister is POST /v1/checkpoints: body
// api.RegisterCheckpointBody. The blob must have been uploaded to
// /v1/blobs/{digest} of any coordinator; the leader fetches it if needed,
// replicates it to the voters (503 when it cannot reach a majority), then
// commits the record, which becomes the job's latest checkpoint unless a
// later step is registered. Answers 201 with the record, or 200 when the
// digest was registered before.
func (s *Server) handleCheckpointRegister(w http.ResponseWriter, r *http.Request) {
	if s.forward(w, r) {
		return
	}
	var body api.RegisterCheckpointBody
	if err := decodeBody(w, r, &body); err != nil {
		writeError(w, err)
		return
	}
	for _, f := range []struct{ name, value string }{{"digest", body.Digest}, {"job_id", body.JobID}} {
		if f.value == "" {
			writeError(w, fmt.Errorf("%s: %w: required", f.name, structs.ErrInvalid))
			return
		}
	}
	if c, err := s.State().Checkpoint(body.Digest); err == nil {
		writeJSON(w, http.StatusOK, c)
		return
	}
	j, err := s.State().Job(body.JobID)
	if err != nil {
		writeError(w, fmt.Errorf("job_id: %w", err))
		return
	}
	size, err := s.replicateBlob(r.Context(), body.Digest)
	if err != nil {
		writeError(w, fmt.Errorf("register checkpoint: %w", err))
		return
	}
	resp, err := s.raftApply(r.Context(), structs.CheckpointRegisterRequestType, &structs.CheckpointRegisterRequest{
		Checkpoint: structs.Checkpoint{
			Digest: body.Digest, JobID: body.JobID, Attempt: body.Attempt, Step: body.Step,
			Epoch: body.Epoch, Metrics: body.Metrics, Size: size, Time: time.Now().UTC(),
		},
	})
	if err != nil {
		writeError(w, err)
		return
	}
	s.kickSweepsFor(j)
	writeJSON(w, http.StatusCreated, resp)
}
