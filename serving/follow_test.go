package serving

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trainctl/trainctl/api"
	"github.com/trainctl/trainctl/artifact"
	"github.com/trainctl/trainctl/coordinator"
	"github.com/trainctl/trainctl/jobspec"
	"github.com/trainctl/trainctl/trainer"
)

// startCoordinator starts a single-voter coordinator on loopback ports and
// waits until it leads.
func startCoordinator(t *testing.T) *coordinator.Server {
	t.Helper()
	cfg := coordinator.DefaultConfig()
	cfg.NodeID = "c1"
	cfg.DataDir = t.TempDir()
	cfg.RaftAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Bootstrap = true
	cfg.HeartbeatTimeout, cfg.ElectionTimeout = 300*time.Millisecond, 300*time.Millisecond
	cfg.LeaderLeaseTimeout, cfg.CommitTimeout = 150*time.Millisecond, 5*time.Millisecond
	cfg.RetryInterval = 50 * time.Millisecond
	cfg.Logger = quietLogger()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	srv, err := coordinator.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown() })
	waitFor(t, "the coordinator to lead", func() bool {
		_, err := srv.State().Server("c1")
		return srv.IsLeader() && err == nil
	})
	return srv
}

// uploadCheckpoint writes c, uploads it as a checkpoint of job at step and
// returns its digest.
func uploadCheckpoint(t *testing.T, ac *api.Client, peer, jobID string, c *trainer.Checkpoint, step int64) string {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "c.ckpt")
	if err := trainer.WriteCheckpoint(path, c); err != nil {
		t.Fatal(err)
	}
	digest, size, err := artifact.FileDigest(path)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := artifact.NewClient(artifact.ClientConfig{}).Push(ctx, peer, digest, bytes.NewReader(data), size); err != nil {
		t.Fatal(err)
	}
	if _, err := ac.RegisterCheckpoint(ctx, api.RegisterCheckpointBody{Digest: digest, JobID: jobID, Attempt: 1, Step: step}); err != nil {
		t.Fatal(err)
	}
	return digest
}

// TestFollowModelHotSwaps follows a registered model on a real coordinator
// while clients keep predicting: registering a new version swaps it in,
// every request succeeds, and responses name the version that answered.
// Follow's blocking queries wait an hour, so each swap comes from a
// registration waking one, not from a poll.
func TestFollowModelHotSwaps(t *testing.T) {
	coord := startCoordinator(t)
	peer := "http://" + coord.HTTPAddr()
	ac := api.New(coord.HTTPAddr())
	ctx := context.Background()
	if _, err := ac.RegisterDataset(ctx, api.RegisterDatasetBody{Name: "d", ID: strings.Repeat("a", 64), Manifest: []byte(`{"name":"d","id":"` + strings.Repeat("a", 64) + `"}`)}); err != nil {
		t.Fatal(err)
	}
	spec := jobspec.Defaults()
	spec.Name, spec.Dataset = "j", "d@v1"
	job, err := ac.SubmitJob(ctx, "", spec)
	if err != nil {
		t.Fatal(err)
	}

	s := startServer(t, Config{Name: "pets"}, nil, nil)
	followCtx, stopFollow := context.WithCancel(context.Background())
	followDone := make(chan error, 1)
	go func() {
		followDone <- Follow(followCtx, s.Server, FollowConfig{
			API: ac, Peers: []string{peer}, Target: Target{Model: "pets"}, Dir: t.TempDir(),
			Interval: 50 * time.Millisecond, Wait: time.Hour, Threads: 1, MaxBatch: 4, Logger: quietLogger(),
		})
	}()
	defer func() {
		stopFollow()
		if err := recv(t, followDone, "Follow to return"); !errors.Is(err, context.Canceled) {
			t.Errorf("Follow returned %v, want context.Canceled", err)
		}
	}()

	// Nothing registered yet: not ready, and Follow keeps waiting.
	time.Sleep(200 * time.Millisecond)
	if r := do(t, http.DefaultClient, http.MethodGet, s.ts.URL+"/readyz", "", "", nil); r.status != http.StatusServiceUnavailable {
		t.Fatalf("readyz before any model version: %d, want 503", r.status)
	}

	d1 := uploadCheckpoint(t, ac, peer, job.ID, tinyCheckpoint(t, 16, 1), 10)
	if _, _, err := ac.RegisterModel(ctx, api.RegisterModelBody{Name: "pets", Checkpoint: d1}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "version 1 to be served", func() bool {
		m := s.Model()
		return m != nil && strings.HasPrefix(m.Version(), "pets@v1-")
	})

	// Clients predict while version 2 lands.
	var (
		wg       sync.WaitGroup
		stop     atomic.Bool
		failed   atomic.Int64
		mu       sync.Mutex
		versions = map[string]int{}
	)
	img := pngBytes(t, 20, 20)
	for range 3 {
		wg.Go(func() {
			for !stop.Load() {
				r := do(t, http.DefaultClient, http.MethodPost, s.predictURL(), "image/png", "image/png", img)
				if r.status != http.StatusOK {
					failed.Add(1)
					continue
				}
				mu.Lock()
				versions[r.header.Get("X-Model-Version")]++
				mu.Unlock()
			}
		})
	}
	answered := func(prefix string) func() bool {
		return func() bool {
			mu.Lock()
			defer mu.Unlock()
			for v, n := range versions {
				if strings.HasPrefix(v, prefix) && n > 0 {
					return true
				}
			}
			return false
		}
	}
	waitFor(t, "an answer from version 1 before version 2 lands", answered("pets@v1-"))
	d2 := uploadCheckpoint(t, ac, peer, job.ID, tinyCheckpoint(t, 16, 2), 20)
	if _, _, err := ac.RegisterModel(ctx, api.RegisterModelBody{Name: "pets", Checkpoint: d2}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "version 2 to be served", func() bool {
		return strings.HasPrefix(s.Model().Version(), "pets@v2-")
	})
	// Only a request that reached the server after the swap can be
	// answered by version 2.
	waitFor(t, "an answer from version 2", answered("pets@v2-"))
	stop.Store(true)
	wg.Wait()
	if n := failed.Load(); n != 0 {
		t.Errorf("%d requests failed during the swap", n)
	}
	var v1, v2 int
	for v, n := range versions {
		switch {
		case strings.HasPrefix(v, "pets@v1-"):
			v1 += n
		case strings.HasPrefix(v, "pets@v2-"):
			v2 += n
		default:
			t.Errorf("%d responses from unexpected version %q", n, v)
		}
	}
	if v1 == 0 || v2 == 0 {
		t.Errorf("responses by version %v: want both v1 and v2", versions)
	}
}

func TestResolveErrors(t *testing.T) {
	coord := startCoordinator(t)
	ac := api.New(coord.HTTPAddr())
	ctx := context.Background()
	for _, tc := range []struct {
		target Target
		want   error
	}{
		{Target{Model: "nope"}, api.ErrNotFound},
		{Target{SweepID: "nope"}, api.ErrNotFound},
		{Target{JobID: "nope"}, api.ErrNotFound},
	} {
		if _, err := Resolve(ctx, ac, tc.target); !errors.Is(err, tc.want) {
			t.Errorf("Resolve(%s): %v, want %v", tc.target, err, tc.want)
		}
	}
	for _, tc := range []Target{{}, {Model: "a", JobID: "b"}} {
		if err := tc.Validate(); err == nil {
			t.Errorf("Target%+v.Validate() = nil, want an error", tc)
		}
	}
}

// TestFollowUnreachableLogged: with no coordinator listening, Follow says
// so within AskTimeout (not after the client's 30 s of retries), keeps
// the server unready and returns only when its context ends.
func TestFollowUnreachableLogged(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	var logs syncBuffer
	s := startServer(t, Config{Name: "pets"}, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Follow(ctx, s.Server, FollowConfig{
			API: api.New(dead), Peers: []string{"http://" + dead}, Target: Target{Model: "pets"}, Dir: t.TempDir(),
			Interval: 50 * time.Millisecond, AskTimeout: 300 * time.Millisecond, Threads: 1, MaxBatch: 1,
			Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		})
	}()
	waitFor(t, "a warning that the coordinator is unreachable", func() bool {
		return strings.Contains(logs.String(), `msg="follow: retrying"`) && strings.Contains(logs.String(), "connection refused")
	})
	if r := do(t, http.DefaultClient, http.MethodGet, s.ts.URL+"/readyz", "", "", nil); r.status != http.StatusServiceUnavailable {
		t.Errorf("readyz with no coordinator: %d, want 503", r.status)
	}
	cancel()
	if err := recv(t, done, "Follow to return"); !errors.Is(err, context.Canceled) {
		t.Errorf("Follow returned %v, want context.Canceled", err)
	}
}

// syncBuffer is a bytes.Buffer safe for a logger and a reader at once.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
