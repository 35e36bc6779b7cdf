package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/trainctl/trainctl/api"
	"github.com/trainctl/trainctl/tuning"
)

// `trainctl sweep` and `trainctl sweeps ls|get|trials|cancel|replay`: the
// hyperparameter sweeps of tuning/, run by the coordinator's sweep
// controller. Thin: parsing, output, nothing else.

func sweepCommand() *cli.Command {
	return &cli.Command{
		Name:         "sweep",
		Usage:        "start a hyperparameter sweep from a YAML sweep spec",
		ArgsUsage:    " ",
		OnUsageError: globalFlagHint,
		Description: "Reads the sweep spec (see deploy/examples/sweep.yaml: name, the base job, search_space,\n" +
			"objective, searcher, scheduler, max_trials, max_concurrent, budget, seed), checks it\n" +
			"(every problem is listed as FILE:LINE: FIELD: what is wrong, and nothing is\n" +
			"submitted), submits it and prints the sweep id. The coordinator's sweep controller\n" +
			"then starts trials (each one a job: the base job with the trial's hyperparameters),\n" +
			"judges their results with the scheduler, stops the poor ones early, and when the\n" +
			"sweep completes registers its best checkpoint as the next version of the model named\n" +
			"after the sweep (`trainctl models get NAME`).\n\n" +
			"Every submission carries a request id, random unless --request-id gives one:\n" +
			"submitting again with the same --request-id returns the sweep the first submission\n" +
			"created and never starts a second one. Scripts that retry should pass one.\n\n" +
			"--wait stays until the sweep ends, printing one line per change (trial started with\n" +
			"its parameters, each result with its budget, value and the scheduler's decision,\n" +
			"trial stopped early, completed or failed, new best), then the leaderboard and the\n" +
			"best checkpoint; it exits non-zero if the sweep failed or was cancelled. Ctrl-C stops\n" +
			"waiting, not the sweep.\n\n" +
			"Examples:\n" +
			"  trainctl sweep -f deploy/examples/sweep.yaml\n" +
			"  trainctl sweep -f sweep.yaml --wait\n" +
			"  trainctl sweep -f sweep.yaml --request-id lr-search-2026-11-22   # safe to retry\n" +
			"  SWEEP=$(trainctl sweep -f sweep.yaml) && trainctl sweeps get $SWEEP",
		Flags: withClusterFlags(
			&cli.StringFlag{Name: "file", Aliases: []string{"f"}, Usage: "sweep spec `FILE` (YAML)", Required: true},
			&cli.BoolFlag{Name: "wait", Usage: "wait until the sweep ends; exit non-zero if it failed or was cancelled"},
			&cli.StringFlag{Name: "request-id", Usage: "idempotency key `ID` (default: a random UUID); resubmitting with the same ID returns the same sweep"},
			pollFlag(),
		),
		Action: runSweep,
	}
}

// parseSweepFile reads and checks a sweep spec, listing every problem as
// FILE:LINE: FIELD: message.
func parseSweepFile(file string) (tuning.Spec, error) {
	spec, err := tuning.ParseFile(file)
	if err != nil {
		return tuning.Spec{}, specFileError("sweep", file, err)
	}
	return spec, nil
}

func runSweep(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	p, cl, err := clusterSetup(c)
	if err != nil {
		return err
	}
	poll, err := pollInterval(c)
	if err != nil {
		return err
	}
	reqID, err := requestIDFlag(c, "sweep")
	if err != nil {
		return err
	}
	file := c.String("file")
	spec, err := parseSweepFile(file)
	if err != nil {
		return err
	}
	sw, err := cl.SubmitSweep(c.Context, reqID, spec)
	if err != nil {
		return fmt.Errorf("sweep %s: %w", file, clusterError(c, err, "", ""))
	}
	s := sw.Spec
	summary := fmt.Sprintf("sweep %s (%s) %s: up to %d trial(s), %d at a time; request id %s (submitting again with --request-id %s returns this sweep)",
		sw.ID, s.Name, sw.State, s.MaxTrials, s.MaxConcurrent, sw.RequestID, sw.RequestID)
	return reportSubmitted(c, p, sw.ID, sw, summary, fmt.Sprintf("follow it with `trainctl sweeps get --wait %s`", sw.ID),
		func(sw *api.Sweep) (*api.Sweep, error) { return waitSweep(c, cl, sw, poll) })
}

// waitSweep follows a sweep until it ends, printing what changed (to stderr
// under -o json, whose stdout gets the sweep as it ended), then the
// leaderboard and the best checkpoint; it fails unless the sweep completed.
// It returns the sweep as last seen.
func waitSweep(c *cli.Context, cl *api.Client, sw *api.Sweep, poll time.Duration) (*api.Sweep, error) {
	out := c.App.Writer
	if p, _ := newPrinter(c); p.JSON() {
		out = c.App.ErrWriter
	}
	id := sw.ID
	sw, err := follow(c.Context, out, poll, sw, sw.CreateIndex,
		func(ctx context.Context, q *api.QueryOptions) (*api.Sweep, api.QueryMeta, error) {
			return cl.SweepQuery(ctx, id, q)
		},
		sweepChanges,
		func(s *api.Sweep) bool { return s.State.Terminal() }, clockPrefix)
	switch {
	case c.Context.Err() != nil:
		return sw, fmt.Errorf("stopped waiting; sweep %s keeps running (follow it again with `trainctl sweeps get --wait %s`; stop it with `trainctl sweeps cancel %s`)", sw.ID, sw.ID, sw.ID)
	case err != nil:
		return sw, clusterError(c, err, notFoundSweep(sw.ID), sweepsLsHint)
	}
	trials, err := cl.SweepTrials(c.Context, sw.ID)
	if err != nil {
		return sw, clusterError(c, err, notFoundSweep(sw.ID), sweepsLsHint)
	}
	fmt.Fprintln(out)
	if err := writeLeaderboard(out, sw, trials); err != nil {
		return sw, err
	}
	fmt.Fprintln(out, bestLine(sw))
	switch sw.State {
	case api.SweepCompleted:
		return sw, nil
	case api.SweepFailed:
		return sw, fmt.Errorf("sweep %s failed: %s", sw.ID, orDash(sw.Error))
	default:
		return sw, fmt.Errorf("sweep %s was %s", sw.ID, sw.State)
	}
}

// sweepChanges describes what changed from prev (nil: nothing seen yet) to
// cur: results judged, trials ended and started, in time order (within one
// step of the sweep controller, in the order it commits them: results,
// ends, new trials), then a new best checkpoint and the sweep's end.
func sweepChanges(prev, cur *api.Sweep) []string {
	var out []string
	if prev == nil {
		prev = &api.Sweep{}
		if !cur.State.Terminal() {
			out = append(out, fmt.Sprintf("sweep %s (%s) %s", cur.ID, cur.Spec.Name, cur.State))
		}
	}
	type event struct {
		t time.Time
		s string
	}
	var evs []event
	unit, metric := cur.Spec.Budget.Unit, cur.Spec.Objective.Metric
	for _, r := range cur.Results[min(len(prev.Results), len(cur.Results)):] {
		evs = append(evs, event{r.Time, resultLine(r, unit, metric)})
	}
	for i := range cur.Trials {
		tr := &cur.Trials[i]
		if tr.State.Terminal() && (i >= len(prev.Trials) || prev.Trials[i].State != tr.State) {
			evs = append(evs, event{tr.EndTime, trialEndLine(tr, unit, metric)})
		}
	}
	for i := len(prev.Trials); i < len(cur.Trials); i++ {
		tr := &cur.Trials[i]
		evs = append(evs, event{tr.StartTime, fmt.Sprintf("trial %d started: %s (job %s)", tr.Number, compactParams(tr.Params), tr.JobID)})
	}
	slices.SortStableFunc(evs, func(a, b event) int { return a.t.Compare(b.t) })
	for _, e := range evs {
		out = append(out, e.s)
	}
	if b := cur.Best; b != nil && (prev.Best == nil || *prev.Best != *b) {
		out = append(out, fmt.Sprintf("best: trial %d, %s=%s, checkpoint %s", b.Trial, metric, fmtValue(b.Value), shortDigest(b.Checkpoint)))
	}
	if cur.State.Terminal() && prev.State != cur.State {
		s := fmt.Sprintf("sweep %s %s", cur.ID, cur.State)
		if cur.Error != "" {
			s += ": " + cur.Error
		}
		out = append(out, s)
	}
	return out
}

// resultLine formats one judged result: "trial 2 epoch 3:
// val_mean_iou=0.612 → promote".
func resultLine(r api.SweepResult, unit, metric string) string {
	v := fmtValue(r.Value)
	if r.NonFinite {
		v = "non-finite (diverged)"
	}
	return fmt.Sprintf("trial %d %s %d: %s=%s → %s", r.Trial, budgetUnitName(unit), r.Budget, metric, v, r.Decision)
}

// trialEndLine says how a trial ended.
func trialEndLine(tr *api.Trial, unit, metric string) string {
	best := "no result"
	switch {
	case tr.HasFinite():
		best = fmt.Sprintf("best %s=%s at %s %d", metric, fmtValue(tr.BestValue), budgetUnitName(unit), tr.BestBudget)
	case tr.HasValue:
		best = fmt.Sprintf("every %s was non-finite: diverged", metric)
	}
	switch tr.State {
	case api.TrialStopped:
		return fmt.Sprintf("trial %d stopped early after %s (%s)", tr.Number, budgetString(tr.Budget, unit), best)
	case api.TrialCompleted:
		return fmt.Sprintf("trial %d completed (%s)", tr.Number, best)
	case api.TrialFailed:
		return fmt.Sprintf("trial %d failed: %s (`trainctl jobs logs %s`)", tr.Number, orDash(tr.Error), tr.JobID)
	default:
		s := fmt.Sprintf("trial %d %s", tr.Number, tr.State)
		if tr.Error != "" {
			s += ": " + tr.Error
		}
		return s
	}
}

// budgetUnitName is the singular of a budget unit: "epoch" or "step".
func budgetUnitName(unit string) string {
	if unit == tuning.UnitSteps {
		return "step"
	}
	return "epoch"
}

func unitPlural(unit string) string { return budgetUnitName(unit) + "s" }

// budgetString formats a budget with its unit: "1 epoch", "3 epochs".
func budgetString(n int, unit string) string {
	if n == 1 {
		return "1 " + budgetUnitName(unit)
	}
	return strconv.Itoa(n) + " " + unitPlural(unit)
}

// fmtValue formats an objective value for people.
func fmtValue(v float64) string { return strconv.FormatFloat(v, 'g', 4, 64) }

// compactParams formats trial parameters as sorted name=value pairs, floats
// to 3 significant digits: "lr=0.00123 optimizer=adam".
func compactParams(p tuning.Params) string {
	names := p.Names()
	parts := make([]string, len(names))
	for i, n := range names {
		v := p[n]
		s := v.String()
		if v.Kind() == tuning.KindFloat {
			s = strconv.FormatFloat(v.Float(), 'g', 3, 64)
		}
		parts[i] = n + "=" + s
	}
	return strings.Join(parts, " ")
}

// trialStateName is a trial's state in tables: "stopped early" for stopped.
func trialStateName(s api.TrialState) string {
	if s == api.TrialStopped {
		return "stopped early"
	}
	return string(s)
}

// leaderboardRows are the rows of a leaderboard, trials in the given
// (leaderboard) order.
func leaderboardRows(sw *api.Sweep, trials []api.Trial) [][]string {
	rows := make([][]string, len(trials))
	for i, tr := range trials {
		best := "-"
		switch {
		case tr.HasFinite():
			best = fmtValue(tr.BestValue)
		case tr.HasValue:
			best = "diverged"
		}
		ck := "-"
		if tr.BestCheckpoint != "" {
			ck = shortDigest(tr.BestCheckpoint)
		}
		rows[i] = []string{strconv.Itoa(tr.Number), orDash(compactParams(tr.Params)),
			fmt.Sprintf("%d/%d", tr.Budget, sw.Spec.Budget.Max), best, trialStateName(tr.State), ck, orDash(tr.JobID)}
	}
	return rows
}

// leaderboardHeader names the columns of leaderboardRows; BEST is headed by
// the objective metric.
func leaderboardHeader(sw *api.Sweep) []string {
	return []string{"TRIAL", "PARAMS", strings.ToUpper(unitPlural(sw.Spec.Budget.Unit)), "BEST " + strings.ToUpper(sw.Spec.Objective.Metric), "STATE", "CHECKPOINT", "JOB"}
}

// writeLeaderboard prints trials, best first, as a table.
func writeLeaderboard(w io.Writer, sw *api.Sweep, trials []api.Trial) error {
	if len(trials) == 0 {
		_, err := fmt.Fprintln(w, "no trials yet")
		return err
	}
	p := &printer{w: w, format: "table"}
	return p.Table(leaderboardHeader(sw), leaderboardRows(sw, trials))
}

// bestLine says which checkpoint is the sweep's best, with its full digest
// (for `trainctl models register --checkpoint`).
func bestLine(sw *api.Sweep) string {
	b := sw.Best
	if b == nil {
		return "best checkpoint: none yet"
	}
	return fmt.Sprintf("best checkpoint: %s (trial %d, job %s, %s=%s)", b.Checkpoint, b.Trial, b.JobID, sw.Spec.Objective.Metric, fmtValue(b.Value))
}

func notFoundSweep(id string) string { return fmt.Sprintf("sweep %q", id) }

const sweepsLsHint = "`trainctl sweeps ls` lists the sweeps"

var sweepStates = []api.SweepState{api.SweepRunning, api.SweepCompleted, api.SweepCancelled, api.SweepFailed}

func sweepsCommand() *cli.Command {
	return &cli.Command{
		Name:  "sweeps",
		Usage: "list, inspect, cancel and replay hyperparameter sweeps",
		Description: "Sweeps are started with `trainctl sweep -f sweep.yaml`. Each trial of a sweep is a job\n" +
			"(`trainctl jobs get JOB`, `trainctl jobs logs JOB`).\n\n" +
			"Examples:\n" +
			"  trainctl sweeps ls --state running\n" +
			"  trainctl sweeps get 5c1e0a9b7d3f2e64\n" +
			"  trainctl sweeps trials 5c1e0a9b7d3f2e64\n" +
			"  trainctl sweeps cancel 5c1e0a9b7d3f2e64\n" +
			"  trainctl sweeps replay 5c1e0a9b7d3f2e64",
		Subcommands: []*cli.Command{sweepsLsCommand(), sweepsGetCommand(), sweepsTrialsCommand(), sweepsCancelCommand(), sweepsReplayCommand()},
	}
}

// sweepCounts returns a sweep's ended and running trials.
func sweepCounts(sw *api.Sweep) (done, running int) {
	running = sw.RunningTrials()
	return len(sw.Trials) - running, running
}

// sweepsLsRows are the rows of `sweeps ls`.
func sweepsLsRows(sweeps []*api.Sweep) [][]string {
	rows := make([][]string, len(sweeps))
	for i, sw := range sweeps {
		done, running := sweepCounts(sw)
		best := "-"
		if sw.Best != nil {
			best = fmt.Sprintf("%s=%s", sw.Spec.Objective.Metric, fmtValue(sw.Best.Value))
		}
		rows[i] = []string{sw.ID, sw.Spec.Name, string(sw.State), fmt.Sprintf("%d/%d/%d", done, running, sw.Spec.MaxTrials), best, age(sw.SubmitTime)}
	}
	return rows
}

func sweepsLsCommand() *cli.Command {
	return &cli.Command{
		Name:         "ls",
		Usage:        "list sweeps, oldest first",
		ArgsUsage:    " ",
		OnUsageError: globalFlagHint,
		Description: "Lists every sweep in submission order, or those in one --state. TRIALS is\n" +
			"ended/running/max_trials; BEST is the objective of the best checkpoint so far.\n\n" +
			"Examples:\n  trainctl sweeps ls\n  trainctl -o json sweeps ls --state completed",
		Flags: withClusterFlags(
			&cli.StringFlag{Name: "state", Usage: "only sweeps in `STATE`: running, completed, cancelled or failed"},
		),
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			p, cl, err := clusterSetup(c)
			if err != nil {
				return err
			}
			state, err := stateFlag(c, "sweeps ls", sweepStates)
			if err != nil {
				return err
			}
			sweeps, err := cl.Sweeps(c.Context, state)
			if err != nil {
				return clusterError(c, err, "", "")
			}
			if sweeps == nil {
				sweeps = []*api.Sweep{}
			}
			return p.Result(sweeps, []string{"ID", "NAME", "STATE", "TRIALS", "BEST", "AGE"}, sweepsLsRows(sweeps))
		},
	}
}

func sweepsGetCommand() *cli.Command {
	return &cli.Command{
		Name:         "get",
		Usage:        "show a sweep: spec summary, state, leaderboard and best checkpoint",
		ArgsUsage:    "ID",
		OnUsageError: globalFlagHint,
		Description: "Prints the sweep's essentials (objective, searcher, scheduler, budget, limits), its\n" +
			"state, the leaderboard (trials best first: parameters, budget used, best objective,\n" +
			"state, best checkpoint, job) and the best checkpoint. -o json prints the sweep object,\n" +
			"every result the scheduler judged included.\n\n" +
			"--wait follows a running sweep as `sweep --wait` does (every result and decision so\n" +
			"far, then each as it comes) until it ends, then prints the leaderboard; it exits\n" +
			"non-zero if the sweep failed or was cancelled. Use it to watch a sweep again after\n" +
			"Ctrl-C stopped `sweep --wait`.\n\n" +
			"Examples:\n  trainctl sweeps get 5c1e0a9b7d3f2e64\n  trainctl sweeps get --wait 5c1e0a9b7d3f2e64\n" +
			"  trainctl -o json sweeps get 5c1e0a9b7d3f2e64 | jq .best",
		Flags: withClusterFlags(
			&cli.BoolFlag{Name: "wait", Usage: "follow the sweep until it ends; exit non-zero if it failed or was cancelled"},
			pollFlag(),
		),
		Action: func(c *cli.Context) error {
			id, err := oneArg(c)
			if err != nil {
				return err
			}
			p, cl, err := clusterSetup(c)
			if err != nil {
				return err
			}
			poll, err := pollInterval(c)
			if err != nil {
				return err
			}
			sw, err := cl.Sweep(c.Context, id)
			if err != nil {
				return clusterError(c, err, notFoundSweep(id), sweepsLsHint)
			}
			if c.Bool("wait") {
				sw, err := waitSweep(c, cl, sw, poll)
				if p.JSON() {
					if perr := p.Value(sw); perr != nil {
						return perr
					}
				}
				return err
			}
			if p.JSON() {
				return p.Value(sw)
			}
			trials, err := cl.SweepTrials(c.Context, id)
			if err != nil {
				return clusterError(c, err, notFoundSweep(id), sweepsLsHint)
			}
			return writeSweep(c.App.Writer, sw, trials)
		},
	}
}

// writeSweep prints a sweep for people: its summary, the leaderboard and
// the best checkpoint.
func writeSweep(w io.Writer, sw *api.Sweep, trials []api.Trial) error {
	s := sw.Spec
	fmt.Fprintf(w, "sweep        %s\n", sw.ID)
	fmt.Fprintf(w, "name         %s\n", s.Name)
	state := string(sw.State)
	if sw.Error != "" {
		state += ": " + sw.Error
	}
	fmt.Fprintf(w, "state        %s\n", state)
	ds := s.Job.Dataset
	if sw.DatasetVersionID != "" {
		ds += " (version " + shortDigest(sw.DatasetVersionID) + ")"
	}
	fmt.Fprintf(w, "dataset      %s\n", ds)
	fmt.Fprintf(w, "objective    %s %s\n", modeWord(s.Objective.Mode), s.Objective.Metric)
	fmt.Fprintf(w, "search       %s over %s\n", searcherString(s), spaceString(s.SearchSpace))
	fmt.Fprintf(w, "scheduler    %s\n", schedulerString(s))
	fmt.Fprintf(w, "budget       %d..%d %s per trial\n", s.Budget.Min, s.Budget.Max, unitPlural(s.Budget.Unit))
	done, running := sweepCounts(sw)
	fmt.Fprintf(w, "trials       %d started of %d (%d ended, %d running), %d at a time\n", len(sw.Trials), s.MaxTrials, done, running, s.MaxConcurrent)
	fmt.Fprintf(w, "results      %d judged\n", len(sw.Results))
	fmt.Fprintf(w, "submitted    %s (request id %s)\n", sw.SubmitTime.Format(time.RFC3339), orDash(sw.RequestID))
	if !sw.EndTime.IsZero() {
		fmt.Fprintf(w, "ended        %s (after %s)\n", sw.EndTime.Format(time.RFC3339), sw.EndTime.Sub(sw.SubmitTime).Round(time.Second))
	}
	fmt.Fprintln(w)
	if err := writeLeaderboard(w, sw, trials); err != nil {
		return err
	}
	_, err := fmt.Fprintln(w, bestLine(sw))
	return err
}

func modeWord(m tuning.Mode) string {
	switch m {
	case tuning.Maximize:
		return "maximize"
	case tuning.Minimize:
		return "minimize"
	}
	return string(m)
}

// searcherString describes the searcher: "tpe (seed 7, n_startup 8)".
func searcherString(s tuning.Spec) string {
	name := s.Searcher.Name
	if name == "" {
		name = tuning.SearcherRandom
	}
	opts := []string{"seed " + strconv.FormatUint(s.Seed, 10)}
	if name == tuning.SearcherTPE {
		t := s.Searcher.TPE
		if t.NStartup != 0 {
			opts = append(opts, "n_startup "+strconv.Itoa(t.NStartup))
		}
		if t.NCandidates != 0 {
			opts = append(opts, "n_candidates "+strconv.Itoa(t.NCandidates))
		}
		if t.Gamma != 0 {
			opts = append(opts, "gamma "+strconv.FormatFloat(t.Gamma, 'g', -1, 64))
		}
	}
	return name + " (" + strings.Join(opts, ", ") + ")"
}

// spaceString lists the tuned hyperparameters: "lr, momentum, optimizer".
func spaceString(sp tuning.Space) string {
	names := make([]string, len(sp.Params))
	for i, p := range sp.Params {
		names[i] = p.Name
	}
	return orDash(strings.Join(names, ", "))
}

// schedulerString describes the scheduler: "asha (reduction factor 3,
// grace period 1)".
func schedulerString(s tuning.Spec) string {
	sc := s.Scheduler
	name := sc.Name
	if name == "" {
		name = tuning.SchedulerFIFO
	}
	var opts []string
	if sc.ReductionFactor != 0 {
		opts = append(opts, "reduction factor "+strconv.Itoa(sc.ReductionFactor))
	}
	if sc.GracePeriod != 0 {
		opts = append(opts, "grace period "+strconv.Itoa(sc.GracePeriod))
	}
	if sc.MinTrials != 0 {
		opts = append(opts, "min trials "+strconv.Itoa(sc.MinTrials))
	}
	if name == tuning.SchedulerFIFO {
		return name + " (no early stopping)"
	}
	if len(opts) == 0 {
		return name
	}
	return name + " (" + strings.Join(opts, ", ") + ")"
}

func sweepsTrialsCommand() *cli.Command {
	return &cli.Command{
		Name:         "trials",
		Usage:        "print a sweep's leaderboard: its trials, best first",
		ArgsUsage:    "ID",
		OnUsageError: globalFlagHint,
		Description: "Trials with a result come first, best objective first; then those without one.\n" +
			"STATE is running, stopped early (by the scheduler), completed, failed or cancelled.\n\n" +
			"Examples:\n  trainctl sweeps trials 5c1e0a9b7d3f2e64\n  trainctl -o json sweeps trials 5c1e0a9b7d3f2e64",
		Flags: clusterFlags(),
		Action: func(c *cli.Context) error {
			id, err := oneArg(c)
			if err != nil {
				return err
			}
			p, cl, err := clusterSetup(c)
			if err != nil {
				return err
			}
			sw, err := cl.Sweep(c.Context, id)
			if err != nil {
				return clusterError(c, err, notFoundSweep(id), sweepsLsHint)
			}
			trials, err := cl.SweepTrials(c.Context, id)
			if err != nil {
				return clusterError(c, err, notFoundSweep(id), sweepsLsHint)
			}
			if trials == nil {
				trials = []api.Trial{}
			}
			if p.JSON() {
				return p.Value(trials)
			}
			return writeLeaderboard(c.App.Writer, sw, trials)
		},
	}
}

func sweepsCancelCommand() *cli.Command {
	return &cli.Command{
		Name:         "cancel",
		Usage:        "cancel a sweep: it starts no more trials and its running trials are cancelled",
		ArgsUsage:    "ID",
		OnUsageError: globalFlagHint,
		Description: "The running trials' jobs are cancelled; the trials that ended keep their results\n" +
			"and checkpoints. A sweep that has ended stays as it is.\n\n" +
			"Example:\n  trainctl sweeps cancel 5c1e0a9b7d3f2e64",
		Flags: clusterFlags(),
		Action: func(c *cli.Context) error {
			id, err := oneArg(c)
			if err != nil {
				return err
			}
			p, cl, err := clusterSetup(c)
			if err != nil {
				return err
			}
			// A sweep that has ended is left as it is; say so rather than
			// claim to have cancelled it.
			sw, err := cl.Sweep(c.Context, id)
			if err != nil {
				return clusterError(c, err, notFoundSweep(id), sweepsLsHint)
			}
			ended := sw.State.Terminal()
			running := sw.RunningTrials()
			if !ended {
				if sw, err = cl.CancelSweep(c.Context, id); err != nil {
					return clusterError(c, err, notFoundSweep(id), sweepsLsHint)
				}
			}
			if p.JSON() {
				return p.Value(sw)
			}
			if ended || sw.State != api.SweepCancelled {
				_, err = fmt.Fprintf(c.App.Writer, "sweep %s had already ended (%s); left as it is\n", sw.ID, sw.State)
			} else {
				_, err = fmt.Fprintf(c.App.Writer, "sweep %s cancelled (%d running trial(s) cancelled)\n", sw.ID, running)
			}
			return err
		},
	}
}

func sweepsReplayCommand() *cli.Command {
	return &cli.Command{
		Name:         "replay",
		Usage:        "recompute a sweep's decisions and suggestions from its log and compare",
		ArgsUsage:    "ID",
		OnUsageError: globalFlagHint,
		Description: "Every decision of a sweep (each trial's parameters, each early stop) is a Raft log\n" +
			"entry. Replay rebuilds the searcher and the scheduler from the spec, feeds them the\n" +
			"recorded results in their recorded order, and checks that they give the recorded\n" +
			"decisions and suggestions again. It prints \"identical\", or lists every mismatch and\n" +
			"exits 1.\n\n" +
			"Example:\n  trainctl sweeps replay 5c1e0a9b7d3f2e64",
		Flags: clusterFlags(),
		Action: func(c *cli.Context) error {
			id, err := oneArg(c)
			if err != nil {
				return err
			}
			p, cl, err := clusterSetup(c)
			if err != nil {
				return err
			}
			r, err := cl.ReplaySweep(c.Context, id)
			if err != nil {
				return clusterError(c, err, notFoundSweep(id), sweepsLsHint)
			}
			if p.JSON() {
				if err := p.Value(r); err != nil {
					return err
				}
			} else {
				fmt.Fprintf(c.App.Writer, "sweep %s: replayed %d decisions and %d suggestions: ", id, r.Results, r.Suggestions)
				if r.OK() {
					fmt.Fprintln(c.App.Writer, "identical")
				} else {
					fmt.Fprintf(c.App.Writer, "%d mismatch(es):\n", len(r.Mismatches))
					for _, m := range r.Mismatches {
						fmt.Fprintf(c.App.Writer, "  %s\n", m)
					}
				}
			}
			if !r.OK() {
				return fmt.Errorf("sweeps replay: sweep %s does not replay identically (%d mismatch(es))", id, len(r.Mismatches))
			}
			return nil
		},
	}
}
