//go:build unix

package main

// Fault tests with real `trainctl coordinator` processes, killed with
// SIGKILL or frozen with SIGSTOP (issue 4). The in-process versions over
// real TCP are in coordinator/cluster_test.go. Helpers are in
// process_helpers_test.go.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/trainctl/trainctl/api"
	"github.com/trainctl/trainctl/artifact"
	"github.com/trainctl/trainctl/jobspec"
)

// registerShapes registers the dataset shapes@v1 (a manifest, no blob) so
// that jobs naming it can be submitted.
func registerShapes(t *testing.T, c *api.Client) {
	t.Helper()
	man := genShapes(t, t.TempDir(), "shapes", 4, 16)
	raw, err := json.Marshal(man)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := c.RegisterDataset(ctx, api.RegisterDatasetBody{Name: "shapes", ID: man.ID, Manifest: raw}); err != nil {
		t.Fatalf("register dataset: %v", err)
	}
}

func processSpec(name string) jobspec.Spec {
	s := jobspec.Defaults()
	s.Name, s.Dataset = name, "shapes@v1"
	return s
}

// retryingClient knows the given coordinators and retries connection
// errors and 503s for long enough to ride out an election on a loaded
// machine.
func retryingClient(procs ...*coordProc) *api.Client {
	var addrs []string
	for _, p := range procs {
		addrs = append(addrs, p.httpAddr)
	}
	cfg := api.DefaultConfig(addrs...)
	cfg.RetryTimeout = 60 * time.Second
	cfg.MaxRetryWait = 250 * time.Millisecond
	cfg.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	return api.NewWithConfig(cfg)
}

func others(procs []*coordProc, not ...*coordProc) []*coordProc {
	var out []*coordProc
next:
	for _, p := range procs {
		for _, n := range not {
			if p == n {
				continue next
			}
		}
		out = append(out, p)
	}
	return out
}

// TestProcessLeaderKill kills the leader with SIGKILL while four clients
// submit 200 jobs with retries: every submission is acknowledged, each
// acknowledged request id is exactly one job, and the survivors, and then
// the killed server restarted, hold identical state.
func TestProcessLeaderKill(t *testing.T) {
	procs := startCluster(t)
	c := retryingClient(procs...)
	registerShapes(t, c)

	const total, clients, killAfter = 200, 4, 40
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	var (
		mu    sync.Mutex
		acked = map[string]string{} // request id -> job id
		errs  []error
		nAck  atomic.Int64
		wg    sync.WaitGroup
	)
	for w := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < total; i += clients {
				rid := fmt.Sprintf("req-%03d", i)
				j, err := c.SubmitJob(ctx, rid, processSpec(rid))
				mu.Lock()
				if err != nil {
					errs = append(errs, fmt.Errorf("submit %s: %w", rid, err))
				} else {
					acked[rid] = j.ID
				}
				mu.Unlock()
				if err != nil {
					return
				}
				nAck.Add(1)
			}
		}()
	}
	allDone := make(chan struct{})
	go func() { wg.Wait(); close(allDone) }()

	deadline := time.After(60 * time.Second)
wait:
	for nAck.Load() < killAfter {
		select {
		case <-allDone:
			break wait
		case <-deadline:
			cancel()
			<-allDone
			t.Fatalf("only %d of %d submissions acknowledged after 60s: %v", nAck.Load(), total, errs)
		case <-time.After(5 * time.Millisecond):
		}
	}
	leader := currentLeader(t, procs) // it may have changed under load
	atKill := nAck.Load()
	killedAt := time.Now()
	leader.kill()
	t.Logf("killed leader %s after %d acknowledgements", leader.id, atKill)
	<-allDone
	t.Logf("all submissions done %v after the kill", time.Since(killedAt).Round(time.Millisecond))
	if len(errs) > 0 {
		t.Fatalf("%d submissions failed, first: %v", len(errs), errs[0])
	}
	if atKill >= total {
		t.Fatalf("all %d submissions were acknowledged before the kill; nothing was in flight", total)
	}
	if len(acked) != total {
		t.Fatalf("%d acknowledgements, want %d", len(acked), total)
	}

	survivors := others(procs, leader)
	newLeader := waitLeader(t, survivors, 3)
	t.Logf("new leader %s", newLeader.id)
	check := func(jobs []*api.Job) {
		t.Helper()
		byReq := map[string]string{}
		for _, j := range jobs {
			if prev, dup := byReq[j.RequestID]; dup {
				t.Fatalf("request id %q made two jobs, %s and %s", j.RequestID, prev, j.ID)
			}
			byReq[j.RequestID] = j.ID
		}
		for rid, id := range acked {
			if byReq[rid] != id {
				t.Fatalf("request %s was acknowledged as job %s; the servers hold %q for it", rid, id, byReq[rid])
			}
		}
	}
	check(waitSameState(t, survivors, total))

	// The killed leader, restarted on its data directory, converges to the
	// same state.
	leader.start()
	waitLeader(t, procs, 3)
	check(waitSameState(t, procs, total))
}

// TestProcessRestartCatchesUp kills a follower, writes jobs and a dataset
// version with a blob while it is down, restarts it on the same data
// directory and addresses (without --bootstrap or --join: it has Raft
// state) and waits until it holds the leader's jobs and the blob is on its
// disk.
func TestProcessRestartCatchesUp(t *testing.T) {
	procs := startCluster(t)
	leader := waitLeader(t, procs, 3)
	c := retryingClient(procs...)
	registerShapes(t, c)
	down := others(procs, leader)[0]
	down.kill()

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const n = 20
	for i := range n {
		rid := fmt.Sprintf("while-down-%02d", i)
		if _, err := c.SubmitJob(ctx, rid, processSpec(rid)); err != nil {
			t.Fatalf("submit %s with %s down: %v", rid, down.id, err)
		}
	}
	up := others(procs, down)

	// A dataset version with a blob, written while down is down: the
	// leader copies the blob to the servers that are up before committing.
	blob := []byte(fmt.Sprintf("a blob written while %s was down, %d", down.id, time.Now().UnixNano()))
	digest := artifact.DigestOf(blob)
	blobs := artifact.NewClient(artifact.ClientConfig{})
	if err := blobs.Push(ctx, up[0].httpAddr, digest, bytes.NewReader(blob), int64(len(blob))); err != nil {
		t.Fatalf("upload blob: %v", err)
	}
	man := genShapes(t, t.TempDir(), "blobbed", 2, 16)
	raw, err := json.Marshal(man)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.RegisterDataset(ctx, api.RegisterDatasetBody{Name: "blobbed", ID: man.ID, Manifest: raw, Blob: digest}); err != nil {
		t.Fatalf("register a dataset with a blob while %s is down: %v", down.id, err)
	}
	for _, p := range up {
		if _, err := blobs.Stat(ctx, p.httpAddr, digest); err != nil {
			t.Fatalf("blob on %s after registering: %v", p.id, err)
		}
	}
	waitSameState(t, up, n)
	if st, err := down.status(); err == nil {
		t.Fatalf("killed coordinator %s still answers: %+v", down.id, st)
	}

	down.start()
	waitLeader(t, procs, 3)
	jobs := waitSameState(t, procs, n)
	for i, j := range jobs {
		if want := fmt.Sprintf("while-down-%02d", i); j.RequestID != want {
			t.Fatalf("job %d has request id %q, want %q", i, j.RequestID, want)
		}
	}
	if vs, err := down.client(0).Datasets(ctx, "blobbed"); err != nil || len(vs) != 1 || vs[0].Blob != digest {
		t.Fatalf("dataset blobbed on the restarted %s: %v, %v", down.id, vs, err)
	}

	// The blob reaches the restarted server's disk by its periodic catch-up
	// (every 10 s by default): served by it, and a file of that name and
	// size under its artifact store.
	procWait(t, 60*time.Second, "the blob on the restarted "+down.id, func() error {
		_, err := blobs.Stat(ctx, down.httpAddr, digest)
		return err
	})
	hexDigest, _ := artifact.ParseDigest(digest)
	found := false
	storeDir := artifact.StoreDir(filepath.Join(down.dataDir, "coordinator", down.id))
	err = filepath.WalkDir(storeDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Name() == hexDigest {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			found = bytes.Equal(b, blob)
		}
		return nil
	})
	if err != nil || !found {
		t.Fatalf("blob %s not on the disk of %s under %s (%v)", digest, down.id, storeDir, err)
	}
}

// TestProcessMinorityNoWrites freezes two of three coordinators with
// SIGSTOP: the one left, leader or follower before, refuses a submission
// with 503 no_leader rather than acknowledging it. Once one frozen server
// resumes, the majority accepts writes again.
func TestProcessMinorityNoWrites(t *testing.T) {
	for _, tt := range []struct {
		name       string
		keepLeader bool
	}{
		{"leader-alone", true},
		{"follower-alone", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			procs := startCluster(t)
			leader := waitLeader(t, procs, 3)
			registerShapes(t, retryingClient(procs...))
			alone := leader
			if !tt.keepLeader {
				alone = others(procs, leader)[0]
			}
			frozen := others(procs, alone)
			for _, p := range frozen {
				p.signal(syscall.SIGSTOP)
			}
			t.Cleanup(func() {
				for _, p := range frozen {
					p.kill() // SIGKILL ends a stopped process too
				}
			})

			procWait(t, 30*time.Second, alone.id+" to know it has no leader", func() error {
				st, err := alone.status()
				if err != nil {
					return err
				}
				if st.LeaderID != "" {
					return fmt.Errorf("%s (%s) still sees leader %s", alone.id, st.State, st.LeaderID)
				}
				return nil
			})
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			j, err := alone.client(2*time.Second).SubmitJob(ctx, "minority", processSpec("minority"))
			var apiErr *api.APIError
			if err == nil {
				t.Fatalf("the minority %s acknowledged job %s", alone.id, j.ID)
			}
			if !errors.Is(err, api.ErrNoLeader) || !errors.As(err, &apiErr) || apiErr.Status != http.StatusServiceUnavailable {
				t.Fatalf("write on the minority %s: %v, want 503 no_leader", alone.id, err)
			}
			t.Logf("minority %s refused: %v", alone.id, err)
			if jobs, _, err := alone.jobsJSON(); err != nil || len(jobs) != 0 {
				t.Fatalf("jobs on the minority %s: %d, %v; want none", alone.id, len(jobs), err)
			}

			// One frozen server resumes: a majority again, and writes go
			// through the one that was alone.
			frozen[0].signal(syscall.SIGCONT)
			majority := []*coordProc{alone, frozen[0]}
			if _, err := retryingClient(alone).SubmitJob(ctx, "majority", processSpec("majority")); err != nil {
				t.Fatalf("write once %s and %s form a majority: %v", alone.id, frozen[0].id, err)
			}
			// The refused submission never reached a log: the only job is
			// the majority's.
			if jobs := waitSameState(t, majority, 1); jobs[0].RequestID != "majority" {
				t.Fatalf("jobs after the minority's refusal: %+v", jobs[0])
			}
		})
	}
}
