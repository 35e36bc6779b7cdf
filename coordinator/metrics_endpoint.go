package coordinator

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/trainctl/trainctl/api"
	"github.com/trainctl/trainctl/coordinator/metrics"
	"github.com/trainctl/trainctl/coordinator/state"
	"github.com/trainctl/trainctl/coordinator/structs"
)

// What of a job's metrics is replicated (see docs/architecture.md):
//
//   - reports without a kind (epoch-end evaluations) go through the log
//     into the state: the sweep controller judges trials by them and
//     serving picks checkpoints by them. A job has a bounded number
//     (its epochs; at most GCConfig.MaxReportsPerJob), and they leave the
//     state with the job when it is collected;
//   - step points (kind "step": loss and throughput as training goes) stay
//     in the metrics store of the coordinator that received them, bounded
//     by metrics.Config. Every GCConfig.ProgressInterval at most, the
//     latest becomes the job's progress (Job.Progress) through the log. A
//     step point the sweep controller judges (its job is a trial of a
//     running sweep and it carries the sweep's objective) is replicated
//     like a report.
//
// GET /v1/jobs/{id}/metrics merges the replicated reports with the step
// points of every coordinator. A coordinator that is lost takes with it
// the step points it received and had not passed on; its saved file
// (metricsFile) brings them back after a clean restart.

// metricsMissingHeader lists, comma-separated, the coordinators whose step
// points a GET /v1/jobs/{id}/metrics answer lacks (they did not answer in
// time).
const metricsMissingHeader = "X-Trainctl-Metrics-Missing"

// stepsStoredHeader marks a metrics report a follower forwarded after
// storing its step points: the one step point it carries is the progress
// to commit, not a point to store again. A report forwarded without it
// (its job was unknown to the follower) is stored by the leader.
const stepsStoredHeader = "X-Trainctl-Steps-Stored-By"

// maxPeerMetricsBytes bounds the answer of one coordinator to a local
// metrics read.
const maxPeerMetricsBytes = 32 << 20

// metricsFile is where a coordinator saves its step points when it stops.
func metricsFile(dataDir string) string { return filepath.Join(dataDir, "metrics", "series.jsonl") }

// initMetrics opens the server's metrics store with what it saved when it
// last stopped, and starts its retention loop.
func (s *Server) initMetrics() {
	s.metrics = metrics.New(s.cfg.GC.Metrics)
	if err := s.metrics.LoadFile(metricsFile(s.cfg.DataDir)); err != nil {
		s.log.Warn("step metrics of the last run not loaded", "err", err)
	}
	s.goFunc(func() { s.expireMetrics(s.ctx) })
}

// saveMetrics saves the metrics store for the next start.
func (s *Server) saveMetrics() {
	if s.metrics == nil {
		return
	}
	if err := s.metrics.SaveFile(metricsFile(s.cfg.DataDir)); err != nil {
		s.log.Warn("step metrics not saved", "err", err)
	}
}

// expireMetrics drops the step series past their retention, and those of
// jobs garbage collection removed, once per GC interval.
func (s *Server) expireMetrics(ctx context.Context) {
	t := time.NewTicker(s.cfg.GC.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n := s.metrics.Expire(time.Now())
		for _, id := range s.metrics.Jobs() {
			if _, err := s.State().JobSummary(id); err == nil {
				s.metrics.Remove(id) // its job was collected
				n++
			}
		}
		if n > 0 {
			s.log.Debug("step series dropped", "jobs", n)
		}
	}
}

// recordMetrics records a batch of a job's metrics: its step points in
// this server's metrics store (unless the follower that forwarded the
// request stored them already: stored), its reports (and, when due, the
// progress) through the log. A follower stores the step points, then
// passes only the rest on to the leader (a notLeaderError whose body is
// what is left). Answers the job.
func (s *Server) recordMetrics(ctx context.Context, j *structs.Job, ms []api.Metric, stored bool) (Reply[*api.Job], error) {
	var zero Reply[*api.Job]
	now := time.Now().UTC()
	steps, reports, err := s.splitMetrics(j, ms, now)
	if err != nil {
		return zero, err
	}
	var progress *api.Metric
	if len(steps) > 0 {
		if !stored {
			pts := make([]metrics.Point, len(steps))
			for i, m := range steps {
				pts[i] = metrics.Point{Attempt: m.Attempt, Epoch: m.Epoch, Step: m.Step, Values: m.Values, Time: m.Time}
			}
			if err := s.metrics.Add(j.ID, now, pts...); err != nil {
				return zero, fmt.Errorf("%w: %w", structs.ErrInvalid, err)
			}
		}
		if len(reports) == 0 && (stored || s.metrics.ProgressDue(j.ID, now, s.cfg.GC.ProgressInterval)) {
			progress = &steps[len(steps)-1]
		}
	}
	if len(reports) == 0 && progress == nil {
		return reply(convertPtr(j, apiJob)), nil
	}
	if err := s.leaderOnly(ctx); err != nil {
		return zero, withRemainder(err, j.ID, reports, progress, s.cfg.NodeID)
	}
	var resp any
	if len(reports) > 0 {
		resp, err = s.raftApply(ctx, structs.MetricsReportRequestType, &structs.MetricsReportRequest{
			JobID: j.ID, Metrics: convertSlice(reports, serverMetric),
		})
	} else {
		resp, err = s.raftApply(ctx, structs.JobProgressRequestType, &structs.JobProgressRequest{
			JobID: j.ID, Attempt: progress.Attempt, Step: progress.Step, Epoch: progress.Epoch,
			Metrics: progress.Values, Time: progress.Time,
		})
	}
	if err != nil {
		return zero, err
	}
	if len(reports) > 0 {
		s.kickSweepsFor(j)
	}
	out, err := answer(resp, apiJob)
	return reply(out), err
}

// withRemainder makes a notLeaderError forward only what is left of a
// metrics write once this follower stored its step points: the reports and
// the progress, as a metrics report marked stepsStoredHeader.
func withRemainder(err error, jobID string, reports []api.Metric, progress *api.Metric, self string) error {
	var nl *notLeaderError
	if !errors.As(err, &nl) {
		return err
	}
	fwd := reports
	if progress != nil {
		fwd = append(fwd, *progress)
	}
	body, merr := json.Marshal(api.MetricsBody{Metrics: fwd})
	if merr != nil {
		return merr
	}
	nl.Path = "/v1/jobs/" + url.PathEscape(jobID) + "/metrics"
	nl.Body = body
	nl.Header = http.Header{stepsStoredHeader: {self}}
	return nl
}

// splitMetrics checks a batch of a job's metrics, fills in their job id and
// time, and splits it into step points kept here and reports to replicate.
// Errors wrap structs.ErrInvalid and name the field.
func (s *Server) splitMetrics(j *structs.Job, ms []api.Metric, now time.Time) (steps, reports []api.Metric, err error) {
	var objective string
	if sw, err := s.State().Sweep(j.SweepID); j.SweepID != "" && err == nil && !sw.State.Terminal() {
		objective = sw.Spec.Objective.Metric
	}
	room := s.cfg.GC.MaxReportsPerJob - s.State().MetricCount(j.ID)
	for i, m := range ms {
		switch {
		case m.JobID == "":
			m.JobID = j.ID
		case m.JobID != j.ID:
			return nil, nil, fmt.Errorf("metrics[%d].job_id: %w: %q is not job %s", i, structs.ErrInvalid, m.JobID, j.ID)
		}
		if m.Time.IsZero() {
			m.Time = now
		}
		switch m.Kind {
		case "":
		case api.MetricStep:
			if _, judged := m.Values[objective]; !judged || objective == "" {
				steps = append(steps, m)
				continue
			}
			m.Kind = ""
		default:
			return nil, nil, fmt.Errorf("metrics[%d].kind: %w: %q (want %q or none)", i, structs.ErrInvalid, m.Kind, api.MetricStep)
		}
		if len(reports) >= room {
			m.Kind = api.MetricStep // past the job's bound: kept as a step point
			steps = append(steps, m)
			continue
		}
		reports = append(reports, m)
	}
	return steps, reports, nil
}

// JobMetricsRequest is the request of Jobs.Metrics.
type JobMetricsRequest struct {
	ID string
	// Local asks for this server's step points alone, known job or not:
	// what the other coordinators ask (?local=1).
	Local bool
	api.QueryOptions
}

// Metrics answers a job's metrics (GET /v1/jobs/{id}/metrics): the
// replicated reports and the step points of every coordinator, ordered by
// attempt and step (a step point before a report of the same step). The
// coordinators that did not answer in time are named in the
// X-Trainctl-Metrics-Missing header.
func (e *Jobs) Metrics(ctx context.Context, id Identity, req *JobMetricsRequest) (Reply[[]api.Metric], error) {
	s := e.srv
	var zero Reply[[]api.Metric]
	if err := s.authorize(ctx, id, ActionJobRead); err != nil {
		return zero, err
	}
	if err := checkID("id", api.KindJob, req.ID); err != nil {
		return zero, err
	}
	if req.Local {
		return reply(stepMetrics(req.ID, s.metrics.Series(req.ID))), nil
	}
	idx := s.waitTables(ctx, req.QueryOptions, state.TableMetrics, state.TableJobs)
	if _, err := s.State().Job(req.ID); err != nil {
		return Reply[[]api.Metric]{Index: idx}, err
	}
	out := convertSlice(s.State().Metrics(req.ID), apiMetric)
	out = append(out, stepMetrics(req.ID, s.metrics.Series(req.ID))...)
	peer, missing := s.peerMetrics(ctx, req.ID)
	rep := Reply[[]api.Metric]{Value: mergeMetrics(append(out, peer...)), Index: idx}
	if len(missing) > 0 {
		rep.Header = http.Header{metricsMissingHeader: {strings.Join(missing, ",")}}
	}
	return rep, nil
}

// stepMetrics returns a job's step points in their wire form (never nil).
func stepMetrics(jobID string, pts []metrics.Point) []api.Metric {
	out := make([]api.Metric, len(pts))
	for i, p := range pts {
		out[i] = api.Metric{JobID: jobID, Attempt: p.Attempt, Epoch: p.Epoch, Step: p.Step, Values: p.Values, Time: p.Time, Kind: api.MetricStep}
	}
	return out
}

// peerMetrics asks every other coordinator of the server registry for its
// step points of a job, at once, within GCConfig.FanoutTimeout, and returns
// them with the ids of those that did not answer.
func (s *Server) peerMetrics(ctx context.Context, jobID string) ([]api.Metric, []string) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.GC.FanoutTimeout)
	defer cancel()
	var (
		mu      sync.Mutex
		out     []api.Metric
		missing []string
		wg      sync.WaitGroup
	)
	hc := &http.Client{Transport: s.proxyTransport}
	for _, srv := range s.State().Servers() {
		if srv.ID == s.cfg.NodeID {
			continue
		}
		wg.Go(func() {
			ms, err := fetchLocalMetrics(ctx, hc, srv.HTTPAddr, jobID)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				s.log.Debug("step metrics of a peer", "peer", srv.ID, "job", jobID, "err", err)
				missing = append(missing, srv.ID)
				return
			}
			out = append(out, ms...)
		})
	}
	wg.Wait()
	slices.Sort(missing)
	return out, missing
}

// fetchLocalMetrics reads a coordinator's own step points of a job.
func fetchLocalMetrics(ctx context.Context, hc *http.Client, addr, jobID string) ([]api.Metric, error) {
	u := (&url.URL{Scheme: "http", Host: addr, Path: "/v1/jobs/" + jobID + "/metrics", RawQuery: "local=1"}).String()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", u, resp.Status)
	}
	var ms []api.Metric
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxPeerMetricsBytes)).Decode(&ms); err != nil {
		return nil, fmt.Errorf("%s: %w", u, err)
	}
	for i := range ms {
		ms[i].Kind, ms[i].JobID = api.MetricStep, jobID
	}
	return ms, nil
}

// mergeMetrics orders a job's metrics by attempt and step, a step point
// before a report of the same step, keeping the order of equal ones, and
// drops repeated step points (a worker that retried a report on another
// coordinator).
func mergeMetrics(ms []api.Metric) []api.Metric {
	type key struct {
		attempt int
		step    int64
		time    int64
	}
	seen := make(map[key]bool)
	out := ms[:0]
	for _, m := range ms {
		if m.Kind == api.MetricStep {
			k := key{m.Attempt, m.Step, m.Time.UnixNano()}
			if seen[k] {
				continue
			}
			seen[k] = true
		}
		out = append(out, m)
	}
	slices.SortStableFunc(out, func(a, b api.Metric) int {
		return cmp.Or(cmp.Compare(a.Attempt, b.Attempt), cmp.Compare(a.Step, b.Step), kindRank(a)-kindRank(b))
	})
	return out
}

func kindRank(m api.Metric) int {
	if m.Kind == api.MetricStep {
		return 0
	}
	return 1
}
