//go:build unix

package main

// Chaos tests (`make chaos`, issue 10): three real `trainctl coordinator`
// processes while busy-loop processes saturate every core, a steady light
// write load, and
//
//   - TestChaosSoak: no fault for TRAINCTL_CHAOS_SOAK (default 5m); fails
//     if any server sees another leader or another term;
//   - TestChaosFollowerRestart: a follower SIGKILLed and restarted
//     TRAINCTL_CHAOS_KILLS times; the leader must not change;
//   - TestChaosFailover: the leader SIGKILLed TRAINCTL_CHAOS_KILLS times
//     (default 10), restarted each time; reports the time from the kill to
//     the first write a new leader acknowledged, and fails if its median
//     exceeds TRAINCTL_CHAOS_MAX_FAILOVER (default 1s).
//
// They run only with TRAINCTL_CHAOS=1: they take minutes and load the
// whole machine, which is what they are about. TRAINCTL_CHAOS_FLAGS adds
// flags to every coordinator (to compare Raft timings, say); TRAINCTL_CHAOS_BURNERS
// sets the number of busy loops (default 2 × nproc).

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trainctl/trainctl/api"
	"github.com/trainctl/trainctl/coordinator"
)

// chaosConfig is what the TRAINCTL_CHAOS_ variables set.
type chaosConfig struct {
	soak        time.Duration
	kills       int
	maxFailover time.Duration
	burners     int
	flags       []string // extra coordinator flags, on every start
	// heartbeat is the coordinators' heartbeat timeout, for the stall
	// report: the default, or --heartbeat-timeout in flags.
	heartbeat time.Duration
}

// chaosSettings skips the test unless TRAINCTL_CHAOS=1 and reads the
// other TRAINCTL_CHAOS_ variables.
func chaosSettings(t *testing.T) chaosConfig {
	t.Helper()
	if os.Getenv("TRAINCTL_CHAOS") != "1" {
		t.Skip("chaos test: saturates the CPU for minutes; run with TRAINCTL_CHAOS=1 (make chaos)")
	}
	cfg := chaosConfig{soak: 5 * time.Minute, kills: 10, maxFailover: time.Second, burners: 2 * runtime.NumCPU()}
	for _, v := range []struct {
		name string
		dst  *time.Duration
	}{{"TRAINCTL_CHAOS_SOAK", &cfg.soak}, {"TRAINCTL_CHAOS_MAX_FAILOVER", &cfg.maxFailover}} {
		if s := os.Getenv(v.name); s != "" {
			d, err := time.ParseDuration(s)
			if err != nil || d <= 0 {
				t.Fatalf("%s=%q: want a positive duration", v.name, s)
			}
			*v.dst = d
		}
	}
	for _, v := range []struct {
		name string
		dst  *int
	}{{"TRAINCTL_CHAOS_KILLS", &cfg.kills}, {"TRAINCTL_CHAOS_BURNERS", &cfg.burners}} {
		if s := os.Getenv(v.name); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 0 {
				t.Fatalf("%s=%q: want a count", v.name, s)
			}
			*v.dst = n
		}
	}
	cfg.flags = strings.Fields(os.Getenv("TRAINCTL_CHAOS_FLAGS"))
	cfg.heartbeat = coordinator.DefaultConfig().HeartbeatTimeout
	for i, f := range cfg.flags {
		if strings.TrimLeft(f, "-") == "heartbeat-timeout" && i+1 < len(cfg.flags) {
			if d, err := time.ParseDuration(cfg.flags[i+1]); err == nil {
				cfg.heartbeat = d
			}
		}
		if strings.TrimLeft(f, "-") == "raft-multiplier" && i+1 < len(cfg.flags) {
			if m, err := strconv.Atoi(cfg.flags[i+1]); err == nil {
				cfg.heartbeat = time.Duration(m) * coordinator.BaseHeartbeatTimeout
			}
		}
	}
	return cfg
}

// saturateCPU starts n busy-loop processes (a shell's builtin loop, no
// children) at the default priority; they are SIGKILLed in cleanup.
func saturateCPU(t *testing.T, n int) {
	t.Helper()
	for range n {
		cmd := exec.Command("sh", "-c", "while :; do :; done")
		if err := cmd.Start(); err != nil {
			t.Fatalf("start busy loop: %v", err)
		}
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		})
	}
}

// cpuTimes is the first line of /proc/stat: total and idle (with iowait)
// jiffies of all CPUs.
func cpuTimes() (total, idle uint64, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, fmt.Errorf("read /proc/stat: %w", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 6 || f[0] != "cpu" {
		return 0, 0, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	for i, s := range f[1:] {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/stat: %q: %w", s, err)
		}
		total += n
		if i == 3 || i == 4 { // idle, iowait
			idle += n
		}
	}
	return total, idle, nil
}

// cpuMeter reports the share of CPU time that was busy since it started.
type cpuMeter struct{ total, idle uint64 }

func startCPUMeter(t *testing.T) cpuMeter {
	t.Helper()
	total, idle, err := cpuTimes()
	if err != nil {
		t.Fatal(err)
	}
	return cpuMeter{total, idle}
}

// busy returns the busy share in percent since m started.
func (m cpuMeter) busy(t *testing.T) float64 {
	t.Helper()
	total, idle, err := cpuTimes()
	if err != nil {
		t.Fatal(err)
	}
	if total == m.total {
		return 0
	}
	return 100 * (1 - float64(idle-m.idle)/float64(total-m.total))
}

// freezeMeter records how late 10 ms sleeps of the test process wake up:
// a late wake-up of hundreds of milliseconds is a stall of this process
// (and, on a virtual machine whose host deschedules it, of every process
// at once), long enough to expire Raft's timeouts by itself.
type freezeMeter struct {
	mu      sync.Mutex
	longest time.Duration
	over    []string // "at 1m2s: 1.2s", stalls of at least threshold
	done    chan struct{}
}

func startFreezeMeter(ctx context.Context, threshold time.Duration) *freezeMeter {
	f := &freezeMeter{done: make(chan struct{})}
	start := time.Now()
	go func() {
		defer close(f.done)
		for ctx.Err() == nil {
			t := time.Now()
			time.Sleep(10 * time.Millisecond)
			late := time.Since(t) - 10*time.Millisecond
			f.mu.Lock()
			f.longest = max(f.longest, late)
			if late >= threshold {
				f.over = append(f.over, fmt.Sprintf("at %v: %v", t.Sub(start).Round(time.Millisecond), ms(late)))
			}
			f.mu.Unlock()
		}
	}()
	return f
}

// report waits for the meter (whose context the caller ended) and
// describes the stalls.
func (f *freezeMeter) report() string {
	<-f.done
	f.mu.Lock()
	defer f.mu.Unlock()
	return fmt.Sprintf("longest stall of the test process %v; %d stalls ≥ the heartbeat timeout %v", ms(f.longest), len(f.over), f.over)
}

// chaosCluster is three coordinator processes and the flags every start
// of one of them gets.
type chaosCluster struct {
	t     *testing.T
	procs []*coordProc
	flags []string
}

// startChaosCluster starts three coordinators with cfg.flags, as
// startCluster does, and waits for a leader they all agree on.
func startChaosCluster(t *testing.T, cfg chaosConfig) *chaosCluster {
	t.Helper()
	bin := trainctlBinary(t)
	dataDir := t.TempDir()
	f := cfg.flags
	c1 := startCoord(t, bin, dataDir, "c1", append(slices.Clone(f), "--bootstrap")...)
	c2 := startCoord(t, bin, dataDir, "c2", append(slices.Clone(f), "--join", c1.httpAddr)...)
	c3 := startCoord(t, bin, dataDir, "c3", append(slices.Clone(f), "--join", c1.httpAddr+","+c2.httpAddr)...)
	c := &chaosCluster{t: t, procs: []*coordProc{c1, c2, c3}, flags: f}
	waitLeader(t, c.procs, 3)
	return c
}

// restart starts p again on its data directory and addresses.
func (c *chaosCluster) restart(p *coordProc) { p.start(c.flags...) }

// settle waits until all three servers agree on a leader and have applied
// its last index, and returns the leader and its term.
func (c *chaosCluster) settle() (*coordProc, uint64) {
	t := c.t
	t.Helper()
	leader := waitLeader(t, c.procs, 3)
	var term uint64
	procWait(t, 60*time.Second, "every server caught up with the leader", func() error {
		st, err := leader.status()
		if err != nil {
			return err
		}
		if st.State != "Leader" {
			return fmt.Errorf("%s is %s", leader.id, st.State)
		}
		term = st.Term
		for _, p := range others(c.procs, leader) {
			fs, err := p.status()
			if err != nil {
				return fmt.Errorf("%s: %w", p.id, err)
			}
			if fs.Term != term || fs.AppliedIndex < st.CommitIndex {
				return fmt.Errorf("%s: term %d, applied %d; leader: term %d, committed %d", p.id, fs.Term, fs.AppliedIndex, term, st.CommitIndex)
			}
		}
		return nil
	})
	return leader, term
}

// writeLoad submits a job through any of the cluster's servers every
// interval until ctx ends, counting acknowledgements and failures.
type writeLoad struct {
	acked, failed atomic.Int64
	mu            sync.Mutex
	lat           []time.Duration // of the acknowledged submissions
	firstErr      error
	done          chan struct{}
}

func startWriteLoad(ctx context.Context, t *testing.T, c *chaosCluster, prefix string, every time.Duration) *writeLoad {
	t.Helper()
	var addrs []string
	for _, p := range c.procs {
		addrs = append(addrs, p.httpAddr)
	}
	cfg := api.DefaultConfig(addrs...)
	cfg.RetryTimeout = 30 * time.Second
	cl := api.NewWithConfig(cfg)
	w := &writeLoad{done: make(chan struct{})}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			rid := fmt.Sprintf("%s-%06d", prefix, i)
			start := time.Now()
			_, err := cl.SubmitJob(ctx, rid, processSpec(rid))
			switch {
			case ctx.Err() != nil:
				return
			case err != nil:
				w.failed.Add(1)
				w.mu.Lock()
				if w.firstErr == nil {
					w.firstErr = fmt.Errorf("submit %s: %w", rid, err)
				}
				w.mu.Unlock()
			default:
				w.acked.Add(1)
				w.mu.Lock()
				w.lat = append(w.lat, time.Since(start))
				w.mu.Unlock()
			}
		}
	}()
	return w
}

// stop waits for the writer (whose context the caller ended) and fails
// the test if a submission failed or none was acknowledged.
func (w *writeLoad) stop(t *testing.T) {
	t.Helper()
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.lat) > 0 {
		s := slices.Clone(w.lat)
		slices.Sort(s)
		t.Logf("write load: %d acknowledged, %d failed; latency median %v, p99 %v, max %v", w.acked.Load(), w.failed.Load(),
			ms(s[len(s)/2]), ms(s[len(s)*99/100]), ms(s[len(s)-1]))
	}
	if w.failed.Load() > 0 {
		t.Errorf("%d submissions failed, first: %v", w.failed.Load(), w.firstErr)
	}
	if w.acked.Load() == 0 {
		t.Error("no submission was acknowledged")
	}
}

func ms(d time.Duration) time.Duration { return d.Round(time.Millisecond) }

// leaderWatch polls every server's status and records every view that
// differs from the expected leader and term.
type leaderWatch struct {
	mu      sync.Mutex
	changes []string // "c2 at 1m3s: leader c1 term 5"
	polls   int
	errs    int
	done    chan struct{}
}

// watchLeader polls procs every interval until ctx ends.
func watchLeader(ctx context.Context, procs []*coordProc, leader string, term uint64, every time.Duration) *leaderWatch {
	w := &leaderWatch{done: make(chan struct{})}
	start := time.Now()
	go func() {
		defer close(w.done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			for _, p := range procs {
				st, err := p.status()
				w.mu.Lock()
				w.polls++
				switch {
				case err != nil:
					w.errs++
				case st.LeaderID != leader || st.Term != term:
					w.changes = append(w.changes, fmt.Sprintf("%s at %v: %s, leader %q, term %d",
						p.id, time.Since(start).Round(time.Millisecond), st.State, st.LeaderID, st.Term))
				}
				w.mu.Unlock()
			}
		}
	}()
	return w
}

// electionLines are the Raft log lines of a server that gave up on its
// leader (a follower's heartbeat timeout; a pre-vote or an election
// follows) or of a leader that lost its lease.
var electionLines = regexp.MustCompile(`heartbeat timeout reached|entering candidate state|stepping down|failed to contact quorum`)

// countLogLines counts electionLines in each server's log since the
// offsets (the log sizes when the measured period began).
func countLogLines(t *testing.T, procs []*coordProc, offsets map[string]int64) map[string]int {
	t.Helper()
	n := map[string]int{}
	for _, p := range procs {
		b, err := os.ReadFile(p.logPath)
		if err != nil {
			t.Fatal(err)
		}
		n[p.id] = len(electionLines.FindAll(b[min(offsets[p.id], int64(len(b))):], -1))
	}
	return n
}

func logOffsets(t *testing.T, procs []*coordProc) map[string]int64 {
	t.Helper()
	off := map[string]int64{}
	for _, p := range procs {
		fi, err := os.Stat(p.logPath)
		if err != nil {
			t.Fatal(err)
		}
		off[p.id] = fi.Size()
	}
	return off
}

// machine describes the box for the log: cores and CPU model.
func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		if m := regexp.MustCompile(`(?m)^model name\s*:\s*(.+)$`).FindSubmatch(b); m != nil {
			model = string(m[1])
		}
	}
	return fmt.Sprintf("%d CPUs, %s", runtime.NumCPU(), model)
}

// TestChaosSoak runs a 3-voter cluster of real processes with every core
// saturated by busy loops and a job submitted every 200 ms, for
// TRAINCTL_CHAOS_SOAK, and fails if any server ever reports a leader or a
// term other than those it started with. Nothing is killed, so any change
// would be a spurious election.
func TestChaosSoak(t *testing.T) {
	cfg := chaosSettings(t)
	c := startChaosCluster(t, cfg)
	registerShapes(t, retryingClient(c.procs...))
	leader, term := c.settle()
	t.Logf("machine: %s; %d busy loops; soak %v; extra flags %q; leader %s, term %d", machine(), cfg.burners, cfg.soak, cfg.flags, leader.id, term)

	saturateCPU(t, cfg.burners)
	offsets := logOffsets(t, c.procs)
	cpu := startCPUMeter(t)
	ctx, cancel := context.WithCancel(context.Background())
	writes := startWriteLoad(ctx, t, c, "soak", 200*time.Millisecond)
	watch := watchLeader(ctx, c.procs, leader.id, term, 250*time.Millisecond)
	freezes := startFreezeMeter(ctx, cfg.heartbeat)
	time.Sleep(cfg.soak)
	busy := cpu.busy(t)
	cancel()
	<-watch.done
	writes.stop(t)
	t.Log(freezes.report())

	lines := countLogLines(t, c.procs, offsets)
	t.Logf("soak %v: CPU %.1f%% busy; %d status polls (%d failed); election log lines per server %v; %d views of another leader or term",
		cfg.soak, busy, watch.polls, watch.errs, lines, len(watch.changes))
	for _, p := range c.procs {
		st, err := p.status()
		if err != nil {
			t.Errorf("%s: status after the soak: %v", p.id, err)
			continue
		}
		if st.Term != term || st.LeaderID != leader.id {
			t.Errorf("%s after the soak: leader %q, term %d; want %s, term %d", p.id, st.LeaderID, st.Term, leader.id, term)
		}
	}
	if len(watch.changes) > 0 {
		t.Errorf("the leader or term changed without a fault, %d times; first: %s", len(watch.changes), watch.changes[0])
	}
	if watch.polls > 0 && watch.errs*10 > watch.polls {
		t.Errorf("%d of %d status polls failed", watch.errs, watch.polls)
	}
}

// TestChaosFollowerRestart SIGKILLs a follower and restarts it on its data
// directory TRAINCTL_CHAOS_KILLS times with every core saturated: the
// leader keeps its quorum (the other follower) throughout, so neither the
// leader nor the term may change.
func TestChaosFollowerRestart(t *testing.T) {
	cfg := chaosSettings(t)
	c := startChaosCluster(t, cfg)
	registerShapes(t, retryingClient(c.procs...))
	leader, term := c.settle()
	t.Logf("machine: %s; %d busy loops; %d follower restarts; extra flags %q; leader %s, term %d", machine(), cfg.burners, cfg.kills, cfg.flags, leader.id, term)

	saturateCPU(t, cfg.burners)
	ctx, cancel := context.WithCancel(context.Background())
	writes := startWriteLoad(ctx, t, c, "restart", 200*time.Millisecond)
	// Only the leader and the follower that stays up are watched: the
	// restarted one knows no leader until the leader's first heartbeat.
	followers := others(c.procs, leader)
	for i := range cfg.kills {
		victim := followers[i%2]
		watch := watchLeader(ctx, []*coordProc{leader, followers[(i+1)%2]}, leader.id, term, 100*time.Millisecond)
		victim.kill()
		time.Sleep(time.Second)
		c.restart(victim)
		// Two seconds after its restart, the follower is back under the
		// leader it had.
		time.Sleep(2 * time.Second)
		procWait(t, 30*time.Second, victim.id+" following "+leader.id+" again", func() error {
			st, err := victim.status()
			if err != nil {
				return err
			}
			if st.LeaderID != leader.id || st.Term != term {
				return fmt.Errorf("%s follows %q in term %d", victim.id, st.LeaderID, st.Term)
			}
			return nil
		})
		watch.mu.Lock()
		changes := slices.Clone(watch.changes)
		watch.mu.Unlock()
		if len(changes) > 0 {
			t.Errorf("restart %d of %s: the leader or term changed: %s", i+1, victim.id, changes[0])
		}
	}
	cancel()
	writes.stop(t)
	if st, err := leader.status(); err != nil || st.State != "Leader" || st.Term != term {
		t.Errorf("%s after %d follower restarts: %+v, %v; want Leader in term %d", leader.id, cfg.kills, st, err, term)
	}
}

// TestChaosFailover SIGKILLs the leader TRAINCTL_CHAOS_KILLS times with
// every core saturated and a job submitted every 200 ms, and times each
// failover: from the SIGKILL to the acknowledgement of a submission sent
// after it (so committed by a new leader) by a client that retries every
// 10-50 ms. The killed server is restarted and the cluster settles before
// the next kill. It fails if the median exceeds TRAINCTL_CHAOS_MAX_FAILOVER.
func TestChaosFailover(t *testing.T) {
	cfg := chaosSettings(t)
	if cfg.kills == 0 {
		t.Skip("TRAINCTL_CHAOS_KILLS=0")
	}
	c := startChaosCluster(t, cfg)
	registerShapes(t, retryingClient(c.procs...))
	c.settle()
	t.Logf("machine: %s; %d busy loops; %d leader kills; extra flags %q", machine(), cfg.burners, cfg.kills, cfg.flags)

	saturateCPU(t, cfg.burners)
	cpu := startCPUMeter(t)
	ctx, cancel := context.WithCancel(context.Background())
	writes := startWriteLoad(ctx, t, c, "load", 200*time.Millisecond)
	freezes := startFreezeMeter(ctx, cfg.heartbeat)
	var (
		took  []time.Duration
		terms []uint64
	)
	for i := range cfg.kills {
		leader, term := c.settle()
		time.Sleep(time.Second) // a steady cluster, not one that just elected
		survivors := others(c.procs, leader)
		var addrs []string
		for _, p := range survivors {
			addrs = append(addrs, p.httpAddr)
		}
		ccfg := api.DefaultConfig(addrs...)
		ccfg.RetryTimeout = 30 * time.Second
		ccfg.RetryWait, ccfg.MaxRetryWait = 10*time.Millisecond, 50*time.Millisecond
		ccfg.HTTPClient = &http.Client{Timeout: 5 * time.Second}
		probe := api.NewWithConfig(ccfg)

		killed := time.Now()
		leader.kill()
		rid := fmt.Sprintf("probe-%03d", i)
		if _, err := probe.SubmitJob(ctx, rid, processSpec(rid)); err != nil {
			t.Fatalf("kill %d: no write acknowledged after killing leader %s: %v", i+1, leader.id, err)
		}
		d := time.Since(killed)
		newLeader := waitLeader(t, survivors, 3)
		st, err := newLeader.status()
		if err != nil {
			t.Fatal(err)
		}
		took, terms = append(took, d), append(terms, st.Term-term)
		t.Logf("kill %d: leader %s (term %d) killed at %s; %s leads in term %d; first write acknowledged %v after the kill",
			i+1, leader.id, term, killed.UTC().Format("15:04:05.000"), newLeader.id, st.Term, ms(d))
		c.restart(leader)
	}
	busy := cpu.busy(t)
	cancel()
	writes.stop(t)
	t.Log(freezes.report())

	s := slices.Clone(took)
	slices.Sort(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	p90 := s[min(len(s)-1, (len(s)*9+9)/10-1)]
	t.Logf("failover under load (CPU %.1f%% busy), %d kills: median %v, p90 %v, min %v, max %v; terms per kill %v",
		busy, len(s), ms(med), ms(p90), ms(s[0]), ms(s[len(s)-1]), terms)
	if med > cfg.maxFailover {
		t.Errorf("median failover %v exceeds %v", ms(med), cfg.maxFailover)
	}
}
