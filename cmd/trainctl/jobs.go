package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/trainctl/trainctl/api"
	"github.com/trainctl/trainctl/jobspec"
)

// `trainctl submit` and `trainctl jobs ls|get|cancel|logs`. Owned by the
// cluster CLI work.

func pollFlag() cli.Flag {
	return &cli.DurationFlag{Name: "poll-interval", Usage: "least time between two questions to the coordinator while waiting or following (changes wake the wait at once, blocking queries)", Value: time.Second}
}

func pollInterval(c *cli.Context) (time.Duration, error) {
	d := c.Duration("poll-interval")
	if d <= 0 {
		return 0, fmt.Errorf("--poll-interval %v: must be positive", d)
	}
	return d, nil
}

// newRequestID returns a random UUID (version 4) as a submission's
// idempotency key.
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func submitCommand() *cli.Command {
	return &cli.Command{
		Name:         "submit",
		Usage:        "submit a training job from a YAML job spec",
		ArgsUsage:    " ",
		OnUsageError: globalFlagHint,
		Description: "Reads the job spec (see deploy/examples/job.yaml: name, dataset NAME[@VERSION], model,\n" +
			"hyperparameters, resources, max_restarts, checkpoint_every, priority, max_time), checks\n" +
			"it (every problem is listed as FILE:LINE: FIELD: what is wrong, and nothing is\n" +
			"submitted), submits it and prints the job id.\n\n" +
			"Every submission carries a request id, random unless --request-id gives one. The\n" +
			"coordinator keeps it with the job: submitting again with the same --request-id\n" +
			"(after a timeout, a failover, a crash of a script) returns the job the first\n" +
			"submission created and never creates a second one. Scripts that retry should pass one.\n\n" +
			"--wait stays until the job ends, printing its state changes and progress, and exits\n" +
			"non-zero if it failed or was cancelled. Ctrl-C stops waiting, not the job.\n\n" +
			"Examples:\n" +
			"  trainctl submit -f deploy/examples/job.yaml\n" +
			"  trainctl submit -f job.yaml --wait\n" +
			"  trainctl submit -f job.yaml --request-id nightly-2026-11-22   # safe to retry\n" +
			"  JOB=$(trainctl submit -f job.yaml) && trainctl jobs logs -f $JOB",
		Flags: withClusterFlags(
			&cli.StringFlag{Name: "file", Aliases: []string{"f"}, Usage: "job spec `FILE` (YAML)", Required: true},
			&cli.BoolFlag{Name: "wait", Usage: "wait until the job ends; exit non-zero if it failed or was cancelled"},
			&cli.StringFlag{Name: "request-id", Usage: "idempotency key `ID` (default: a random UUID); resubmitting with the same ID returns the same job"},
			pollFlag(),
		),
		Action: runSubmit,
	}
}

func runSubmit(c *cli.Context) error {
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
	reqID, err := requestIDFlag(c, "submit")
	if err != nil {
		return err
	}
	file := c.String("file")
	spec, err := jobspec.ParseFile(file)
	if err != nil {
		return specFileError("submit", file, err)
	}
	job, err := cl.SubmitJob(c.Context, reqID, spec)
	if err != nil {
		return fmt.Errorf("submit %s: %w", file, clusterError(c, err, "", ""))
	}
	summary := fmt.Sprintf("job %s (%s) %s; request id %s (submitting again with --request-id %s returns this job)",
		job.ID, job.Spec.Name, job.State, job.RequestID, job.RequestID)
	return reportSubmitted(c, p, job.ID, job, summary, "",
		func(j *api.Job) (*api.Job, error) { return waitJob(c, cl, j, poll) })
}

// reportSubmitted is how submit and sweep report what they created: the
// id on stdout (or, under -o json without --wait, the object), a summary
// line and, when not waiting, hint on stderr. With --wait it follows the
// object with wait and, under -o json, prints it as it ended; wait's error
// is the command's.
func reportSubmitted[T any](c *cli.Context, p *printer, id string, obj T, summary, hint string, wait func(T) (T, error)) error {
	waiting := c.Bool("wait")
	switch {
	case !p.JSON():
		fmt.Fprintln(c.App.Writer, id)
	case !waiting:
		if err := p.Value(obj); err != nil {
			return err
		}
	}
	fmt.Fprintln(c.App.ErrWriter, summary)
	if !waiting {
		if hint != "" {
			fmt.Fprintln(c.App.ErrWriter, hint)
		}
		return nil
	}
	obj, err := wait(obj)
	if p.JSON() {
		if perr := p.Value(obj); perr != nil {
			return perr
		}
	}
	return err
}

// waitJob follows a job until it ends, printing state changes and progress
// (to stderr under -o json, whose stdout gets the job as it ended), and
// fails unless the job succeeded. It returns the job as last seen.
func waitJob(c *cli.Context, cl *api.Client, job *api.Job, poll time.Duration) (*api.Job, error) {
	out := c.App.Writer
	if p, _ := newPrinter(c); p.JSON() {
		out = c.App.ErrWriter
	}
	id := job.ID
	job, err := follow(c.Context, out, poll, job, job.CreateIndex,
		func(ctx context.Context, q *api.QueryOptions) (*api.Job, api.QueryMeta, error) {
			return cl.JobQuery(ctx, id, q)
		},
		jobChanges,
		func(j *api.Job) bool { return j.State.Terminal() }, clockPrefix)
	switch {
	case c.Context.Err() != nil:
		return job, fmt.Errorf("stopped waiting; job %s is still %s (trainctl jobs get %s; trainctl jobs cancel %s)", job.ID, job.State, job.ID, job.ID)
	case err != nil:
		return job, clusterError(c, err, notFoundJob(job.ID), "")
	}
	switch job.State {
	case api.JobSucceeded:
		return job, nil
	case api.JobFailed:
		return job, fmt.Errorf("job %s failed after %d attempt(s): %s", job.ID, len(job.Attempts), orDash(job.Error))
	default:
		return job, fmt.Errorf("job %s was %s", job.ID, job.State)
	}
}

// jobChanges describes what changed from prev (nil: nothing seen yet) to
// cur: the job's state, attempts starting and ending, and progress.
func jobChanges(prev, cur *api.Job) []string {
	var out []string
	if prev == nil || prev.State != cur.State {
		out = append(out, fmt.Sprintf("job %s %s", cur.ID, cur.State))
	}
	for i, a := range cur.Attempts {
		var pa *api.Attempt
		if prev != nil && i < len(prev.Attempts) {
			pa = &prev.Attempts[i]
		}
		if pa == nil {
			out = append(out, attemptStartLine(a))
		}
		if a.State != api.AttemptRunning && (pa == nil || pa.State != a.State) {
			out = append(out, attemptEndLine(a))
		}
	}
	if (prev == nil && cur.Progress.Step > 0) || (prev != nil && (prev.Progress.Step != cur.Progress.Step || prev.Progress.Epoch != cur.Progress.Epoch)) {
		out = append(out, "progress "+progressString(cur.Progress))
	}
	if cur.LatestCheckpoint != "" && (prev == nil || prev.LatestCheckpoint != cur.LatestCheckpoint) {
		out = append(out, "checkpoint "+shortDigest(cur.LatestCheckpoint))
	}
	return out
}

func attemptStartLine(a api.Attempt) string {
	s := fmt.Sprintf("attempt %d started on %s", a.Number, strings.Join(a.Nodes, ","))
	if a.ResumeFrom != "" {
		s += ", resuming from checkpoint " + shortDigest(a.ResumeFrom)
	}
	return s
}

func attemptEndLine(a api.Attempt) string {
	s := fmt.Sprintf("attempt %d %s", a.Number, a.State)
	if a.FailedNode != "" {
		s += " on " + a.FailedNode
	}
	if a.Error != "" {
		s += ": " + a.Error
	}
	return s
}

// progressString formats progress: "epoch 2, step 120, loss=0.31 miou=0.62".
func progressString(p api.Progress) string {
	s := fmt.Sprintf("epoch %d, step %d", p.Epoch, p.Step)
	if m := metricsString(p.Metrics); m != "" {
		s += ", " + m
	}
	return s
}

// metricsString formats metrics as sorted key=value pairs.
func metricsString(m map[string]float64) string {
	keys := slices.Sorted(maps.Keys(m))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + strconv.FormatFloat(m[k], 'g', 4, 64)
	}
	return strings.Join(parts, " ")
}

// shortDigest shortens a content digest for tables.
func shortDigest(d string) string {
	if i := strings.IndexByte(d, ':'); i >= 0 {
		d = d[i+1:]
	}
	if len(d) > 12 {
		return d[:12]
	}
	return d
}

func jobsCommand() *cli.Command {
	return &cli.Command{
		Name:  "jobs",
		Usage: "list, inspect, cancel and follow training jobs",
		Description: "Jobs are submitted with `trainctl submit -f job.yaml`.\n\n" +
			"Examples:\n" +
			"  trainctl jobs ls --state running\n" +
			"  trainctl jobs get 3f2a9c0d1e4b5a67\n" +
			"  trainctl jobs logs -f 3f2a9c0d1e4b5a67\n" +
			"  trainctl jobs cancel 3f2a9c0d1e4b5a67",
		Subcommands: []*cli.Command{jobsLsCommand(), jobsGetCommand(), jobsCancelCommand(), jobsLogsCommand()},
	}
}

var jobStates = []api.JobState{api.JobPending, api.JobRunning, api.JobSucceeded, api.JobFailed, api.JobCancelled}

func jobsLsCommand() *cli.Command {
	return &cli.Command{
		Name:         "ls",
		Usage:        "list jobs, oldest first",
		ArgsUsage:    " ",
		OnUsageError: globalFlagHint,
		Description: "Lists every job in submission order, or those in one --state.\n\n" +
			"Example:\n  trainctl jobs ls\n  trainctl -o json jobs ls --state failed",
		Flags: withClusterFlags(
			&cli.StringFlag{Name: "state", Usage: "only jobs in `STATE`: pending, running, succeeded, failed or cancelled"},
		),
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			p, cl, err := clusterSetup(c)
			if err != nil {
				return err
			}
			state, err := stateFlag(c, "jobs ls", jobStates)
			if err != nil {
				return err
			}
			jobs, err := cl.Jobs(c.Context, state)
			if err != nil {
				return clusterError(c, err, "", "")
			}
			if jobs == nil {
				jobs = []*api.Job{}
			}
			rows := make([][]string, len(jobs))
			for i, j := range jobs {
				rows[i] = []string{j.ID, j.Spec.Name, string(j.State), j.Spec.Dataset,
					strconv.Itoa(j.Spec.Resources.Ranks), strconv.Itoa(j.Spec.Priority), strconv.Itoa(len(j.Attempts)),
					fmt.Sprintf("%d/%d", j.Progress.Epoch, j.Spec.Hyperparameters.Epochs), strconv.FormatInt(j.Progress.Step, 10), age(j.SubmitTime)}
			}
			return p.Result(jobs, []string{"ID", "NAME", "STATE", "DATASET", "RANKS", "PRIORITY", "ATTEMPTS", "EPOCH", "STEP", "AGE"}, rows)
		},
	}
}

// jobDetail is `jobs get -o json`: the job and its latest checkpoint record.
type jobDetail struct {
	*api.Job
	Checkpoint *api.Checkpoint `json:"checkpoint,omitempty"`
}

func notFoundJob(id string) string { return fmt.Sprintf("job %q", id) }

const jobsLsHint = "`trainctl jobs ls` lists the jobs"

func jobsGetCommand() *cli.Command {
	return &cli.Command{
		Name:         "get",
		Usage:        "show a job: spec summary, state, attempts, each data-parallel rank, progress, latest checkpoint, error",
		ArgsUsage:    "ID",
		OnUsageError: globalFlagHint,
		Description:  "Example:\n  trainctl jobs get 3f2a9c0d1e4b5a67\n  trainctl -o json jobs get 3f2a9c0d1e4b5a67",
		Flags:        clusterFlags(),
		Action: func(c *cli.Context) error {
			id, err := oneArg(c)
			if err != nil {
				return err
			}
			p, cl, err := clusterSetup(c)
			if err != nil {
				return err
			}
			job, err := cl.Job(c.Context, id)
			if err != nil {
				return clusterError(c, err, notFoundJob(id), jobsLsHint)
			}
			d := jobDetail{Job: job}
			if job.LatestCheckpoint != "" {
				cks, err := cl.Checkpoints(c.Context, id)
				if err != nil {
					return clusterError(c, err, notFoundJob(id), jobsLsHint)
				}
				for _, ck := range cks {
					if ck.Digest == job.LatestCheckpoint {
						d.Checkpoint = ck
					}
				}
			}
			if p.JSON() {
				return p.Value(d)
			}
			return writeJob(c.App.Writer, d)
		},
	}
}

// writeJob prints a job for people.
func writeJob(w io.Writer, d jobDetail) error {
	j, s := d.Job, d.Job.Spec
	h, r := s.Hyperparameters, s.Resources
	fmt.Fprintf(w, "job          %s\n", j.ID)
	fmt.Fprintf(w, "name         %s\n", s.Name)
	fmt.Fprintf(w, "state        %s\n", j.State)
	fmt.Fprintf(w, "dataset      %s\n", s.Dataset)
	fmt.Fprintf(w, "model        %s\n", s.Model)
	mom := "momentum"
	if h.Optimizer == jobspec.OptimizerAdam {
		mom = "beta1"
	}
	hp := fmt.Sprintf("epochs %d, batch %d, lr %g, %s (%s %g), weight decay %g, seed %d", h.Epochs, h.Batch, h.LR, h.Optimizer, mom, h.Momentum, h.WeightDecay, h.Seed)
	if h.Flip {
		hp += ", flip"
	}
	fmt.Fprintf(w, "training     %s\n", hp)
	spot := "on-demand workers only"
	if r.Spot {
		spot = "spot allowed"
	}
	fmt.Fprintf(w, "resources    %d rank(s) × %d CPU, %d GPU; %s\n", r.Ranks, r.CPUsPerRank, r.GPUsPerRank, spot)
	limits := fmt.Sprintf("priority %d, restarts %d of %d, checkpoint every %d steps", s.Priority, j.Restarts, s.MaxRestarts, s.CheckpointEvery)
	if s.MaxTime != 0 {
		limits += ", max time " + s.MaxTime.String()
	}
	fmt.Fprintf(w, "limits       %s\n", limits)
	fmt.Fprintf(w, "submitted    %s (request id %s)\n", j.SubmitTime.Format(time.RFC3339), orDash(j.RequestID))
	fmt.Fprintf(w, "progress     %s\n", progressString(j.Progress))
	ck := "none yet"
	if d.Checkpoint != nil {
		ck = fmt.Sprintf("%s (attempt %d, epoch %d, step %d, %s, %s)", shortDigest(d.Checkpoint.Digest), d.Checkpoint.Attempt,
			d.Checkpoint.Epoch, d.Checkpoint.Step, humanBytes(d.Checkpoint.Size), d.Checkpoint.Time.Format(time.RFC3339))
	} else if j.LatestCheckpoint != "" {
		ck = shortDigest(j.LatestCheckpoint)
	}
	fmt.Fprintf(w, "checkpoint   %s\n", ck)
	if len(j.ExcludedNodes) > 0 {
		fmt.Fprintf(w, "excluded     %s\n", strings.Join(j.ExcludedNodes, ", "))
	}
	if j.Error != "" {
		fmt.Fprintf(w, "error        %s\n", j.Error)
	}
	if len(j.Attempts) == 0 {
		_, err := fmt.Fprintf(w, "attempts     none yet\n")
		return err
	}
	fmt.Fprintf(w, "attempts     %d\n", len(j.Attempts))
	p := &printer{w: w, format: "table"}
	rows := make([][]string, len(j.Attempts))
	for i, a := range j.Attempts {
		end := "-"
		if !a.EndTime.IsZero() {
			end = a.EndTime.Format(time.RFC3339)
		}
		resume := "-"
		if a.ResumeFrom != "" {
			resume = shortDigest(a.ResumeFrom)
		}
		rows[i] = []string{"  " + strconv.Itoa(a.Number), string(a.State), strings.Join(a.Nodes, ","), resume,
			a.StartTime.Format(time.RFC3339), end, orDash(a.Error)}
	}
	if err := p.Table([]string{"  #", "STATE", "NODES", "RESUMED FROM", "STARTED", "ENDED", "ERROR"}, rows); err != nil {
		return err
	}
	return printRanks(w, j.CurrentAttempt())
}

// printRanks shows the ranks of a data-parallel attempt: where each runs,
// the address its peers reach it at, its ring state, step and throughput.
func printRanks(w io.Writer, a *api.Attempt) error {
	if a == nil || len(a.Ranks) == 0 {
		return nil
	}
	fmt.Fprintf(w, "ranks        %d (attempt %d)\n", len(a.Ranks), a.Number)
	rows := make([][]string, len(a.Ranks))
	for i, r := range a.Ranks {
		ips := "-"
		if r.ImagesPerSec > 0 {
			ips = strconv.FormatFloat(r.ImagesPerSec, 'f', 2, 64)
		}
		rows[i] = []string{"  " + strconv.Itoa(r.Rank), r.Node, orDash(r.Addr), string(r.Ring), strconv.FormatInt(r.Step, 10), ips}
	}
	p := &printer{w: w, format: "table"}
	return p.Table([]string{"  RANK", "WORKER", "ADDR", "RING", "STEP", "IMG/S"}, rows)
}

func jobsCancelCommand() *cli.Command {
	return &cli.Command{
		Name:         "cancel",
		Usage:        "cancel a job (its running attempt is stopped; a finished job stays as it is)",
		ArgsUsage:    "ID",
		OnUsageError: globalFlagHint,
		Description:  "Example:\n  trainctl jobs cancel 3f2a9c0d1e4b5a67",
		Flags:        clusterFlags(),
		Action: func(c *cli.Context) error {
			id, err := oneArg(c)
			if err != nil {
				return err
			}
			p, cl, err := clusterSetup(c)
			if err != nil {
				return err
			}
			// A job that has ended is left as it is; say so rather than
			// claim to have cancelled it.
			job, err := cl.Job(c.Context, id)
			if err != nil {
				return clusterError(c, err, notFoundJob(id), jobsLsHint)
			}
			ended := job.State.Terminal()
			if !ended {
				if job, err = cl.CancelJob(c.Context, id); err != nil {
					return clusterError(c, err, notFoundJob(id), jobsLsHint)
				}
			}
			if p.JSON() {
				return p.Value(job)
			}
			if ended || job.State != api.JobCancelled {
				_, err = fmt.Fprintf(c.App.Writer, "job %s had already ended (%s); left as it is\n", job.ID, job.State)
			} else {
				_, err = fmt.Fprintf(c.App.Writer, "job %s cancelled\n", job.ID)
			}
			return err
		},
	}
}

// logLine is one line of `jobs logs`: a job event or a metrics report.
type logLine struct {
	Time  time.Time `json:"time"`
	Kind  string    `json:"kind"` // "event" or "metrics"
	Event string    `json:"event,omitempty"`
	// Metrics fields.
	Attempt int                `json:"attempt,omitempty"`
	Epoch   int                `json:"epoch,omitempty"`
	Step    int64              `json:"step,omitempty"`
	Values  map[string]float64 `json:"values,omitempty"`

	key string // identifies the line across polls
}

func (l logLine) text() string {
	ts := l.Time.UTC().Format("2006-01-02T15:04:05.000Z")
	if l.Kind == "metrics" {
		return fmt.Sprintf("%s  attempt %d epoch %d step %d  %s", ts, l.Attempt, l.Epoch, l.Step, metricsString(l.Values))
	}
	return ts + "  " + l.Event
}

// jobLogLines returns a job's events (submitted, attempts started and
// ended, the end of the job) and its metric reports, in time order.
func jobLogLines(j *api.Job, ms []api.Metric) []logLine {
	ev := func(t time.Time, key, s string) logLine { return logLine{Time: t, Kind: "event", Event: s, key: key} }
	out := []logLine{ev(j.SubmitTime, "submitted", fmt.Sprintf("job %s (%s) submitted", j.ID, j.Spec.Name))}
	for _, a := range j.Attempts {
		out = append(out, ev(a.StartTime, fmt.Sprintf("a%d-start", a.Number), attemptStartLine(a)))
		out = append(out, ringLines(a)...)
		if a.State != api.AttemptRunning {
			t := a.EndTime
			if t.IsZero() {
				t = a.StartTime
			}
			out = append(out, ev(t, fmt.Sprintf("a%d-end", a.Number), attemptEndLine(a)))
		}
	}
	for i, m := range ms {
		// Keyed by content, not position: the coordinators' step points
		// merge into the list in step order, not in the order they arrive.
		key := fmt.Sprintf("m%d/%d/%s/%d/%d", m.Attempt, m.Step, m.Kind, m.Time.UnixNano(), len(m.Values))
		if m.Time.IsZero() {
			key += "/" + strconv.Itoa(i)
		}
		out = append(out, logLine{Time: m.Time, Kind: "metrics", Attempt: m.Attempt, Epoch: m.Epoch, Step: m.Step, Values: m.Values, key: key})
	}
	if j.State.Terminal() {
		s := fmt.Sprintf("job %s %s", j.ID, j.State)
		if j.Error != "" {
			s += ": " + j.Error
		}
		end := ev(j.ModifyTime, "end", s)
		slices.SortStableFunc(out, func(a, b logLine) int { return a.Time.Compare(b.Time) })
		if last := out[len(out)-1].Time; end.Time.Before(last) {
			end.Time = last // the end goes last whatever the clocks say
		}
		return append(out, end)
	}
	slices.SortStableFunc(out, func(a, b logLine) int { return a.Time.Compare(b.Time) })
	return out
}

func jobsLogsCommand() *cli.Command {
	return &cli.Command{
		Name:         "logs",
		Usage:        "print a job's events and metrics, one per line (-f: follow until it ends)",
		ArgsUsage:    "ID",
		OnUsageError: globalFlagHint,
		Description: "Prints the job's events (submitted, each attempt started on which workers, the ring of a\n" +
			"data-parallel attempt forming (each rank's address, then the ring connected), how it\n" +
			"ended, the job's end) and the metric reports its workers sent (epoch, step, loss,\n" +
			"IoU, ...), in time order. With -f it keeps printing new lines until the job ends.\n" +
			"With -o json each line is a JSON object (JSON Lines).\n\n" +
			"Examples:\n  trainctl jobs logs 3f2a9c0d1e4b5a67\n  trainctl jobs logs -f 3f2a9c0d1e4b5a67\n" +
			"  trainctl -o json jobs logs 3f2a9c0d1e4b5a67 | jq .values.loss",
		Flags: withClusterFlags(
			&cli.BoolFlag{Name: "follow", Aliases: []string{"f"}, Usage: "keep printing new lines until the job ends"},
			pollFlag(),
		),
		Action: runJobsLogs,
	}
}

func runJobsLogs(c *cli.Context) error {
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
	printed := map[string]bool{}
	// Each round is a blocking query on the job's metrics (which a change
	// of the job wakes too), at most one per poll.
	w := &api.Watch{Wait: followWait, MinBackoff: poll, MaxBackoff: poll}
	for {
		fetched := time.Now()
		job, ms, meta, err := fetchJobLogs(c.Context, cl, id, w.Options())
		if err != nil {
			if c.Context.Err() != nil {
				return nil // Ctrl-C while following
			}
			return clusterError(c, err, notFoundJob(id), jobsLsHint)
		}
		for _, l := range jobLogLines(job, ms) {
			if printed[l.key] {
				continue
			}
			printed[l.key] = true
			if p.JSON() {
				err = writeJSONLine(c.App.Writer, l)
			} else {
				_, err = fmt.Fprintln(c.App.Writer, l.text())
			}
			if err != nil {
				return err
			}
		}
		if !c.Bool("follow") || job.State.Terminal() {
			return nil
		}
		_, pause := w.Done(meta, nil)
		if w.Pause(c.Context, max(pause, time.Until(fetched.Add(poll)))) != nil {
			return nil // Ctrl-C while following
		}
	}
}

// fetchJobLogs reads the job after its metrics, so a job seen terminal has
// all its metrics in ms; the metrics are read as a blocking query as q
// says, and meta is its answer's.
func fetchJobLogs(ctx context.Context, cl *api.Client, id string, q *api.QueryOptions) (*api.Job, []api.Metric, api.QueryMeta, error) {
	ms, meta, err := cl.JobMetricsQuery(ctx, id, q)
	if err != nil {
		return nil, nil, meta, err
	}
	job, err := cl.Job(ctx, id)
	if err != nil {
		return nil, nil, meta, err
	}
	if job.State.Terminal() {
		// Reports committed between the two reads.
		if ms, err = cl.JobMetrics(ctx, id); err != nil {
			return nil, nil, meta, err
		}
	}
	return job, ms, meta, nil
}

func writeJSONLine(w io.Writer, v any) error {
	return json.NewEncoder(w).Encode(v)
}

// ringLines are the events of a data-parallel attempt's ring forming: each
// rank's address as it registered it, and the ring connected once every
// rank reported so.
func ringLines(a api.Attempt) []logLine {
	var out []logLine
	var connected time.Time
	all := len(a.Ranks) > 0
	for _, r := range a.Ranks {
		if !r.Registered.IsZero() {
			out = append(out, logLine{Time: r.Registered, Kind: "event", key: fmt.Sprintf("a%d-r%d-addr-%s", a.Number, r.Rank, r.Addr),
				Event: fmt.Sprintf("attempt %d: rank %d on %s listening at %s", a.Number, r.Rank, r.Node, r.Addr)})
		}
		all = all && !r.Connected.IsZero()
		if r.Connected.After(connected) {
			connected = r.Connected
		}
	}
	if all {
		out = append(out, logLine{Time: connected, Kind: "event", key: fmt.Sprintf("a%d-ring", a.Number),
			Event: fmt.Sprintf("attempt %d: ring of %d ranks connected", a.Number, len(a.Ranks))})
	}
	return out
}
