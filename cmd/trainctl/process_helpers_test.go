//go:build unix

package main

// Helpers of the real-process fault tests (process_test.go,
// process_worker_test.go): build the trainctl binary once per test binary,
// run `trainctl coordinator` and `trainctl worker` processes with their
// stderr in a file, signal and kill them, and wait on conditions with a
// deadline. They take a testing.TB so that benchmarks can use them too.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/trainctl/trainctl/api"
)

var (
	binOnce sync.Once
	binDir  string // holds the built binary; removed by TestMain
	binPath string
	binErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// trainctlBinary builds ./cmd/trainctl once per test binary (CGO off, so it
// needs no C toolchain) and returns the path of the executable. Tests that
// run real processes call it; it skips them under -short.
func trainctlBinary(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("real-process fault test; skipped under -short")
	}
	binOnce.Do(func() {
		root, err := moduleRoot()
		if err != nil {
			binErr = err
			return
		}
		if binDir, err = os.MkdirTemp("", "trainctl-process-test-"); err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(binDir, "trainctl")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/trainctl")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build ./cmd/trainctl: %w\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// moduleRoot is the directory of go.mod.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return filepath.Abs("../..") // the package dir is cmd/trainctl
	}
	return filepath.Dir(gomod), nil
}

// procWait polls cond every 20 ms until it returns nil, failing the test
// with cond's last error after timeout.
func procWait(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting %v for %s: %v", timeout, what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// proc is what coordinator and worker processes of a test share: starting
// the binary, signalling it, killing it, and printing its log if the test
// failed.
type proc struct {
	t       testing.TB
	kind    string // "coordinator" or "worker", in messages
	id      string
	logPath string // its stderr (and stdout), every run appended

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited; then cmd.ProcessState is set
}

// init names p and registers its cleanup: SIGKILL, and the tail of its log
// if the test failed. p must not move afterwards (it lives in a struct
// allocated by its start function).
func (p *proc) init(t testing.TB, kind, id string) {
	p.t, p.kind, p.id = t, kind, id
	p.logPath = filepath.Join(t.TempDir(), id+".stderr")
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			b, _ := os.ReadFile(p.logPath)
			if len(b) > maxLogTail {
				b = append([]byte("[...]"), b[len(b)-maxLogTail:]...)
			}
			t.Logf("--- stderr of %s %s ---\n%s", p.kind, p.id, b)
		}
	})
}

// launch starts bin with args (and the environment of childEnv), its
// output to logf, and returns it with a channel closed when it exits.
func (p *proc) launch(logf *os.File, bin string, args ...string) (*exec.Cmd, chan struct{}) {
	p.t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = childEnv()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		p.t.Fatalf("start %s %s: %v", p.kind, p.id, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait() // the exit status is in cmd.ProcessState
		close(done)
	}()
	p.mu.Lock()
	p.cmd, p.done = cmd, done
	p.mu.Unlock()
	return cmd, done
}

// signal sends sig to the running process.
func (p *proc) signal(sig syscall.Signal) {
	p.t.Helper()
	p.mu.Lock()
	cmd := p.cmd
	p.mu.Unlock()
	if cmd == nil {
		p.t.Fatalf("%s %s is not running", p.kind, p.id)
	}
	if err := cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("signal %v to %s %s: %v", sig, p.kind, p.id, err)
	}
}

// kill SIGKILLs the process (if it has not exited) and waits for it to
// exit.
func (p *proc) kill() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.cmd = nil
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill() // fails only if it has exited already
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		p.t.Errorf("%s %s (pid %d) did not exit 30s after SIGKILL", p.kind, p.id, cmd.Process.Pid)
	}
}

// coordProc is one `trainctl coordinator` process, restartable on its data
// directory and addresses.
type coordProc struct {
	proc
	bin     string
	dataDir string // the global --data-dir; state is under coordinator/<id>

	// httpAddr and raftAddr are what the first run listened on (it asks
	// for port 0); restarts reuse them, as Raft knows the server by them.
	httpAddr, raftAddr string
}

// maxLogTail is how much of a child's stderr a failed test prints.
const maxLogTail = 256 << 10

// servingRE matches the line a coordinator logs once it serves; the join of
// a new server is complete by then.
var servingRE = regexp.MustCompile(`msg="serving; Ctrl-C to stop".* http=(\S+) raft=(\S+)`)

// startCoord starts a coordinator with the given extra flags (--bootstrap
// or --join ADDRS) on free loopback ports and waits until it serves. The
// process is SIGKILLed in cleanup; its stderr is printed if the test
// failed.
func startCoord(t testing.TB, bin, dataDir, id string, extra ...string) *coordProc {
	t.Helper()
	p := &coordProc{bin: bin, dataDir: dataDir, httpAddr: "127.0.0.1:0", raftAddr: "127.0.0.1:0"}
	p.init(t, "coordinator", id)
	p.start(extra...)
	return p
}

// start runs the process and waits for its serving line (written after the
// lines of earlier runs in the same log file).
func (p *coordProc) start(extra ...string) {
	t := p.t
	t.Helper()
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	fi, err := logf.Stat()
	if err != nil {
		t.Fatal(err)
	}
	offset := fi.Size()

	args := append([]string{"--data-dir", p.dataDir, "coordinator", "--node-id", p.id,
		"--raft-addr", p.raftAddr, "--http-addr", p.httpAddr, "--log-level", "info",
		"--blob-catch-up-interval", "500ms"}, extra...)
	cmd, done := p.launch(logf, p.bin, args...)

	procWait(t, 60*time.Second, "coordinator "+p.id+" to serve", func() error {
		b, err := os.ReadFile(p.logPath)
		if err != nil {
			return err
		}
		if m := servingRE.FindSubmatch(b[min(offset, int64(len(b))):]); m != nil {
			p.httpAddr, p.raftAddr = string(m[1]), string(m[2])
			return nil
		}
		select {
		case <-done:
			t.Fatalf("coordinator %s exited (%v) before serving:\n%s", p.id, cmd.ProcessState, b[offset:])
		default:
		}
		return fmt.Errorf("no serving line yet")
	})
}

// childEnv is the environment without TRAINCTL_ variables, which would
// otherwise become flags of the child.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TRAINCTL_") {
			env = append(env, kv)
		}
	}
	return env
}

// client returns a client of this coordinator alone; reads answer from its
// own state. retry bounds its retries.
func (p *coordProc) client(retry time.Duration) *api.Client {
	cfg := api.DefaultConfig(p.httpAddr)
	cfg.RetryTimeout = retry
	return api.NewWithConfig(cfg)
}

// status asks p for its view of the cluster, without retries.
func (p *coordProc) status() (*api.ClusterStatus, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return p.client(0).Status(ctx)
}

// jobsJSON returns p's job list and its dataset registry, the two encoded
// together, without retries.
func (p *coordProc) jobsJSON() ([]*api.Job, []byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := p.client(0)
	jobs, err := c.Jobs(ctx, "")
	if err != nil {
		return nil, nil, err
	}
	datasets, err := c.Datasets(ctx, "")
	if err != nil {
		return nil, nil, err
	}
	b, err := json.Marshal(struct {
		Jobs     []*api.Job
		Datasets []*api.DatasetVersion
	}{jobs, datasets})
	return jobs, b, err
}

// currentLeader returns the process that says it leads, in the highest
// term any of procs reports.
func currentLeader(t *testing.T, procs []*coordProc) *coordProc {
	t.Helper()
	var leader *coordProc
	procWait(t, 60*time.Second, "a server that leads", func() error {
		var term uint64
		leader = nil
		for _, p := range procs {
			st, err := p.status()
			if err != nil {
				continue
			}
			if st.Term > term {
				term, leader = st.Term, nil
			}
			if st.Term == term && st.State == "Leader" {
				leader = p
			}
		}
		if leader == nil {
			return errors.New("none says it leads")
		}
		return nil
	})
	return leader
}

// startCluster starts three coordinators, c1 bootstrapping and the others
// joining, and waits until every one of them sees three voters and the
// same leader.
func startCluster(t *testing.T) []*coordProc {
	t.Helper()
	bin := trainctlBinary(t)
	dataDir := t.TempDir()
	c1 := startCoord(t, bin, dataDir, "c1", "--bootstrap")
	c2 := startCoord(t, bin, dataDir, "c2", "--join", c1.httpAddr)
	c3 := startCoord(t, bin, dataDir, "c3", "--join", c1.httpAddr+","+c2.httpAddr)
	procs := []*coordProc{c1, c2, c3}
	waitLeader(t, procs, 3)
	return procs
}

// waitLeader waits until every one of procs sees the same leader, one of
// procs, with the given number of voters, and returns it.
func waitLeader(t *testing.T, procs []*coordProc, voters int) *coordProc {
	t.Helper()
	var leader *coordProc
	procWait(t, 60*time.Second, "an agreed leader", func() error {
		leader = nil
		for _, p := range procs {
			st, err := p.status()
			if err != nil {
				return fmt.Errorf("%s: %w", p.id, err)
			}
			if len(st.Voters) != voters || st.LeaderID == "" {
				return fmt.Errorf("%s sees %d voters, leader %q", p.id, len(st.Voters), st.LeaderID)
			}
			if leader != nil && leader.id != st.LeaderID {
				return fmt.Errorf("%s follows %s, %s follows %s", procs[0].id, leader.id, p.id, st.LeaderID)
			}
			for _, q := range procs {
				if q.id == st.LeaderID {
					leader = q
				}
			}
			if leader == nil {
				return fmt.Errorf("%s follows %s, not one of the running servers", p.id, st.LeaderID)
			}
		}
		return nil
	})
	return leader
}

// waitSameState waits until procs hold identical job lists and have
// applied the same index, and returns the jobs.
func waitSameState(t *testing.T, procs []*coordProc, wantJobs int) []*api.Job {
	t.Helper()
	var jobs []*api.Job
	procWait(t, 60*time.Second, "identical state on every server", func() error {
		var ref []byte
		var refIndex uint64
		for i, p := range procs {
			st, err := p.status()
			if err != nil {
				return fmt.Errorf("%s: %w", p.id, err)
			}
			js, b, err := p.jobsJSON()
			if err != nil {
				return fmt.Errorf("%s: %w", p.id, err)
			}
			if len(js) != wantJobs {
				return fmt.Errorf("%s holds %d jobs, want %d", p.id, len(js), wantJobs)
			}
			st2, err := p.status()
			if err != nil {
				return fmt.Errorf("%s: %w", p.id, err)
			}
			if st.AppliedIndex != st2.AppliedIndex {
				return fmt.Errorf("%s still applying (%d, then %d)", p.id, st.AppliedIndex, st2.AppliedIndex)
			}
			if i == 0 {
				ref, refIndex, jobs = b, st.AppliedIndex, js
				continue
			}
			if st.AppliedIndex != refIndex {
				return fmt.Errorf("%s applied %d, %s %d", procs[0].id, refIndex, p.id, st.AppliedIndex)
			}
			if !bytes.Equal(b, ref) {
				return fmt.Errorf("%s and %s hold different jobs or datasets", procs[0].id, p.id)
			}
		}
		return nil
	})
	return jobs
}

// workerProc is one `trainctl worker` process.
type workerProc struct {
	proc
}

// workerRegisteredRE matches the line a worker logs once the coordinators
// accepted its first registration.
var workerRegisteredRE = regexp.MustCompile(`msg="worker registered"`)

// startWorker starts `trainctl worker --id id --coordinator coordAddrs`
// with the given extra flags (--cores, --grace, --heartbeat, ...), its
// files under dataDir/worker/id, and waits until it has registered. The
// process is SIGKILLed in cleanup; its stderr is printed if the test
// failed.
func startWorker(t testing.TB, bin, dataDir, coordAddrs, id string, extra ...string) *workerProc {
	t.Helper()
	p := &workerProc{}
	p.init(t, "worker", id)
	logf, err := os.Create(p.logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	args := append([]string{"--data-dir", dataDir, "worker", "--coordinator", coordAddrs, "--id", id,
		"--log-level", "info"}, extra...)
	cmd, done := p.launch(logf, bin, args...)

	procWait(t, 60*time.Second, "worker "+id+" to register", func() error {
		b, err := os.ReadFile(p.logPath)
		if err != nil {
			return err
		}
		if workerRegisteredRE.Match(b) {
			return nil
		}
		select {
		case <-done:
			t.Fatalf("worker %s exited (%v) before registering:\n%s", id, cmd.ProcessState, b)
		default:
		}
		return errors.New("no registration line yet")
	})
	return p
}

// waitExit waits up to timeout for the process to exit by itself and
// returns its exit state, or nil if it is still running then.
func (p *workerProc) waitExit(timeout time.Duration) *os.ProcessState {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return nil
	}
	select {
	case <-done:
		return cmd.ProcessState
	case <-time.After(timeout):
		return nil
	}
}
