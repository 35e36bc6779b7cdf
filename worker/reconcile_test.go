package worker

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/trainctl/trainctl/api"
)

// reconcileUnlisted runs reconcile with one run, listed at index listed,
// that the answer (listing nothing) no longer assigns, against the
// coordinators at addr, and returns whether it stopped the run and
// whether it asked for a recheck.
func reconcileUnlisted(t *testing.T, addr, jobID string, listed uint64) (dropped, recheck bool) {
	t.Helper()
	a, err := NewAgent(AgentConfig{ID: "w1", Coordinators: []string{addr}, WorkDir: t.TempDir(), Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	k := runKey{job: jobID, attempt: 1, rank: 0}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := &activeRun{cancel: cancel, done: make(chan struct{}), listed: listed}
	runs := map[runKey]*activeRun{k: r}
	seen := map[runKey]bool{k: true}
	var wg sync.WaitGroup
	recheck = a.reconcile(ctx, nil, listed+1, runs, seen, &wg)
	return r.dropped.Load(), recheck
}

// TestReconcileNotFound: a run no longer listed whose job a coordinator
// does not know is stopped only when that coordinator has reached the
// listing that placed the run (the job was collected); a lagging one (a
// restarted follower the client failed over to) is asked again later.
func TestReconcileNotFound(t *testing.T) {
	const jobID = "0123456789abcdef"
	for _, tc := range []struct {
		name        string
		index       string // the 404's index header; "" for none
		listed      uint64
		wantDropped bool
	}{
		{"no index", "", 20, false},
		{"lagging coordinator", "15", 20, false},
		{"coordinator at the listing", "20", 20, true},
		{"coordinator past the listing", "35", 20, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/v1/jobs/"+jobID {
					http.Error(w, "unexpected "+r.URL.Path, http.StatusTeapot)
					return
				}
				if tc.index != "" {
					w.Header().Set(api.IndexHeader, tc.index)
				}
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusNotFound)
				fmt.Fprintf(w, `{"error":"job %s not found","code":%q}`, jobID, api.CodeNotFound)
			}))
			defer ts.Close()
			dropped, recheck := reconcileUnlisted(t, ts.URL, jobID, tc.listed)
			if dropped != tc.wantDropped || recheck == tc.wantDropped {
				t.Fatalf("dropped %v, recheck %v; want dropped %v", dropped, recheck, tc.wantDropped)
			}
		})
	}

	t.Run("real coordinator", func(t *testing.T) {
		srv := startCoordinator(t)
		idx := srv.State().Index()
		if dropped, _ := reconcileUnlisted(t, srv.HTTPAddr(), jobID, idx+100); dropped {
			t.Fatalf("a run listed at %d stopped on the 404 of a coordinator at %d", idx+100, idx)
		}
		if dropped, _ := reconcileUnlisted(t, srv.HTTPAddr(), jobID, 1); !dropped {
			t.Fatal("a run listed at index 1 kept running on the 404 of an up-to-date coordinator")
		}
	})
}
