//go:build linux

package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// idleFor is how long BenchmarkProcessIdleCPU leaves the cluster idle.
const idleFor = 60 * time.Second

// BenchmarkProcessIdleCPU measures what an idle cluster costs: a real
// `trainctl coordinator`, `trainctl worker` and `trainctl serve --model`
// (following a model that has no version yet) with their default timings,
// left idle for a minute; it reports the CPU time (user + system, from
// /proc/PID/stat) each process used in that minute, in milliseconds.
//
//	go test ./cmd/trainctl/ -run '^$' -bench ProcessIdleCPU -benchtime 1x
func BenchmarkProcessIdleCPU(b *testing.B) {
	bin := trainctlBinary(b)
	for range b.N {
		dataDir := b.TempDir()
		coord := startCoord(b, bin, dataDir, "c1", "--bootstrap")
		w := startWorker(b, bin, dataDir, coord.httpAddr, "w1", "--cores", "1")
		s := startServe(b, bin, dataDir, coord.httpAddr, "--model", "idle", "--listen", "127.0.0.1:0")
		time.Sleep(3 * time.Second) // past start-up
		procs := []*proc{&coord.proc, &w.proc, &s.proc}
		before := make([]time.Duration, len(procs))
		for i, p := range procs {
			before[i] = cpuTime(b, p)
		}
		time.Sleep(idleFor)
		for i, p := range procs {
			used := cpuTime(b, p) - before[i]
			b.ReportMetric(float64(used)/float64(time.Millisecond)*float64(time.Minute)/float64(idleFor), p.kind+"-cpu-ms/min")
		}
		s.kill()
		w.kill()
		coord.kill()
	}
}

// serveProc is one `trainctl serve` process.
type serveProc struct {
	proc
}

// startServe starts `trainctl serve --coordinator coordAddr` with the
// given flags and waits until its follower has asked the coordinator (it
// logs that it waits for a checkpoint).
func startServe(tb testing.TB, bin, dataDir, coordAddr string, extra ...string) *serveProc {
	tb.Helper()
	p := &serveProc{}
	p.init(tb, "serve", "serve")
	logf, err := os.Create(p.logPath)
	if err != nil {
		tb.Fatal(err)
	}
	defer logf.Close()
	args := append([]string{"--data-dir", dataDir, "serve", "--coordinator", coordAddr, "--log-level", "info"}, extra...)
	cmd, done := p.launch(logf, bin, args...)
	procWait(tb, 60*time.Second, "serve to follow", func() error {
		b, err := os.ReadFile(p.logPath)
		if err != nil {
			return err
		}
		if bytes.Contains(b, []byte("waiting for a checkpoint")) {
			return nil
		}
		select {
		case <-done:
			tb.Fatalf("serve exited (%v) before following:\n%s", cmd.ProcessState, b)
		default:
		}
		return errors.New("no waiting line yet")
	})
	return p
}

// clockTick is the unit of /proc/PID/stat's times (USER_HZ, 100 on
// Linux everywhere).
const clockTick = 10 * time.Millisecond

// cpuTime returns the user and system time the running process p used.
func cpuTime(tb testing.TB, p *proc) time.Duration {
	tb.Helper()
	p.mu.Lock()
	cmd := p.cmd
	p.mu.Unlock()
	if cmd == nil {
		tb.Fatalf("%s %s is not running", p.kind, p.id)
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", cmd.Process.Pid))
	if err != nil {
		tb.Fatal(err)
	}
	// Fields after the command name (which may hold spaces), from field 3
	// (state): utime and stime are fields 14 and 15.
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		tb.Fatalf("/proc/%d/stat: %d fields after the name", cmd.Process.Pid, len(f))
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			tb.Fatalf("/proc/%d/stat: %v", cmd.Process.Pid, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * clockTick
}
