package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/trainctl/trainctl/api"
	"github.com/trainctl/trainctl/coordinator"
	"github.com/trainctl/trainctl/jobspec"
)

// waitUntil polls cond every 10 ms until it returns nil, failing the test
// with cond's last error after timeout.
func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		<-tick.C
	}
}

// startTestCoordinator starts a single-voter coordinator on random loopback
// ports with its state in a temporary directory, waits until it leads,
// registers the dataset shapes@v1 in its registry and points
// TRAINCTL_COORDINATOR at it. It returns the HTTP address.
func startTestCoordinator(t *testing.T) string {
	t.Helper()
	cfg := coordinator.DefaultConfig()
	cfg.NodeID = "c1"
	cfg.DataDir = t.TempDir()
	cfg.RaftAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Bootstrap = true
	cfg.HeartbeatTimeout = 300 * time.Millisecond
	cfg.ElectionTimeout = 300 * time.Millisecond
	cfg.LeaderLeaseTimeout = 150 * time.Millisecond
	cfg.CommitTimeout = 5 * time.Millisecond
	cfg.RetryInterval = 50 * time.Millisecond
	cfg.Logger = slog.New(slog.DiscardHandler)
	if os.Getenv("TRAINCTL_TEST_LOG") != "" {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	srv, err := coordinator.New(ctx, cfg)
	if err != nil {
		t.Fatalf("start coordinator: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Shutdown(); err != nil {
			t.Errorf("coordinator shutdown: %v", err)
		}
	})
	waitUntil(t, 15*time.Second, "the coordinator to lead", func() error {
		st, err := srv.Status()
		if err != nil {
			return err
		}
		if !srv.IsLeader() || st.LeaderHTTPAddr == "" {
			return fmt.Errorf("state %s, leader %q at %q", st.State, st.LeaderID, st.LeaderHTTPAddr)
		}
		return nil
	})

	// Jobs name a dataset; have one in the registry.
	man := genShapes(t, t.TempDir(), "shapes", 4, 16)
	raw, err := json.Marshal(man)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := api.New(srv.HTTPAddr()).RegisterDataset(ctx, api.RegisterDatasetBody{Name: "shapes", ID: man.ID, Manifest: raw}); err != nil {
		t.Fatalf("register dataset: %v", err)
	}
	t.Setenv("TRAINCTL_COORDINATOR", srv.HTTPAddr())
	return srv.HTTPAddr()
}

// ctl runs trainctl in-process and returns its stdout and stderr apart.
func ctl(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	app := newApp()
	app.Writer, app.ErrWriter = &out, &errOut
	err = app.Run(append([]string{"trainctl", "--data-dir", t.TempDir()}, args...))
	return out.String(), errOut.String(), err
}

func mustCtl(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, err := ctl(t, args...)
	if err != nil {
		t.Fatalf("trainctl %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// wantErr runs trainctl, expecting an error whose message holds every one
// of want.
func wantErr(t *testing.T, args []string, want ...string) string {
	t.Helper()
	out, errOut, err := ctl(t, args...)
	if err == nil {
		t.Fatalf("trainctl %s: no error\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), out, errOut)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Fatalf("trainctl %s: error lacks %q:\n%v", strings.Join(args, " "), w, err)
		}
	}
	return out
}

func writeSpec(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const validSpec = `name: unet-small
dataset: shapes@v1
hyperparameters:
  epochs: 2
  batch: 4
resources:
  ranks: 1
  cpus_per_rank: 1
priority: 70
`

var jobIDRE = regexp.MustCompile(`^[0-9a-f]{16}$`)

func listJobs(t *testing.T, args ...string) []api.Job {
	t.Helper()
	var jobs []api.Job
	out := mustCtl(t, append([]string{"-o", "json", "jobs", "ls"}, args...)...)
	if err := json.Unmarshal([]byte(out), &jobs); err != nil {
		t.Fatalf("jobs ls -o json: %v\n%s", err, out)
	}
	return jobs
}

func TestSubmitAndJobsCommands(t *testing.T) {
	addr := startTestCoordinator(t)
	spec := writeSpec(t, "job.yaml", validSpec)

	// A submission prints the job id alone on stdout.
	out, errOut, err := ctl(t, "submit", "-f", spec, "--coordinator", addr)
	if err != nil {
		t.Fatalf("submit: %v\n%s%s", err, out, errOut)
	}
	id1 := strings.TrimSpace(out)
	if !jobIDRE.MatchString(id1) || !strings.Contains(errOut, "request id ") {
		t.Fatalf("submit printed %q, stderr %q", out, errOut)
	}

	// The same --request-id twice is one job.
	id2 := strings.TrimSpace(mustCtl(t, "submit", "-f", spec, "--request-id", "nightly-1"))
	id2again := strings.TrimSpace(mustCtl(t, "submit", "-f", spec, "--request-id", "nightly-1"))
	if id2 != id2again || id2 == id1 || !jobIDRE.MatchString(id2) {
		t.Fatalf("request id nightly-1 gave %q then %q (first job %q)", id2, id2again, id1)
	}
	if jobs := listJobs(t); len(jobs) != 2 || jobs[0].ID != id1 || jobs[1].ID != id2 || jobs[1].RequestID != "nightly-1" {
		t.Fatalf("jobs after three submissions: %+v", jobs)
	}

	// An invalid spec names file, line and field of every problem and
	// submits nothing.
	bad := writeSpec(t, "bad.yaml", "name: x\ndataset: shapes@v1\nhyperparameter:\n  lr: 1\nresources:\n  ranks: 0\n")
	wantErr(t, []string{"submit", "-f", bad}, "bad.yaml has 2 problem(s); nothing was submitted",
		"bad.yaml:3: hyperparameter: unknown field", "bad.yaml:6: resources.ranks: must be in 1..1024, got 0")
	wantErr(t, []string{"submit", "-f", filepath.Join(t.TempDir(), "missing.yaml")}, "missing.yaml", "no such file")
	wantErr(t, []string{"submit"}, `"file" not set`)
	wantErr(t, []string{"submit", "-f", spec, "extra"}, "takes no arguments")
	if jobs := listJobs(t); len(jobs) != 2 {
		t.Fatalf("%d jobs after invalid submissions, want 2", len(jobs))
	}
	// -o json gives the job.
	var j api.Job
	out = mustCtl(t, "-o", "json", "submit", "-f", spec, "--request-id", "nightly-1")
	if err := json.Unmarshal([]byte(out), &j); err != nil || j.ID != id2 || j.Spec.Priority != 70 {
		t.Fatalf("submit -o json: %v %+v\n%s", err, j, out)
	}

	// ls
	out = mustCtl(t, "jobs", "ls")
	for _, want := range []string{"ID", "NAME", "STATE", id1, id2, "unet-small", "pending", "shapes@v1", "0/2"} {
		if !strings.Contains(out, want) {
			t.Fatalf("jobs ls lacks %q:\n%s", want, out)
		}
	}
	if jobs := listJobs(t, "--state", "pending"); len(jobs) != 2 {
		t.Fatalf("--state pending: %d jobs", len(jobs))
	}
	if jobs := listJobs(t, "--state", "running"); len(jobs) != 0 {
		t.Fatalf("--state running: %d jobs", len(jobs))
	}
	wantErr(t, []string{"jobs", "ls", "--state", "bogus"}, `--state "bogus": want one of pending`)

	// get
	out = mustCtl(t, "jobs", "get", id1)
	for _, want := range []string{"job          " + id1, "state        pending", "dataset      shapes@v1",
		"resources    1 rank(s) × 1 CPU, 0 GPU; on-demand workers only", "priority 70, restarts 0 of 3", "attempts     none yet", "checkpoint   none yet"} {
		if !strings.Contains(out, want) {
			t.Fatalf("jobs get lacks %q:\n%s", want, out)
		}
	}
	out = mustCtl(t, "-o", "json", "jobs", "get", id2)
	if err := json.Unmarshal([]byte(out), &j); err != nil || j.ID != id2 || j.State != api.JobPending {
		t.Fatalf("jobs get -o json: %v %+v\n%s", err, j, out)
	}
	wantErr(t, []string{"jobs", "get", "0123456789abcdef"}, `no job "0123456789abcdef" in the cluster at `+addr, "trainctl jobs ls")
	wantErr(t, []string{"jobs", "get"}, "trainctl jobs get wants one argument ID, got 0")
	wantErr(t, []string{"jobs", "get", id1, "--coordinator", addr}, "trainctl jobs get: flag --coordinator must come before the arguments (trainctl jobs get [flags] ID)")

	// cancel
	if out := mustCtl(t, "jobs", "cancel", id1); !strings.Contains(out, "job "+id1+" cancelled") {
		t.Fatalf("cancel: %q", out)
	}
	if out := mustCtl(t, "jobs", "cancel", id1); !strings.Contains(out, "had already ended (cancelled); left as it is") {
		t.Fatalf("second cancel: %q", out)
	}
	wantErr(t, []string{"jobs", "cancel", "0123456789abcdef"}, `no job "0123456789abcdef"`)
	if jobs := listJobs(t, "--state", "cancelled"); len(jobs) != 1 || jobs[0].ID != id1 {
		t.Fatalf("cancelled jobs: %+v", jobs)
	}

	// logs: events of a job without workers.
	out = mustCtl(t, "jobs", "logs", id1)
	if !strings.Contains(out, "job "+id1+" (unet-small) submitted") || !strings.Contains(out, "job "+id1+" cancelled") {
		t.Fatalf("jobs logs:\n%s", out)
	}
	out = mustCtl(t, "-o", "json", "jobs", "logs", id1)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for _, l := range lines {
		var ll logLine
		if err := json.Unmarshal([]byte(l), &ll); err != nil || ll.Kind != "event" || ll.Time.IsZero() {
			t.Fatalf("jobs logs -o json line %q: %v", l, err)
		}
	}
	if len(lines) != 2 {
		t.Fatalf("jobs logs -o json: %d lines, want 2:\n%s", len(lines), out)
	}
	wantErr(t, []string{"jobs", "logs", "0123456789abcdef"}, `no job "0123456789abcdef"`)
}

// runAsync runs trainctl in the background with a writer the test can read
// while it runs; done receives its result.
func runAsync(t *testing.T, ctx context.Context, args ...string) (*syncBuffer, <-chan error) {
	t.Helper()
	out := &syncBuffer{written: make(chan struct{}, 1)}
	app := newApp()
	app.Writer, app.ErrWriter = out, out
	done := make(chan error, 1)
	dir := t.TempDir()
	go func() { done <- app.RunContext(ctx, append([]string{"trainctl", "--data-dir", dir}, args...)) }()
	return out, done
}

// waitOutput waits until re matches what a background command wrote and
// returns the match.
func waitOutput(t *testing.T, out *syncBuffer, done <-chan error, re *regexp.Regexp, what string) []string {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			return m
		}
		select {
		case <-out.written:
		case err := <-done:
			if m := re.FindStringSubmatch(out.String()); m != nil {
				return m
			}
			t.Fatalf("command ended (%v) before printing %s:\n%s", err, what, out.String())
		case <-deadline:
			t.Fatalf("no %s after 20s:\n%s", what, out.String())
		}
	}
}

func waitDone(t *testing.T, done <-chan error, what string) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(60 * time.Second):
		// Say where it is stuck: every goroutine's stack.
		var stacks strings.Builder
		_ = pprof.Lookup("goroutine").WriteTo(&stacks, 2)
		t.Fatalf("%s did not end within 60s; goroutines:\n%s", what, stacks.String())
		return nil
	}
}

func TestSubmitWaitAndFollowLogs(t *testing.T) {
	startTestCoordinator(t)
	spec := writeSpec(t, "job.yaml", validSpec)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	sub, subDone := runAsync(t, ctx, "submit", "-f", spec, "--wait", "--poll-interval", "20ms")
	id := waitOutput(t, sub, subDone, regexp.MustCompile(`(?m)^([0-9a-f]{16})$`), "a job id")[1]
	waitOutput(t, sub, subDone, regexp.MustCompile(`job `+id+` pending`), "the pending state")

	logs, logsDone := runAsync(t, ctx, "jobs", "logs", "-f", "--poll-interval", "20ms", id)
	waitOutput(t, logs, logsDone, regexp.MustCompile(`job `+id+` \(unet-small\) submitted`), "the submitted event")

	// Ctrl-C stops waiting and following, not the job.
	ctx2, cancel2 := context.WithCancel(context.Background())
	sub2, sub2Done := runAsync(t, ctx2, "-o", "json", "submit", "-f", spec, "--wait", "--poll-interval", "20ms")
	id2 := waitOutput(t, sub2, sub2Done, regexp.MustCompile(`job ([0-9a-f]{16}) \(unet-small\) pending; request id`), "a job id")[1]
	waitOutput(t, sub2, sub2Done, regexp.MustCompile(`\d  job `+id2+` pending`), "the pending state")
	logs2, logs2Done := runAsync(t, ctx2, "jobs", "logs", "-f", "--poll-interval", "20ms", id2)
	waitOutput(t, logs2, logs2Done, regexp.MustCompile(`submitted`), "the submitted event")
	cancel2()
	if err := waitDone(t, sub2Done, "interrupted submit --wait"); err == nil || !strings.Contains(err.Error(), "stopped waiting; job "+id2+" is still pending") {
		t.Fatalf("interrupted submit --wait: %v", err)
	}
	// Under -o json, stdout gets the job as last seen (after the lines on stderr).
	var j2 api.Job
	if i := strings.Index(sub2.String(), "\n{"); i < 0 || json.Unmarshal([]byte(sub2.String()[i:]), &j2) != nil || j2.ID != id2 || j2.State != api.JobPending {
		t.Fatalf("interrupted -o json submit --wait: job %+v in\n%s", j2, sub2.String())
	}
	if err := waitDone(t, logs2Done, "interrupted jobs logs -f"); err != nil {
		t.Fatalf("interrupted jobs logs -f: %v", err)
	}
	if jobs := listJobs(t, "--state", "pending"); len(jobs) != 2 {
		t.Fatalf("pending jobs after interrupting the waits: %+v", jobs)
	}

	mustCtl(t, "jobs", "cancel", id)
	err := waitDone(t, subDone, "submit --wait")
	if err == nil || !strings.Contains(err.Error(), "job "+id+" was cancelled") {
		t.Fatalf("submit --wait of a cancelled job: %v\n%s", err, sub.String())
	}
	if !strings.Contains(sub.String(), "job "+id+" cancelled") {
		t.Fatalf("submit --wait did not print the change to cancelled:\n%s", sub.String())
	}
	if err := waitDone(t, logsDone, "jobs logs -f"); err != nil {
		t.Fatalf("jobs logs -f: %v\n%s", err, logs.String())
	}
	if !strings.Contains(logs.String(), "job "+id+" cancelled") {
		t.Fatalf("jobs logs -f did not print the end:\n%s", logs.String())
	}
}

func TestClusterStatusAndWorkers(t *testing.T) {
	addr := startTestCoordinator(t)

	out := mustCtl(t, "cluster", "status")
	for _, want := range []string{"answered by  c1 (Leader)", "leader       c1 (http " + addr + ")", "voters       1",
		"ID", "ROLE", "c1", "leader", "Voter", addr} {
		if !strings.Contains(out, want) {
			t.Fatalf("cluster status lacks %q:\n%s", want, out)
		}
	}
	var st api.ClusterStatus
	out = mustCtl(t, "-o", "json", "cluster", "status", "--coordinator", "http://"+addr)
	if err := json.Unmarshal([]byte(out), &st); err != nil || len(st.Voters) != 1 || st.LeaderID != "c1" || !st.Voters[0].Leader || st.Term == 0 || st.AppliedIndex == 0 {
		t.Fatalf("cluster status -o json: %v %+v\n%s", err, st, out)
	}

	out = mustCtl(t, "workers", "ls")
	if !strings.HasPrefix(out, "ID ") || strings.Count(out, "\n") != 1 {
		t.Fatalf("workers ls on an empty cluster:\n%s", out)
	}
	if out := strings.TrimSpace(mustCtl(t, "-o", "json", "workers", "ls")); out != "[]" {
		t.Fatalf("workers ls -o json on an empty cluster: %q", out)
	}
	wantErr(t, []string{"workers", "drain", "w9"}, `no worker "w9" in the cluster`, "trainctl workers ls")
	wantErr(t, []string{"workers", "drain"}, "drain wants one argument ID")
}

func TestClusterClientErrors(t *testing.T) {
	t.Setenv("TRAINCTL_COORDINATOR", "")
	wantErr(t, []string{"jobs", "ls", "--coordinator", "127.0.0.1:1", "--timeout", "0"},
		"cannot reach a coordinator at 127.0.0.1:1", "trainctl coordinator --bootstrap")
	wantErr(t, []string{"cluster", "status", "--coordinator", "nohostport"}, `--coordinator "nohostport"`, "not host:port")
	wantErr(t, []string{"workers", "ls", "--coordinator", "127.0.0.1:99999"}, "port \"99999\" is not a number in 0..65535")
	wantErr(t, []string{"jobs", "ls", "--coordinator", "ftp://x:1"}, `scheme "ftp"`)
	wantErr(t, []string{"jobs", "ls", "--coordinator", " , "}, "no address given")
	wantErr(t, []string{"-o", "yaml", "jobs", "ls", "--coordinator", "127.0.0.1:1"}, `-o "yaml"`)
	wantErr(t, []string{"jobs", "ls", "-o", "json"}, "jobs ls: -o is a global flag: put it before the command, as in `trainctl -o json jobs ls ...`")
	wantErr(t, []string{"workers", "ls", "--bogus"}, "workers ls: flag provided but not defined: -bogus")
}

// TestCoordinatorRaftTiming checks the Raft timeouts `trainctl coordinator`
// configures from --raft-multiplier and the three timeout flags, which
// override the multiplier one by one.
func TestCoordinatorRaftTiming(t *testing.T) {
	msec := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	for _, tt := range []struct {
		extra                      []string
		heartbeat, election, lease time.Duration
	}{
		{nil, msec(300), msec(300), msec(300)},
		{[]string{"--raft-multiplier", "3"}, msec(900), msec(900), msec(900)},
		{[]string{"--raft-multiplier", "2", "--election-timeout", "2s"}, msec(600), msec(2000), msec(600)},
		{[]string{"--heartbeat-timeout", "1s", "--election-timeout", "1s", "--leader-lease-timeout", "500ms"}, msec(1000), msec(1000), msec(500)},
	} {
		app := newApp()
		var (
			cfg    coordinator.Config
			cfgErr error
		)
		for _, c := range app.Commands {
			if c.Name == "coordinator" {
				c.Action = func(c *cli.Context) error {
					cfg, cfgErr = coordinatorConfig(c)
					return nil
				}
			}
		}
		args := append([]string{"trainctl", "--data-dir", t.TempDir(), "coordinator", "--node-id", "n1", "--bootstrap"}, tt.extra...)
		if err := app.Run(args); err != nil || cfgErr != nil {
			t.Fatalf("%v: %v, %v", tt.extra, err, cfgErr)
		}
		if cfg.GC != coordinator.DefaultGCConfig() {
			t.Errorf("%v: GC config %+v, want the defaults", tt.extra, cfg.GC)
		}
		if cfg.HeartbeatTimeout != tt.heartbeat || cfg.ElectionTimeout != tt.election || cfg.LeaderLeaseTimeout != tt.lease {
			t.Errorf("%v: heartbeat %v, election %v, lease %v; want %v, %v, %v", tt.extra,
				cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout, tt.heartbeat, tt.election, tt.lease)
		}
	}
}

func TestCoordinatorCommand(t *testing.T) {
	dataDir := t.TempDir()
	base := []string{"--data-dir", dataDir, "coordinator", "--node-id", "n1", "--raft-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"}
	for _, tt := range []struct {
		extra []string
		want  []string
	}{
		{nil, []string{"holds no Raft state", "give --bootstrap to start a new cluster, or --join ADDR"}},
		{[]string{"--bootstrap", "--join", "127.0.0.1:7421"}, []string{"give --bootstrap (start a new cluster) or --join ADDR (join a running one), not both"}},
		{[]string{"--bootstrap", "--raft-addr", "nope"}, []string{`--raft-addr: "nope" is not host:port`}},
		{[]string{"--bootstrap", "--http-addr", "127.0.0.1:http"}, []string{`--http-addr: "127.0.0.1:http": port "http" is not a number`}},
		{[]string{"--bootstrap", "--http-addr", "0.0.0.0:7421"}, []string{"listens on all interfaces", "--http-advertise HOST:PORT"}},
		{[]string{"--bootstrap", "--raft-addr", ":7420"}, []string{"--raft-advertise HOST:PORT"}},
		{[]string{"--bootstrap", "--http-addr", "0.0.0.0:0", "--http-advertise", "0.0.0.0:7421"}, []string{"--http-advertise \"0.0.0.0:7421\": give the host and port"}},
		{[]string{"--join", "10.0.0.1"}, []string{`--join: "10.0.0.1" is not host:port`}},
		{[]string{"--bootstrap", "--node-id", "../x"}, []string{`--node-id "../x"`}},
		{[]string{"--bootstrap", "--log-level", "loud"}, []string{`--log-level "loud"`}},
		{[]string{"--bootstrap", "--election-timeout", "0s"}, []string{"--election-timeout 0s: must be positive"}},
		{[]string{"--bootstrap", "--raft-multiplier", "0"}, []string{"--raft-multiplier: raft multiplier 0: want 1..10"}},
		{[]string{"--bootstrap", "--leader-lease-timeout", "1s"}, []string{"leader lease 1s, heartbeat 300ms, election 300ms: want lease ≤ heartbeat ≤ election timeout"}},
		{[]string{"--bootstrap", "extra"}, []string{"takes no arguments"}},
		{[]string{"--bootstrap", "--job-retention", "-1s"}, []string{"gc: retentions and limits: must not be negative"}},
		{[]string{"--bootstrap", "--gc-interval", "0s"}, []string{"gc: interval"}},
	} {
		args := append(append([]string{}, base...), tt.extra...)
		var out bytes.Buffer
		app := newApp()
		app.Writer, app.ErrWriter = &out, &out
		err := app.Run(append([]string{"trainctl"}, args...))
		if err == nil {
			t.Fatalf("coordinator %v: no error", tt.extra)
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Fatalf("coordinator %v: error lacks %q: %v", tt.extra, w, err)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(dataDir, "coordinator", "n1", "raft")); !os.IsNotExist(err) {
		t.Fatalf("a refused start left state behind: %v", err)
	}

	httpRE := regexp.MustCompile(`msg="serving; Ctrl-C to stop".* http=(127\.0\.0\.1:\d+)`)
	run := func(extra ...string) {
		t.Helper()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		out := &syncBuffer{written: make(chan struct{}, 1)}
		app := newApp()
		app.Writer, app.ErrWriter = out, out
		done := make(chan error, 1)
		go func() { done <- app.RunContext(ctx, append(append([]string{"trainctl"}, base...), extra...)) }()
		addr := waitOutput(t, out, done, httpRE, "the serving line")[1]
		waitUntil(t, 15*time.Second, "a leader", func() error {
			var st api.ClusterStatus
			stdout, _, err := ctl(t, "-o", "json", "cluster", "status", "--coordinator", addr, "--timeout", "0")
			if err != nil {
				return err
			}
			if err := json.Unmarshal([]byte(stdout), &st); err != nil {
				return err
			}
			if st.LeaderID != "n1" || len(st.Voters) != 1 {
				return fmt.Errorf("leader %q, %d voters", st.LeaderID, len(st.Voters))
			}
			return nil
		})
		cancel()
		if err := waitDone(t, done, "coordinator"); err != nil {
			t.Fatalf("coordinator exit: %v\n%s", err, out.String())
		}
		if !strings.Contains(out.String(), "coordinator stopped") {
			t.Fatalf("no clean shutdown logged:\n%s", out.String())
		}
	}
	run("--bootstrap")
	// A restart on the same data directory needs neither --bootstrap nor --join.
	run()
}

// The attempt, progress and checkpoint lines need workers to appear on a
// live cluster; check their formatting on a job built by hand.
func TestJobFormatting(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	spec := jobspec.Defaults()
	spec.Name, spec.Dataset = "unet", "shapes@v1"
	pending := &api.Job{ID: "j1", Spec: spec, State: api.JobPending, SubmitTime: t0}
	running := &api.Job{ID: "j1", Spec: spec, State: api.JobRunning, SubmitTime: t0,
		Attempts: []api.Attempt{
			{Number: 1, Nodes: []string{"w1"}, State: api.AttemptFailed, FailedNode: "w1", Error: "oom", StartTime: t0.Add(time.Second), EndTime: t0.Add(2 * time.Second)},
			{Number: 2, Nodes: []string{"w2", "w3"}, ResumeFrom: "sha256:0123456789abcdef0123", State: api.AttemptRunning, StartTime: t0.Add(3 * time.Second)},
		},
		Restarts: 1, ExcludedNodes: []string{"w1"},
		Progress:         api.Progress{Epoch: 2, Step: 40, Metrics: map[string]float64{"loss": 0.25, "miou": 0.5}},
		LatestCheckpoint: "sha256:fedcba9876543210fedc",
	}
	got := strings.Join(jobChanges(pending, running), "\n")
	want := "job j1 running\n" +
		"attempt 1 started on w1\n" +
		"attempt 1 failed on w1: oom\n" +
		"attempt 2 started on w2,w3, resuming from checkpoint 0123456789ab\n" +
		"progress epoch 2, step 40, loss=0.25 miou=0.5\n" +
		"checkpoint fedcba987654"
	if got != want {
		t.Fatalf("jobChanges:\n%s\nwant:\n%s", got, want)
	}
	if got := jobChanges(running, running); len(got) != 0 {
		t.Fatalf("jobChanges of an unchanged job: %q", got)
	}

	ended := running.Copy()
	ended.State, ended.Error, ended.ModifyTime = api.JobFailed, "out of restarts", t0.Add(9*time.Second)
	ended.Attempts[1].State, ended.Attempts[1].EndTime = api.AttemptFailed, t0.Add(8*time.Second)
	ms := []api.Metric{{JobID: "j1", Attempt: 2, Epoch: 1, Step: 20, Values: map[string]float64{"loss": 0.5}, Time: t0.Add(5 * time.Second)}}
	var lines []string
	for _, l := range jobLogLines(ended, ms) {
		lines = append(lines, l.text())
	}
	want = "2026-11-22T10:00:00.000Z  job j1 (unet) submitted\n" +
		"2026-11-22T10:00:01.000Z  attempt 1 started on w1\n" +
		"2026-11-22T10:00:02.000Z  attempt 1 failed on w1: oom\n" +
		"2026-11-22T10:00:03.000Z  attempt 2 started on w2,w3, resuming from checkpoint 0123456789ab\n" +
		"2026-11-22T10:00:05.000Z  attempt 2 epoch 1 step 20  loss=0.5\n" +
		"2026-11-22T10:00:08.000Z  attempt 2 failed\n" +
		"2026-11-22T10:00:09.000Z  job j1 failed: out of restarts"
	if got := strings.Join(lines, "\n"); got != want {
		t.Fatalf("jobLogLines:\n%s\nwant:\n%s", got, want)
	}

	var b bytes.Buffer
	ck := &api.Checkpoint{Digest: running.LatestCheckpoint, Attempt: 2, Epoch: 2, Step: 40, Size: 2048, Time: t0}
	if err := writeJob(&b, jobDetail{Job: ended, Checkpoint: ck}); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"state        failed", "restarts 1 of 3", "excluded     w1", "error        out of restarts",
		"checkpoint   fedcba987654 (attempt 2, epoch 2, step 40, 2.0 KiB,", "attempts     2", "w2,w3", "0123456789ab", "oom"} {
		if !strings.Contains(b.String(), w) {
			t.Fatalf("writeJob lacks %q:\n%s", w, b.String())
		}
	}
}
