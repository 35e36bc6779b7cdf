package serving

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trainctl/trainctl/api"
	"github.com/trainctl/trainctl/artifact"
	"github.com/trainctl/trainctl/trainer"
)

// fakeCoordinator answers the few coordinator API calls Resolve and Follow
// make, from state a test changes as it goes, and serves blobs.
type fakeCoordinator struct {
	t  *testing.T
	ts *httptest.Server

	mu          sync.Mutex
	job         api.Job
	metrics     []api.Metric
	checkpoints []*api.Checkpoint
	failMetrics bool // answer the metrics call 500
	failCkpts   bool // answer the checkpoints call 500
	model       []*api.ModelVersion
	blobs       map[string][]byte // digest -> bytes
	blobGets    map[string]int    // digest -> GETs answered
	modelGets   int               // GET /v1/models/NAME answered
	index       uint64            // the api.IndexHeader of every answer when not 0
	waits       []string          // the "wait" of each blocking query, in order
	jobQueries  int               // blocking GET /v1/jobs/ID answered
}

func newFakeCoordinator(t *testing.T) *fakeCoordinator {
	f := &fakeCoordinator{t: t, blobs: map[string][]byte{}, blobGets: map[string]int{}}
	f.ts = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.ts.Close)
	return f
}

func (f *fakeCoordinator) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	apiError := func(status int, code string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(api.ErrorBody{Error: "fake coordinator: " + code, Code: code})
	}
	reply := func(v any) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(v)
	}
	if f.index > 0 {
		w.Header().Set(api.IndexHeader, strconv.FormatUint(f.index, 10))
	}
	if v := r.URL.Query().Get("wait"); v != "" && r.URL.Query().Get("index") != "" {
		f.waits = append(f.waits, v)
	}
	p := r.URL.Path
	switch {
	case p == "/v1/jobs/"+f.job.ID && f.job.ID != "":
		if r.URL.Query().Get("index") != "" {
			f.jobQueries++
		}
		reply(f.job)
	case p == "/v1/jobs/"+f.job.ID+"/metrics" && f.job.ID != "":
		if f.failMetrics {
			apiError(http.StatusInternalServerError, api.CodeInternal)
			return
		}
		reply(f.metrics)
	case p == "/v1/checkpoints" && r.URL.Query().Get("job") == f.job.ID:
		if f.failCkpts {
			apiError(http.StatusInternalServerError, api.CodeInternal)
			return
		}
		reply(f.checkpoints)
	case p == "/v1/models/pets":
		f.modelGets++
		if len(f.model) == 0 {
			apiError(http.StatusNotFound, api.CodeNotFound)
			return
		}
		reply(f.model)
	case strings.HasPrefix(p, artifact.BlobsPath):
		d := strings.TrimPrefix(p, artifact.BlobsPath)
		b, ok := f.blobs[d]
		if !ok {
			apiError(http.StatusNotFound, api.CodeNotFound)
			return
		}
		f.blobGets[d]++
		w.Write(b)
	default:
		apiError(http.StatusNotFound, api.CodeNotFound)
	}
}

// addBlob stores b and returns its digest.
func (f *fakeCoordinator) addBlob(b []byte) string {
	sum := sha256.Sum256(b)
	d := artifact.DigestPrefix + hex.EncodeToString(sum[:])
	f.mu.Lock()
	f.blobs[d] = b
	f.mu.Unlock()
	return d
}

// setModel makes the model "pets" have one more version, of digest d.
func (f *fakeCoordinator) setModel(d string) {
	f.mu.Lock()
	f.model = append(f.model, &api.ModelVersion{Name: "pets", Version: len(f.model) + 1, Checkpoint: d})
	f.mu.Unlock()
}

func (f *fakeCoordinator) counts(d string) (blobGets, modelGets int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.blobGets[d], f.modelGets
}

// client is a coordinator client of f that does not retry.
func (f *fakeCoordinator) client() *api.Client {
	cfg := api.DefaultConfig(f.ts.URL)
	cfg.RetryTimeout = 0
	return api.NewWithConfig(cfg)
}

// checkpointBytes is tinyCheckpoint encoded as a checkpoint file.
func checkpointBytes(t *testing.T, seed uint64) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "c.ckpt")
	if err := trainer.WriteCheckpoint(path, tinyCheckpoint(t, 16, seed)); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestResolveJob: a job resolves to the checkpoint of its best epoch, to
// its latest checkpoint while no epoch reported val_mean_iou, and to an
// error naming the job, never a fallback, when its metrics or checkpoints
// cannot be read.
func TestResolveJob(t *testing.T) {
	f := newFakeCoordinator(t)
	best, later, latest := "sha256:"+strings.Repeat("a", 64), "sha256:"+strings.Repeat("b", 64), "sha256:"+strings.Repeat("c", 64)
	f.job = api.Job{ID: "job-123456789", LatestCheckpoint: latest}
	f.checkpoints = []*api.Checkpoint{
		{Digest: best, JobID: f.job.ID, Attempt: 1, Step: 10},
		{Digest: later, JobID: f.job.ID, Attempt: 1, Step: 20},
	}
	withIoU := []api.Metric{
		{JobID: f.job.ID, Attempt: 1, Step: 10, Values: map[string]float64{"val_mean_iou": 0.8}},
		{JobID: f.job.ID, Attempt: 1, Step: 20, Values: map[string]float64{"val_mean_iou": 0.6}},
	}
	noIoU := []api.Metric{{JobID: f.job.ID, Attempt: 1, Step: 10, Values: map[string]float64{"train_loss": 0.5}}}
	tests := []struct {
		name                   string
		metrics                []api.Metric
		failMetrics, failCkpts bool
		want                   string // digest; "" for an error
		wantErr                string // in the error
	}{
		{name: "best epoch", metrics: withIoU, want: best},
		{name: "no epoch reported the metric", metrics: noIoU, want: latest},
		{name: "metrics call fails", metrics: withIoU, failMetrics: true, wantErr: "job job-123456789: read its metrics"},
		{name: "checkpoints call fails", metrics: withIoU, failCkpts: true, wantErr: "job job-123456789: list its checkpoints"},
	}
	ac := f.client()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.mu.Lock()
			f.metrics, f.failMetrics, f.failCkpts = tt.metrics, tt.failMetrics, tt.failCkpts
			f.mu.Unlock()
			got, err := Resolve(context.Background(), ac, Target{JobID: f.job.ID})
			if tt.wantErr != "" {
				var apiErr *api.APIError
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.As(err, &apiErr) || apiErr.Status != http.StatusInternalServerError {
					t.Fatalf("Resolve = %+v, %v; want an error naming %q that wraps the 500", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got.Digest != tt.want {
				t.Fatalf("Resolve = %+v, %v; want digest %s", got, err, tt.want)
			}
			if wantVersion := "job-1234-" + strings.TrimPrefix(tt.want, "sha256:")[:12]; got.Version != wantVersion {
				t.Errorf("version %q, want %q", got.Version, wantVersion)
			}
		})
	}
}

// TestFollowUnservableAndPrune: a checkpoint that downloads but does not
// load is logged once at Error and not tried again while the target stays
// on it; the old model keeps serving. A successful swap deletes the file
// of the checkpoint it replaced, and only files Follow downloaded.
func TestFollowUnservableAndPrune(t *testing.T) {
	f := newFakeCoordinator(t)
	good1, good2 := f.addBlob(checkpointBytes(t, 1)), f.addBlob(checkpointBytes(t, 2))
	bad := f.addBlob([]byte("not a checkpoint at all, but its digest is right"))
	file := func(d string) string { return strings.TrimPrefix(d, artifact.DigestPrefix) + ".ckpt" }
	dir := t.TempDir()
	foreign := filepath.Join(dir, "mine.ckpt")
	if err := os.WriteFile(foreign, []byte("not Follow's"), 0o644); err != nil {
		t.Fatal(err)
	}
	exists := func(name string) bool {
		_, err := os.Stat(filepath.Join(dir, name))
		return err == nil
	}

	var logs syncBuffer
	s := startServer(t, Config{Name: "pets"}, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Follow(ctx, s.Server, FollowConfig{
			API: f.client(), Peers: []string{f.ts.URL}, Target: Target{Model: "pets"}, Dir: dir,
			Interval: 20 * time.Millisecond, Threads: 1, MaxBatch: 1,
			Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		})
	}()
	defer func() {
		cancel()
		if err := recv(t, done, "Follow to return"); !errors.Is(err, context.Canceled) {
			t.Errorf("Follow returned %v, want context.Canceled", err)
		}
	}()

	f.setModel(good1)
	waitFor(t, "version 1 to be served", func() bool { m := s.Model(); return m != nil && strings.HasPrefix(m.Version(), "pets@v1-") })
	v1 := s.Model()
	if !exists(file(good1)) {
		t.Fatalf("the served checkpoint's file %s is not in Dir", file(good1))
	}

	f.setModel(bad)
	waitFor(t, "the unservable checkpoint to be logged", func() bool {
		return strings.Contains(logs.String(), "level=ERROR") && strings.Contains(logs.String(), "checkpoint cannot be served")
	})
	// Let Follow resolve the target to it a few more times.
	_, asked := f.counts(bad)
	waitFor(t, "three more resolutions", func() bool { _, n := f.counts(bad); return n >= asked+3 })
	if gets, _ := f.counts(bad); gets != 1 {
		t.Errorf("the unservable checkpoint was downloaded %d times, want 1 (not retried)", gets)
	}
	if n := strings.Count(logs.String(), "checkpoint cannot be served"); n != 1 {
		t.Errorf("the unservable checkpoint was logged %d times, want once:\n%s", n, logs.String())
	}
	if strings.Contains(logs.String(), "follow: retrying") {
		t.Errorf("the unservable checkpoint was logged as retried:\n%s", logs.String())
	}
	if s.Model() != v1 {
		t.Errorf("serving %s, want version 1 kept", s.Model().Version())
	}
	// Follow deletes the file after logging the failure.
	waitFor(t, "the unservable checkpoint's file to be deleted", func() bool { return !exists(file(bad)) })

	f.setModel(good2)
	waitFor(t, "version 3 to be served", func() bool { return strings.HasPrefix(s.Model().Version(), "pets@v3-") })
	// Follow deletes the old file just after the swap.
	waitFor(t, "the file of the checkpoint swapped out to be deleted", func() bool { return !exists(file(good1)) })
	if !exists(file(good2)) || !exists("mine.ckpt") {
		t.Errorf("Dir lost the served checkpoint (%v) or a file Follow did not download (%v)", exists(file(good2)), exists("mine.ckpt"))
	}
	waitFor(t, "version 1 to release its engine", v1.released)
}

// TestFollowReturns: Follow fails at once for a config it cannot run.
func TestFollowReturns(t *testing.T) {
	s := startServer(t, Config{}, nil, nil)
	notDir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notDir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	ac := api.New("127.0.0.1:1")
	for name, cfg := range map[string]FollowConfig{
		"no API":        {Target: Target{Model: "m"}, Dir: t.TempDir()},
		"no target":     {API: ac, Dir: t.TempDir()},
		"Dir not a dir": {API: ac, Target: Target{Model: "m"}, Dir: filepath.Join(notDir, "sub")},
		"two targets":   {API: ac, Target: Target{Model: "m", JobID: "j"}, Dir: t.TempDir()},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		err := Follow(ctx, s.Server, cfg)
		cancel()
		if err == nil || errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s: Follow returned %v, want an error at once", name, err)
		}
	}
}
