package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/trainctl/trainctl/api"
	"github.com/trainctl/trainctl/coordinator"
)

// startTestCluster starts n coordinators in-process on loopback ports, the
// first bootstrapping and the others joining it, waits until every one
// knows the leader, registers shapes@v1, and returns the leader and the
// followers.
func startTestCluster(t *testing.T, n int) (leader *coordinator.Server, followers []*coordinator.Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var srvs []*coordinator.Server
	for i := range n {
		cfg := coordinator.DefaultConfig()
		cfg.NodeID = fmt.Sprintf("c%d", i+1)
		cfg.DataDir = t.TempDir()
		cfg.RaftAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0"
		cfg.HeartbeatTimeout, cfg.ElectionTimeout = 300*time.Millisecond, 300*time.Millisecond
		cfg.LeaderLeaseTimeout = 150 * time.Millisecond
		// A follower learns that an entry committed with the leader's
		// next AppendEntries, at the latest after CommitTimeout: a long
		// one makes the window of a follower that has not applied a write
		// it forwarded wide enough to be hit every time.
		cfg.CommitTimeout = 250 * time.Millisecond
		cfg.RetryInterval = 50 * time.Millisecond
		cfg.Logger = slog.New(slog.DiscardHandler)
		if i == 0 {
			cfg.Bootstrap = true
		} else {
			cfg.Join = []string{srvs[0].HTTPAddr()}
		}
		srv, err := coordinator.New(ctx, cfg)
		if err != nil {
			t.Fatalf("start coordinator %s: %v", cfg.NodeID, err)
		}
		t.Cleanup(func() { srv.Shutdown() })
		srvs = append(srvs, srv)
		if i == 0 {
			waitUntil(t, 15*time.Second, "c1 to lead", func() error {
				if !srv.IsLeader() {
					return errors.New("not leader")
				}
				return nil
			})
		}
	}
	waitUntil(t, 15*time.Second, "every coordinator to know all voters and the leader", func() error {
		for _, s := range srvs {
			st, err := s.Status()
			if err != nil {
				return err
			}
			if len(st.Voters) != n || st.LeaderHTTPAddr == "" {
				return fmt.Errorf("%d voters, leader at %q", len(st.Voters), st.LeaderHTTPAddr)
			}
		}
		return nil
	})
	for _, s := range srvs {
		if s.IsLeader() {
			leader = s
		} else {
			followers = append(followers, s)
		}
	}
	if leader == nil {
		t.Fatal("no leader")
	}
	man := genShapes(t, t.TempDir(), "shapes", 4, 16)
	raw, err := json.Marshal(man)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := api.New(leader.HTTPAddr()).RegisterDataset(ctx, api.RegisterDatasetBody{Name: "shapes", ID: man.ID, Manifest: raw}); err != nil {
		t.Fatalf("register dataset: %v", err)
	}
	return leader, followers
}

// TestWaitThroughFollower: `submit --wait` and `sweep --wait` against a
// follower, which forwards the write to the leader and may answer the
// first read before it applied it, follow the object rather than failing
// with "not found". Several rounds, as one may win the race by luck.
func TestWaitThroughFollower(t *testing.T) {
	leader, followers := startTestCluster(t, 3)
	t.Setenv("TRAINCTL_COORDINATOR", followers[0].HTTPAddr())
	lc := api.New(leader.HTTPAddr())
	jobSpec := writeSpec(t, "job.yaml", validSpec)
	sweepSpec := writeSpec(t, "sweep.yaml", testSweepSpec)
	for i := range 3 {
		for _, tc := range []struct {
			kind   string
			args   []string
			cancel func(context.Context, string) error
		}{
			{"job", []string{"submit", "-f", jobSpec, "--wait", "--poll-interval", "20ms"}, func(ctx context.Context, id string) error {
				_, err := lc.CancelJob(ctx, id)
				return err
			}},
			{"sweep", []string{"sweep", "-f", sweepSpec, "--wait", "--poll-interval", "20ms"}, func(ctx context.Context, id string) error {
				_, err := lc.CancelSweep(ctx, id)
				return err
			}},
		} {
			out, done := runAsync(t, context.Background(), tc.args...)
			id := waitOutput(t, out, done, regexp.MustCompile(`(?m)^([0-9a-f]{16})$`), fmt.Sprintf("round %d: the %s's id", i, tc.kind))[1]
			// The wait ends when it sees the object cancelled: it must
			// have read it from the follower.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if err := tc.cancel(ctx, id); err != nil {
				t.Fatalf("round %d: cancel %s %s: %v", i, tc.kind, id, err)
			}
			cancel()
			want := tc.kind + " " + id + " was cancelled"
			if err := waitDone(t, done, tc.kind+" --wait"); err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("round %d: %s --wait of a cancelled %s through a follower: %v, want %q\n%s", i, tc.kind, tc.kind, err, want, out.String())
			}
		}
	}
}

// TestFollowNotFound: a "not found" from a coordinator whose index is
// below the object's CreateIndex is a lagging coordinator, asked again; one
// from a coordinator that has applied the create is final.
func TestFollowNotFound(t *testing.T) {
	notFound := &api.APIError{Status: 404, Code: api.CodeNotFound, Message: "no such job"}
	job := &api.Job{ID: "0123456789abcdef", State: api.JobPending, CreateIndex: 10}
	done := &api.Job{ID: job.ID, State: api.JobSucceeded, CreateIndex: 10, ModifyIndex: 12}
	for _, tc := range []struct {
		name     string
		notFound uint64 // the index of the first answer, a 404
		wantErr  bool
	}{
		{"lagging coordinator", 9, false},
		{"coordinator that applied the create", 10, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var asked []uint64
			fetch := func(_ context.Context, q *api.QueryOptions) (*api.Job, api.QueryMeta, error) {
				asked = append(asked, q.WaitIndex)
				if len(asked) == 1 {
					return nil, api.QueryMeta{LastIndex: tc.notFound}, notFound
				}
				return done, api.QueryMeta{LastIndex: 12}, nil
			}
			var out strings.Builder
			got, err := follow(context.Background(), &out, time.Millisecond, job, job.CreateIndex, fetch, jobChanges,
				func(j *api.Job) bool { return j.State.Terminal() }, func() string { return "" })
			if asked[0] != 9 {
				t.Errorf("the first fetch waits past %d, want 9 (CreateIndex-1)", asked[0])
			}
			switch {
			case tc.wantErr && !errors.Is(err, api.ErrNotFound):
				t.Fatalf("follow: %v, want not found", err)
			case !tc.wantErr && (err != nil || got.State != api.JobSucceeded):
				t.Fatalf("follow: %+v, %v; want the job succeeded", got, err)
			}
		})
	}
}
