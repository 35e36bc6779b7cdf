// Package sweeper is the decision logic of the sweep controller that runs on
// the coordinator's Raft leader: given what the state store holds of one
// running sweep (a View), Step computes the next structs.SweepStepRequest —
// the results the sweep's scheduler judged, the trials whose jobs ended,
// their best checkpoints, the trials the searcher suggests next, the sweep's
// best checkpoint and, at the end, its finish. The leader proposes the
// request to Raft; the FSM applies it. The package does no I/O: Step is a
// deterministic function of the view and the time it is given, so a new
// leader that rebuilds its scheduler from the committed results continues a
// sweep exactly, and Replay recomputes every recorded decision and
// suggestion from the sweep's spec and log alone.
package sweeper

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/trainctl/trainctl/coordinator/structs"
	"github.com/trainctl/trainctl/tuning"
)

// View is what the controller sees of one running sweep: the sweep and,
// keyed by job id, its trial jobs and their metric reports and checkpoints
// (each in commit order). Step only reads it.
type View struct {
	Sweep       *structs.Sweep
	Jobs        map[string]*structs.Job
	Metrics     map[string][]structs.Metric
	Checkpoints map[string][]*structs.Checkpoint
}

// Controller computes sweep steps. It caches, per sweep, the searcher built
// from the spec and the scheduler fed with the sweep's results, so that a
// pass costs only the new results. The cache is checked against the sweep
// on every Step and rebuilt from the committed results when they differ
// (a new leader, or a step that was never committed), so it never changes
// a decision. A Controller is safe for concurrent use, but the leader is
// meant to step each sweep from one goroutine and to apply one step before
// computing the next.
type Controller struct {
	log    *slog.Logger
	mu     sync.Mutex
	sweeps map[string]*sweepCache
}

// sweepCache is a Controller's state for one sweep.
type sweepCache struct {
	searcher tuning.Searcher
	sched    tuning.Scheduler
	// fed counts the results sched has judged (the sweep's committed ones
	// plus those of the last request); last is the last of them, to notice
	// a log of the same length with other contents.
	fed  int
	last structs.SweepResult
}

// New returns a Controller that logs to log (nil: discard).
func New(log *slog.Logger) *Controller {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Controller{log: log, sweeps: map[string]*sweepCache{}}
}

// TrialJobID is the id of the job of trial n of a sweep: the sweep id, "-t"
// and the number, so that trial jobs are recognisable and unique.
func TrialJobID(sweepID string, n int) string {
	return sweepID + "-t" + strconv.Itoa(n)
}

// Forget drops the cache of a sweep, for a sweep that ended or when the
// leader loses leadership.
func (c *Controller) Forget(sweepID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.sweeps, sweepID)
}

// Step returns the SweepStepRequest for one pass over v.Sweep, or nil when
// there is nothing to record (or the sweep is not running). Everything it
// decides goes into the one request, in the order the FSM applies it:
//
//  1. Results: for each running trial, in number order, the reports of its
//     job (in commit order) that carry the objective metric and whose budget
//     — Metric.Epoch+1 with unit epochs (Epoch is the 0-based epoch just
//     finished), Metric.Step with unit steps — exceeds the trial's Budget
//     and the previous result's. A resumed attempt repeating an epoch is
//     thus never judged twice, and a failed or preempted attempt is no
//     result at all. Each is judged by the scheduler (a non-finite value is
//     recorded as 0 with NonFinite and judged as NaN, the worst); a trial
//     is fed no more once a decision is stop or complete.
//  2. Ends: each running trial not stopped in 1 whose job ended: succeeded
//     → completed, failed → failed, cancelled → cancelled (with the job's
//     error); a missing job → failed with "job not found".
//  3. Checkpoints: each trial's best checkpoint (see BestCheckpoint), valued
//     only by reports within the budget the scheduler judged, where it
//     differs from the recorded one.
//  4. NewTrials: while fewer than max_concurrent trials run, fewer than
//     max_trials exist and the searcher is not exhausted, the searcher's
//     suggestion for the next number n. Its history has one
//     tuning.Observation per trial 0..n-1 (those proposed earlier in this
//     step included), valued as the type history says from the sweep's
//     results plus this step's: the first ResultsSeen =
//     len(Sweep.Results)+len(Results) results of the log once this step is
//     applied, which is what Replay recomputes it from. Observation.Value is
//     thus tuning.Spec.SearchHistory's: with fifo the trial's best finite
//     result by mode (NaN when it has only non-finite ones; HasValue false
//     without results); with an early-stopping scheduler its value at the
//     largest budget n_startup trials reached (HasValue false for a trial
//     that did not reach it), so that stopped trials' early values are not
//     compared with completed trials' final ones. tuning.ErrExhausted
//     sets Exhausted. A searcher or TrialJob error stops suggesting, and the
//     sweep finishes failed with it once no trial runs (a finish needs every
//     trial ended).
//  5. Best: the trial with the best checkpoint value by mode (ties: the
//     lower number), where it differs from Sweep.Best.
//  6. Finish: once no trial runs after this step and max_trials are
//     created, the searcher is exhausted, or it failed: completed when a
//     trial ended completed or stopped with a finite result, else failed
//     with "every trial failed: " and the first trial's problem. New trials
//     never come with a finish.
//
// Step errs on a malformed sweep (trials not numbered by index, max_trials
// or max_concurrent below 1, a spec the scheduler or searcher rejects);
// the cache of that sweep is then dropped.
func (c *Controller) Step(v View, now time.Time) (*structs.SweepStepRequest, error) {
	sw := v.Sweep
	if sw == nil {
		return nil, errors.New("sweeper: view has no sweep")
	}
	if sw.State != structs.SweepRunning {
		return nil, nil
	}
	if sw.Spec.MaxTrials < 1 || sw.Spec.MaxConcurrent < 1 {
		return nil, fmt.Errorf("sweeper: sweep %s: max_trials %d and max_concurrent %d must be at least 1", sw.ID, sw.Spec.MaxTrials, sw.Spec.MaxConcurrent)
	}
	for i := range sw.Trials {
		if sw.Trials[i].Number != i {
			return nil, fmt.Errorf("sweeper: sweep %s: trial at index %d has number %d", sw.ID, i, sw.Trials[i].Number)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	sc, err := c.cache(sw)
	if err != nil {
		delete(c.sweeps, sw.ID)
		return nil, err
	}
	req, err := c.step(sc, v, now)
	if err != nil {
		delete(c.sweeps, sw.ID)
		return nil, err
	}
	if req != nil && len(req.Results) > 0 {
		sc.fed = len(sw.Results) + len(req.Results)
		sc.last = req.Results[len(req.Results)-1]
	}
	return req, nil
}

// cache returns the sweep's cache with a scheduler that has judged exactly
// sw.Results, rebuilding it when it has judged anything else.
func (c *Controller) cache(sw *structs.Sweep) (*sweepCache, error) {
	sc := c.sweeps[sw.ID]
	if sc == nil {
		s, err := sw.Spec.User().NewSearcher()
		if err != nil {
			return nil, fmt.Errorf("sweeper: sweep %s: %w", sw.ID, err)
		}
		sc = &sweepCache{searcher: s}
		c.sweeps[sw.ID] = sc
	}
	n := len(sw.Results)
	if sc.sched != nil && sc.fed == n && (n == 0 || sameResult(sc.last, sw.Results[n-1])) {
		return sc, nil
	}
	if sc.sched != nil {
		c.log.Info("sweep scheduler rebuilt from its log", "sweep", sw.ID, "results", n, "cached", sc.fed)
	}
	sched, err := tuning.NewScheduler(sw.Spec.User())
	if err != nil {
		return nil, fmt.Errorf("sweeper: sweep %s: %w", sw.ID, err)
	}
	for i, r := range sw.Results {
		d := sched.OnResult(tuning.Result{Trial: r.Trial, Budget: r.Budget, Value: resultValue(r)})
		if d.String() != r.Decision {
			c.log.Warn("sweep decision differs on replay; the recorded one stands", "sweep", sw.ID,
				"result", i, "trial", r.Trial, "budget", r.Budget, "recorded", r.Decision, "replayed", d.String())
		}
	}
	sc.sched, sc.fed = sched, n
	if n > 0 {
		sc.last = sw.Results[n-1]
	}
	return sc, nil
}

// sameResult reports whether a and b are the same committed result.
func sameResult(a, b structs.SweepResult) bool {
	return a.Trial == b.Trial && a.Budget == b.Budget && a.Value == b.Value && a.NonFinite == b.NonFinite &&
		a.Decision == b.Decision && a.Time.Equal(b.Time)
}

// resultValue is the value a recorded result is judged with: NaN (the
// worst) for a non-finite one.
func resultValue(r structs.SweepResult) float64 {
	if r.NonFinite {
		return math.NaN()
	}
	return r.Value
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// better reports whether a is strictly better than b in mode.
func better(mode tuning.Mode, a, b float64) bool { return mode.Better(a, b) }

// budgetOf is the budget a metric report stands for.
func budgetOf(unit string, m structs.Metric) (int, error) {
	switch unit {
	case tuning.UnitEpochs, "":
		return m.Epoch + 1, nil
	case tuning.UnitSteps:
		return int(m.Step), nil
	}
	return 0, fmt.Errorf("budget unit %q is not %s or %s", unit, tuning.UnitEpochs, tuning.UnitSteps)
}

// step computes one pass; see Step.
func (c *Controller) step(sc *sweepCache, v View, now time.Time) (*structs.SweepStepRequest, error) {
	sw, spec := v.Sweep, v.Sweep.Spec.User()
	metric, mode := spec.Objective.Metric, spec.Objective.Mode
	req := &structs.SweepStepRequest{SweepID: sw.ID, Time: now}
	n := len(sw.Trials)
	// state is each trial's state after this step's results and ends.
	state := make([]structs.TrialState, n)
	for i := range sw.Trials {
		state[i] = sw.Trials[i].State
	}

	// 1. Results.
	for i := range sw.Trials {
		t := &sw.Trials[i]
		if t.State != structs.TrialRunning || t.Decision == tuning.DecisionStop.String() || t.Decision == tuning.DecisionComplete.String() {
			continue
		}
		last := t.Budget
		for _, m := range v.Metrics[t.JobID] {
			val, ok := m.Values[metric]
			if !ok {
				continue
			}
			b, err := budgetOf(spec.Budget.Unit, m)
			if err != nil {
				return nil, fmt.Errorf("sweeper: sweep %s: %w", sw.ID, err)
			}
			if b <= last {
				continue
			}
			last = b
			r := structs.SweepResult{Trial: i, Budget: b, Value: val, Time: now}
			if !finite(val) {
				r.Value, r.NonFinite = 0, true
			}
			d := sc.sched.OnResult(tuning.Result{Trial: i, Budget: b, Value: resultValue(r)})
			r.Decision = d.String()
			req.Results = append(req.Results, r)
			switch {
			case d == tuning.DecisionStop:
				state[i] = structs.TrialStopped
			case d == tuning.DecisionComplete && spec.Budget.Unit == tuning.UnitSteps:
				// The FSM ends the trial (and cancels its job) with the
				// result: it must get no TrialEnd in this step.
				state[i] = structs.TrialCompleted
			}
			if !d.Running() {
				break
			}
		}
	}

	// 2. Ends.
	for i := range sw.Trials {
		t := &sw.Trials[i]
		if t.State != structs.TrialRunning || state[i] != structs.TrialRunning {
			continue
		}
		job := v.Jobs[t.JobID]
		end := structs.TrialEnd{Trial: i}
		switch {
		case job == nil:
			end.State, end.Error = structs.TrialFailed, "job not found"
		case job.State == structs.JobSucceeded:
			end.State = structs.TrialCompleted
		case job.State == structs.JobFailed:
			end.State, end.Error = structs.TrialFailed, job.Error
			if end.Error == "" {
				end.Error = "job failed"
			}
		case job.State == structs.JobCancelled:
			end.State, end.Error = structs.TrialCancelled, job.Error
		default:
			continue
		}
		state[i] = end.State
		req.Ends = append(req.Ends, end)
	}

	// 3. Checkpoints.
	// Only reports the scheduler judged count: a stopped trial's job may
	// finish another epoch before its cancel lands, and that unjudged
	// value must not make it the sweep's best.
	judged := make([]int, n)
	for i := range sw.Trials {
		judged[i] = sw.Trials[i].Budget
	}
	for _, r := range req.Results {
		judged[r.Trial] = max(judged[r.Trial], r.Budget)
	}
	ckpt := make([]structs.TrialCheckpoint, n)
	for i := range sw.Trials {
		t := &sw.Trials[i]
		ckpt[i] = structs.TrialCheckpoint{Trial: i, Checkpoint: t.BestCheckpoint, Value: t.BestCheckpointValue}
		var ms []structs.Metric
		for _, m := range v.Metrics[t.JobID] {
			if b, err := budgetOf(spec.Budget.Unit, m); err == nil && b <= judged[i] {
				ms = append(ms, m)
			}
		}
		digest, val, ok := BestCheckpoint(metric, mode, ms, v.Checkpoints[t.JobID])
		if ok && (digest != t.BestCheckpoint || val != t.BestCheckpointValue) {
			ckpt[i] = structs.TrialCheckpoint{Trial: i, Checkpoint: digest, Value: val}
			req.Checkpoints = append(req.Checkpoints, ckpt[i])
		}
	}

	// 4. New trials.
	running := 0
	for _, s := range state {
		if s == structs.TrialRunning {
			running++
		}
	}
	exhausted := sw.Exhausted
	var hist *history
	var suggestErr string
	seen := len(sw.Results) + len(req.Results)
	for running < spec.MaxConcurrent && n+len(req.NewTrials) < spec.MaxTrials && !exhausted {
		if hist == nil {
			hist = newHistory(spec, sw.Trials)
			hist.add(sw.Results...)
			hist.add(req.Results...)
		}
		k := n + len(req.NewTrials)
		params, err := sc.searcher.Suggest(k, hist.before(k))
		if errors.Is(err, tuning.ErrExhausted) {
			exhausted, req.Exhausted = true, true
			break
		}
		if err != nil {
			suggestErr = fmt.Sprintf("trial %d: suggest: %v", k, err)
			break
		}
		job, err := spec.TrialJob(params)
		if err != nil {
			suggestErr = fmt.Sprintf("trial %d: job: %v", k, err)
			break
		}
		req.NewTrials = append(req.NewTrials, structs.NewTrial{
			Number: k, Params: params, ResultsSeen: seen, JobID: TrialJobID(sw.ID, k), Job: structs.NewJobSpec(job),
		})
		hist.propose(k, params)
		running++
	}
	if suggestErr != "" && running > 0 {
		c.log.Warn("sweep cannot suggest a trial; it finishes failed once its running trials end",
			"sweep", sw.ID, "err", suggestErr)
	}

	// 5. Best.
	var best *structs.SweepBest
	for i := range ckpt {
		if ckpt[i].Checkpoint == "" || !finite(ckpt[i].Value) {
			continue
		}
		if best == nil || better(mode, ckpt[i].Value, best.Value) {
			best = &structs.SweepBest{Trial: i, JobID: sw.Trials[i].JobID, Checkpoint: ckpt[i].Checkpoint, Value: ckpt[i].Value}
		}
	}
	if best != nil && (sw.Best == nil || *sw.Best != *best) {
		req.Best = best
	}

	// 6. Finish.
	if running == 0 && (n+len(req.NewTrials) >= spec.MaxTrials || exhausted || suggestErr != "") {
		req.Finish = finish(sw, req, state, suggestErr)
	}

	if len(req.Results) == 0 && len(req.Ends) == 0 && len(req.Checkpoints) == 0 && len(req.NewTrials) == 0 &&
		req.Best == nil && !req.Exhausted && req.Finish == nil {
		return nil, nil
	}
	return req, nil
}

// finish is the finish of a sweep none of whose trials runs after req:
// failed with suggestErr when the searcher failed, completed when a trial
// ended completed or stopped with a finite result, else failed naming the
// first trial's problem.
func finish(sw *structs.Sweep, req *structs.SweepStepRequest, state []structs.TrialState, suggestErr string) *structs.SweepFinish {
	if suggestErr != "" {
		return &structs.SweepFinish{State: structs.SweepFailed, Error: suggestErr}
	}
	hist := newHistory(sw.Spec.User(), sw.Trials)
	hist.add(sw.Results...)
	hist.add(req.Results...)
	obs := hist.best()
	errs := make([]string, len(sw.Trials))
	for i := range sw.Trials {
		errs[i] = sw.Trials[i].Error
	}
	for _, e := range req.Ends {
		errs[e.Trial] = e.Error
	}
	first := ""
	for i, s := range state {
		o := obs[i]
		if (s == structs.TrialCompleted || s == structs.TrialStopped) && o.HasValue && finite(o.Value) {
			return &structs.SweepFinish{State: structs.SweepCompleted}
		}
		if first != "" {
			continue
		}
		switch {
		case errs[i] != "":
			first = fmt.Sprintf("trial %d: %s", i, errs[i])
		default:
			first = fmt.Sprintf("trial %d: %s without a finite %s", i, s, sw.Spec.Objective.Metric)
		}
	}
	if first == "" {
		first = "no trials"
	}
	return &structs.SweepFinish{State: structs.SweepFailed, Error: "every trial failed: " + first}
}

// BestCheckpoint is tuning.BestCheckpoint over a job's metric reports and
// checkpoint records (nil records are skipped).
func BestCheckpoint(metric string, mode tuning.Mode, ms []structs.Metric, cks []*structs.Checkpoint) (digest string, value float64, ok bool) {
	reports := make([]tuning.StepReport, len(ms))
	for i, m := range ms {
		reports[i] = tuning.StepReport{Attempt: m.Attempt, Step: m.Step, Values: m.Values}
	}
	at := make([]tuning.CheckpointAt, 0, len(cks))
	for _, ck := range cks {
		if ck != nil {
			at = append(at, tuning.CheckpointAt{Digest: ck.Digest, Attempt: ck.Attempt, Step: ck.Step})
		}
	}
	return tuning.BestCheckpoint(metric, mode, reports, at)
}
