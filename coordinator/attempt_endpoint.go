package coordinator

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/trainctl/trainctl/api"
	"github.com/trainctl/trainctl/coordinator/scheduler"
	"github.com/trainctl/trainctl/coordinator/structs"
)

// Limits of what workers report.
const (
	// maxMetricReports bounds the reports of one metrics batch.
	maxMetricReports = 1000
	// maxMetricValues bounds the values of one metric report or checkpoint.
	maxMetricValues = 256
	// maxMetricNameLen bounds a metric's name.
	maxMetricNameLen = 128
	// maxReportErrorLen bounds the error message of an attempt report;
	// longer ones are cut (the worker keeps the whole log).
	maxReportErrorLen = 4096
)

// Attempts is the endpoint of what workers report about the attempts they
// run: outcomes, metrics and checkpoints.
type Attempts struct{ srv *Server }

// AttemptReportRequest is the request of Attempts.Report: a worker's
// report on attempt Attempt of job JobID.
type AttemptReportRequest struct {
	JobID   string
	Attempt int
	Body    api.AttemptReportBody
}

// MetricsReportRequest is the request of Attempts.ReportMetrics: a batch of
// metric reports of job JobID.
type MetricsReportRequest struct {
	JobID string
	Body  api.MetricsBody
	// StepsStoredBy names the follower that forwarded the request after
	// storing its step points (HTTP header X-Trainctl-Steps-Stored-By):
	// the step point it carries is the progress to commit, not one to
	// store again.
	StepsStoredBy string
}

// Report records a worker's report on an attempt (POST
// /v1/jobs/{id}/attempts/{n}). Running reports progress (recorded as a
// metric report when it carries metrics); succeeded finishes the job;
// preempted requeues it without counting; failed requeues it excluding the
// reporting worker, or fails it once max_restarts are used up
// (scheduler.NextAttempt). The first outcome any rank reports ends the
// attempt for all its ranks. Reporting an outcome the attempt already has
// answers the job unchanged, so a retried report (or the same outcome from
// another rank) is safe; another outcome for an attempt that ended is a
// conflict. Answers the job.
func (e *Attempts) Report(ctx context.Context, id Identity, req *AttemptReportRequest) (Reply[*api.Job], error) {
	s := e.srv
	var zero Reply[*api.Job]
	if err := s.authorize(ctx, id, ActionAttemptReport); err != nil {
		return zero, err
	}
	body := &req.Body
	if err := checkID("id", api.KindJob, req.JobID); err != nil {
		return zero, err
	}
	if req.Attempt < 1 {
		return zero, fmt.Errorf("attempt %d: %w: want a number from 1", req.Attempt, structs.ErrInvalid)
	}
	if err := checkOptionalID("worker_id", api.KindWorker, body.WorkerID); err != nil {
		return zero, err
	}
	if err := checkProgress(body.Epoch, body.Step, "metrics", body.Metrics); err != nil {
		return zero, err
	}
	var kind scheduler.EndKind
	st := structs.AttemptState(body.State)
	switch st {
	case structs.AttemptRunning, structs.AttemptSucceeded:
	case structs.AttemptFailed:
		kind = scheduler.Failed
	case structs.AttemptPreempted:
		kind = scheduler.Preempted
	default:
		return zero, fmt.Errorf("state: %w: %q (want running, succeeded, failed or preempted)", structs.ErrInvalid, api.Truncate(string(body.State), 32))
	}
	body.Error = truncateUTF8(body.Error, maxReportErrorLen)
	if err := checkRankReport(body); err != nil {
		return zero, err
	}
	if err := s.leaderOnly(ctx); err != nil {
		return zero, err
	}
	n := req.Attempt
	j, err := s.State().Job(req.JobID)
	if err != nil {
		return zero, err
	}
	if n > len(j.Attempts) {
		return zero, fmt.Errorf("attempt %d of job %s: %w", n, j.ID, structs.ErrNotFound)
	}
	att := j.Attempts[n-1]
	if body.WorkerID != "" {
		if !slices.Contains(att.Nodes, body.WorkerID) {
			return zero, fmt.Errorf("worker_id: %w: %s runs no rank of attempt %d of job %s", structs.ErrInvalid, body.WorkerID, n, j.ID)
		}
		s.renewLease(body.WorkerID)
	}
	if err := checkRanks(att, body); err != nil {
		return zero, err
	}
	if st == structs.AttemptRunning {
		return s.reportProgress(ctx, j, att, body)
	}
	if att.State != structs.AttemptRunning {
		if att.State == st {
			return reply(convertPtr(j, apiJob)), nil
		}
		return zero, fmt.Errorf("attempt %d of job %s: %w: it ended %s", n, j.ID, structs.ErrConflict, att.State)
	}
	if len(body.Metrics) > 0 {
		if _, err := s.raftApply(ctx, structs.MetricsReportRequestType, progressReport(j.ID, n, body)); err != nil {
			return zero, err
		}
	}
	blamed := body.WorkerID
	if body.FailedRank != nil {
		blamed = att.Nodes[*body.FailedRank]
	}
	out, err := s.endAttempt(ctx, j, n, kind, st, blamed, body.Error)
	if errors.Is(err, structs.ErrConflict) {
		// Another rank reported the same outcome first.
		if now, jerr := s.State().Job(j.ID); jerr == nil && now.Attempts[n-1].State == st {
			out, err = now, nil
		}
	}
	if err != nil {
		return zero, err
	}
	s.kickSweepsFor(out)
	return reply(convertPtr(out, apiJob)), nil
}

// reportProgress handles a running report: its metrics, if any, become a
// metric report of the job.
func (s *Server) reportProgress(ctx context.Context, j *structs.Job, att structs.Attempt, body *api.AttemptReportBody) (Reply[*api.Job], error) {
	if att.State != structs.AttemptRunning {
		return Reply[*api.Job]{}, fmt.Errorf("attempt %d of job %s: %w: it ended %s", att.Number, j.ID, structs.ErrConflict, att.State)
	}
	if body.Ring != "" && len(att.Ranks) > 0 {
		out, err := s.raftApply(ctx, structs.RankUpdateRequestType, &structs.RankUpdateRequest{
			JobID: j.ID, Attempt: att.Number, Rank: body.Rank, WorkerID: body.WorkerID,
			Ring: string(body.Ring), Step: body.Step, ImagesPerSec: body.ImagesPerSec, Time: time.Now().UTC(),
		})
		if err != nil {
			return Reply[*api.Job]{}, err
		}
		j = out.(*structs.Job)
	}
	if len(body.Metrics) == 0 {
		return reply(convertPtr(j, apiJob)), nil
	}
	return s.recordMetrics(ctx, j, []api.Metric{{
		Kind: api.MetricStep, JobID: j.ID, Attempt: att.Number, Epoch: body.Epoch, Step: body.Step,
		Values: body.Metrics, Time: time.Now().UTC(),
	}}, false)
}

// progressReport is the metric report of an outcome report's metrics.
func progressReport(jobID string, attempt int, body *api.AttemptReportBody) *structs.MetricsReportRequest {
	return &structs.MetricsReportRequest{JobID: jobID, Metrics: []structs.Metric{{
		JobID: jobID, Attempt: attempt, Epoch: body.Epoch, Step: body.Step,
		Values: body.Metrics, Time: time.Now().UTC(),
	}}}
}

// ReportMetrics records a batch of metrics of a job (POST
// /v1/jobs/{id}/metrics): step points (kind "step") stay in the metrics
// store of the coordinator that received them; reports (epoch ends) are
// committed as one entry, and the progress at most every
// GCConfig.ProgressInterval (see metrics_endpoint.go). Answers the job.
func (e *Attempts) ReportMetrics(ctx context.Context, id Identity, req *MetricsReportRequest) (Reply[*api.Job], error) {
	s := e.srv
	var zero Reply[*api.Job]
	if err := s.authorize(ctx, id, ActionMetricsReport); err != nil {
		return zero, err
	}
	if err := checkID("id", api.KindJob, req.JobID); err != nil {
		return zero, err
	}
	if len(req.Body.Metrics) > maxMetricReports {
		return zero, fmt.Errorf("metrics: %w: %d reports, the limit is %d", structs.ErrInvalid, len(req.Body.Metrics), maxMetricReports)
	}
	now := time.Now().UTC()
	for i := range req.Body.Metrics {
		m := &req.Body.Metrics[i]
		switch {
		case m.JobID == "":
			m.JobID = req.JobID
		case m.JobID != req.JobID:
			return zero, fmt.Errorf("metrics[%d].job_id: %w: %q is not job %s of the path", i, structs.ErrInvalid, api.Truncate(m.JobID, 32), req.JobID)
		}
		if m.Attempt < 0 {
			return zero, fmt.Errorf("metrics[%d].attempt: %w: negative", i, structs.ErrInvalid)
		}
		if err := checkProgress(m.Epoch, m.Step, "values", m.Values); err != nil {
			return zero, fmt.Errorf("metrics[%d].%w", i, err)
		}
		if m.Time.IsZero() {
			m.Time = now
		}
	}
	j, err := s.State().Job(req.JobID)
	if errors.Is(err, structs.ErrNotFound) {
		// This server may not have applied the submission yet: the
		// leader takes the whole request.
		if err := s.leaderOnly(ctx); err != nil {
			return zero, err
		}
	}
	if err != nil {
		return zero, err
	}
	return s.recordMetrics(ctx, j, req.Body.Metrics, req.StepsStoredBy != "")
}

// RegisterCheckpoint registers a checkpoint (POST /v1/checkpoints) whose
// blob was uploaded to /v1/blobs/{digest} of any coordinator first; the
// leader fetches it if needed, replicates it to the voters (an
// ErrReplication error when it cannot reach a majority), then commits the
// record, which becomes the job's latest checkpoint unless a later step
// is registered. Answers the record: Created, or not when the digest was
// registered before.
func (e *Attempts) RegisterCheckpoint(ctx context.Context, id Identity, req *api.RegisterCheckpointBody) (Reply[*api.Checkpoint], error) {
	s := e.srv
	var zero Reply[*api.Checkpoint]
	if err := s.authorize(ctx, id, ActionCheckpointRegister); err != nil {
		return zero, err
	}
	if err := checkID("digest", api.KindDigest, req.Digest); err != nil {
		return zero, err
	}
	if err := checkID("job_id", api.KindJob, req.JobID); err != nil {
		return zero, err
	}
	if req.Attempt < 0 {
		return zero, fmt.Errorf("attempt: %w: negative", structs.ErrInvalid)
	}
	if err := checkProgress(req.Epoch, req.Step, "metrics", req.Metrics); err != nil {
		return zero, err
	}
	if err := s.leaderOnly(ctx); err != nil {
		return zero, err
	}
	if c, err := s.State().Checkpoint(req.Digest); err == nil {
		return reply(convertPtr(c, apiCheckpoint)), nil
	}
	j, err := s.State().Job(req.JobID)
	if err != nil {
		return zero, fmt.Errorf("job_id: %w", err)
	}
	if err := s.verifyCheckpointBlob(ctx, req.Digest); err != nil {
		return zero, fmt.Errorf("register checkpoint: %w", err)
	}
	size, err := s.replicateBlob(ctx, req.Digest)
	if err != nil {
		return zero, fmt.Errorf("register checkpoint: %w", err)
	}
	resp, err := s.raftApply(ctx, structs.CheckpointRegisterRequestType, &structs.CheckpointRegisterRequest{
		Checkpoint: structs.Checkpoint{
			Digest: req.Digest, JobID: req.JobID, Attempt: req.Attempt, Step: req.Step,
			Epoch: req.Epoch, Metrics: req.Metrics, Size: size, Time: time.Now().UTC(),
		},
	})
	if err != nil {
		return zero, err
	}
	s.kickSweepsFor(j)
	c, err := answer(resp, apiCheckpoint)
	return Reply[*api.Checkpoint]{Value: c, Created: true}, err
}

// checkProgress checks the epoch, step and metric values (field
// valuesField) of a report.
func checkProgress(epoch int, step int64, valuesField string, values map[string]float64) error {
	switch {
	case epoch < 0:
		return fmt.Errorf("epoch: %w: %d is negative", structs.ErrInvalid, epoch)
	case step < 0:
		return fmt.Errorf("step: %w: %d is negative", structs.ErrInvalid, step)
	case len(values) > maxMetricValues:
		return fmt.Errorf("%s: %w: %d values, the limit is %d", valuesField, structs.ErrInvalid, len(values), maxMetricValues)
	}
	for k := range values {
		if k == "" || len(k) > maxMetricNameLen || !utf8.ValidString(k) {
			return fmt.Errorf("%s: %w: name %q: want 1 to %d bytes of UTF-8", valuesField, structs.ErrInvalid, api.Truncate(k, 32), maxMetricNameLen)
		}
	}
	return nil
}

// truncateUTF8 cuts s to at most n bytes, at a rune boundary.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// checkRankReport checks the data-parallel fields of a report on their
// own: a known ring state, a finite throughput, rank numbers in range.
func checkRankReport(body *api.AttemptReportBody) error {
	switch body.Ring {
	case "", api.RingWaiting, api.RingConnected, api.RingFailed:
	default:
		return fmt.Errorf("ring: %w: %q (want waiting, connected or failed)", structs.ErrInvalid, api.Truncate(string(body.Ring), 32))
	}
	switch {
	case body.Rank < 0 || body.Rank > 1<<20:
		return fmt.Errorf("rank: %w: %d", structs.ErrInvalid, body.Rank)
	case math.IsNaN(body.ImagesPerSec) || math.IsInf(body.ImagesPerSec, 0) || body.ImagesPerSec < 0:
		return fmt.Errorf("images_per_sec: %w: %v", structs.ErrInvalid, body.ImagesPerSec)
	case body.FailedRank != nil && body.State != api.AttemptFailed:
		return fmt.Errorf("failed_rank: %w: only a failed report blames a rank", structs.ErrInvalid)
	}
	return nil
}

// checkRanks checks a report's rank against the attempt: in range, run by
// the reporting worker, and for a data-parallel attempt only rank 0 (which
// holds the checkpoint) reports success.
func checkRanks(att structs.Attempt, body *api.AttemptReportBody) error {
	n := len(att.Nodes)
	switch {
	case body.Rank >= n:
		return fmt.Errorf("rank: %w: %d, the attempt has %d ranks", structs.ErrInvalid, body.Rank, n)
	case body.WorkerID != "" && att.Nodes[body.Rank] != body.WorkerID:
		return fmt.Errorf("rank: %w: rank %d runs on %s, not %s", structs.ErrInvalid, body.Rank, att.Nodes[body.Rank], body.WorkerID)
	case body.FailedRank != nil && (*body.FailedRank < 0 || *body.FailedRank >= n):
		return fmt.Errorf("failed_rank: %w: %d, the attempt has %d ranks", structs.ErrInvalid, *body.FailedRank, n)
	case body.State == api.AttemptSucceeded && n > 1 && body.Rank != 0:
		return fmt.Errorf("state: %w: rank %d reports success; rank 0 reports the outcome of a data-parallel attempt", structs.ErrInvalid, body.Rank)
	case body.Ring != "" && n > 1 && body.WorkerID == "":
		return fmt.Errorf("worker_id: %w: a rank's ring state needs its worker", structs.ErrInvalid)
	}
	return nil
}
