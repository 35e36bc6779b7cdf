package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"
)

// TestBlockingQueryParams: a blocking query sends index and wait (after a
// path's own query), skips a dead address, and returns the index header.
func TestBlockingQueryParams(t *testing.T) {
	var (
		mu   sync.Mutex
		seen []url.Values
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.URL.Query())
		mu.Unlock()
		w.Header().Set(IndexHeader, "42")
		json.NewEncoder(w).Encode([]*Checkpoint{{Digest: "d"}})
	}))
	defer srv.Close()
	cfg := DefaultConfig(deadAddr(t), srv.URL)
	cfg.RetryWait = time.Millisecond
	c := NewWithConfig(cfg)

	tests := []struct {
		name    string
		q       *QueryOptions
		want    url.Values
		wantIdx uint64
	}{
		{"nil options", nil, url.Values{"job": {"j1"}}, 42},
		{"index 0 answers at once", &QueryOptions{WaitTime: time.Minute}, url.Values{"job": {"j1"}}, 42},
		{"blocking", &QueryOptions{WaitIndex: 7, WaitTime: 90 * time.Second}, url.Values{"job": {"j1"}, "index": {"7"}, "wait": {"1m30s"}}, 42},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mu.Lock()
			seen = nil
			mu.Unlock()
			cs, meta, err := c.CheckpointsQuery(context.Background(), "j1", tt.q)
			if err != nil {
				t.Fatal(err)
			}
			if len(cs) != 1 || meta.LastIndex != tt.wantIdx {
				t.Fatalf("got %d checkpoints, index %d; want 1, %d", len(cs), meta.LastIndex, tt.wantIdx)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(seen) != 1 {
				t.Fatalf("the server saw %d requests, want 1", len(seen))
			}
			if got := seen[0].Encode(); got != tt.want.Encode() {
				t.Fatalf("query %q, want %q", got, tt.want.Encode())
			}
		})
	}
}

// TestBlockingQueryOutlivesClientTimeout: the HTTP client's timeout bounds
// a plain GET but not a blocking query, whose own deadline is its wait.
func TestBlockingQueryOutlivesClientTimeout(t *testing.T) {
	const hold = 300 * time.Millisecond
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(hold):
		case <-r.Context().Done():
			return
		}
		w.Header().Set(IndexHeader, "9")
		json.NewEncoder(w).Encode(Job{ID: "j"})
	}))
	defer srv.Close()
	cfg := DefaultConfig(srv.URL)
	cfg.RetryTimeout = 0
	cfg.HTTPClient = &http.Client{Timeout: hold / 10}
	c := NewWithConfig(cfg)

	if _, err := c.Job(context.Background(), "j"); err == nil {
		t.Fatal("a plain GET outlived the HTTP client's timeout")
	}
	j, meta, err := c.JobQuery(context.Background(), "j", &QueryOptions{WaitIndex: 3, WaitTime: time.Minute})
	if err != nil {
		t.Fatalf("blocking query: %v", err)
	}
	if j.ID != "j" || meta.LastIndex != 9 {
		t.Fatalf("got job %q index %d, want j 9", j.ID, meta.LastIndex)
	}
}

// TestQueryOptionsTimeout: a blocking query's deadline is its wait, as the
// server bounds it, plus slack; a query that does not wait has none.
func TestQueryOptionsTimeout(t *testing.T) {
	tests := []struct {
		name string
		q    *QueryOptions
		want time.Duration
	}{
		{"nil", nil, 0},
		{"no index", &QueryOptions{WaitTime: time.Minute}, 0},
		{"default wait", &QueryOptions{WaitIndex: 1}, DefaultBlockingWait + DefaultBlockingWait/16 + blockingSlack},
		{"one minute", &QueryOptions{WaitIndex: 1, WaitTime: time.Minute}, time.Minute + time.Minute/16 + blockingSlack},
		{"over the bound", &QueryOptions{WaitIndex: 1, WaitTime: time.Hour}, MaxBlockingWait + MaxBlockingWait/16 + blockingSlack},
	}
	for _, tt := range tests {
		if got := tt.q.RequestTimeout(); got != tt.want {
			t.Errorf("%s: timeout %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestWatch walks a Watch through the answers a loop meets and checks
// what it makes of each: follow a moving index at once, re-issue a full
// wait at once, back off (doubling, bounded) after errors, early answers
// without a change and answers without an index, and take a lower index.
func TestWatch(t *testing.T) {
	errDown := errors.New("down")
	const (
		long  = time.Hour       // a wait no answer here reaches: every answer is early
		short = time.Nanosecond // a wait every answer reaches
	)
	steps := []struct {
		name        string
		wait        time.Duration
		meta        QueryMeta
		err         error
		wantSent    uint64 // the WaitIndex the query was sent with
		wantChanged bool
		wantPause   time.Duration
		wantIndex   uint64
	}{
		{"first answer", long, QueryMeta{LastIndex: 5}, nil, 0, true, 0, 5},
		{"a change", long, QueryMeta{LastIndex: 8}, nil, 5, true, 0, 8},
		{"an error", long, QueryMeta{}, errDown, 8, false, 10 * time.Millisecond, 8},
		{"another error doubles", long, QueryMeta{}, errDown, 8, false, 20 * time.Millisecond, 8},
		{"early, no change", long, QueryMeta{LastIndex: 8}, nil, 8, false, 40 * time.Millisecond, 8},
		{"bounded", long, QueryMeta{LastIndex: 8}, nil, 8, false, 50 * time.Millisecond, 8},
		{"a full wait resets the backoff", short, QueryMeta{LastIndex: 8}, nil, 8, false, 0, 8},
		{"error after the reset", long, QueryMeta{}, errDown, 8, false, 10 * time.Millisecond, 8},
		{"a lower index is taken", long, QueryMeta{LastIndex: 6}, nil, 8, true, 0, 6},
		{"no index: polling", long, QueryMeta{}, nil, 6, true, 10 * time.Millisecond, 0},
		{"back to blocking", long, QueryMeta{LastIndex: 9}, nil, 0, true, 0, 9},
	}
	w := &Watch{MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}
	for _, s := range steps {
		w.Wait = s.wait
		q := w.Options()
		if q.WaitIndex != s.wantSent || q.WaitTime != s.wait {
			t.Fatalf("%s: sent %+v, want index %d wait %v", s.name, *q, s.wantSent, s.wait)
		}
		changed, pause := w.Done(s.meta, s.err)
		if changed != s.wantChanged || pause != s.wantPause || w.Index() != s.wantIndex {
			t.Fatalf("%s: changed %v pause %v index %d, want %v %v %d", s.name, changed, pause, w.Index(),
				s.wantChanged, s.wantPause, s.wantIndex)
		}
	}
	w.Reset()
	if q := w.Options(); q.WaitIndex != 0 {
		t.Fatalf("after Reset the query waits past %d, want 0", q.WaitIndex)
	}
	w.SetIndex(41)
	if q := w.Options(); q.WaitIndex != 41 || w.Index() != 41 {
		t.Fatalf("after SetIndex(41) the query waits past %d, want 41", q.WaitIndex)
	}
}

func TestWatchPause(t *testing.T) {
	var w Watch
	ctx, cancel := context.WithCancel(context.Background())
	if err := w.Pause(ctx, 0); err != nil {
		t.Fatalf("Pause(0): %v", err)
	}
	if err := w.Pause(ctx, time.Millisecond); err != nil {
		t.Fatalf("Pause(1ms): %v", err)
	}
	cancel()
	if err := w.Pause(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("Pause after cancel: %v, want context.Canceled", err)
	}
}

// TestErrorAnswerKeepsIndex: a 404 of a blocking GET returns its index
// with the error, so a caller can wait for the thing to appear.
func TestErrorAnswerKeepsIndex(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(IndexHeader, "12")
		apiError(w, http.StatusNotFound, CodeNotFound)
	}))
	defer srv.Close()
	_, meta, err := New(srv.URL).ModelsQuery(context.Background(), "pets", &QueryOptions{WaitIndex: 3})
	if !errors.Is(err, ErrNotFound) || meta.LastIndex != 12 {
		t.Fatalf("got index %d, %v; want 12 and ErrNotFound", meta.LastIndex, err)
	}
}
