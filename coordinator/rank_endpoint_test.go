package coordinator

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/trainctl/trainctl/api"
)

// TestRendezvous places a 2-rank job on two workers and walks it through
// the rendezvous: addresses registered by the ranks' own workers only, a
// blocking query that wakes when the last rank registers, the secret, the
// ranks' status in the job, and the rules of their reports.
func TestRendezvous(t *testing.T) {
	c := newCluster(t, 1, nil)
	w1, w2 := c.addWorker("w1", 1), c.addWorker("w2", 1)
	spec := testSpec("dp")
	spec.Resources.Ranks = 2
	j := submit(t, w1.cl, spec)
	w1.assignment(j.ID, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl := c.client()

	job, err := cl.Job(ctx, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	nodes := job.CurrentAttempt().Nodes
	worker := map[string]*fakeWorker{"w1": w1, "w2": w2}
	rank0, rank1 := worker[nodes[0]], worker[nodes[1]]

	// Another worker may not register a rank it does not run.
	if _, err := cl.RegisterRank(ctx, j.ID, 1, 0, api.RegisterRankBody{WorkerID: rank1.id, Addr: "127.0.0.1:4000"}); !errors.Is(err, api.ErrInvalid) {
		t.Fatalf("rank 0 registered by %s: %v, want invalid", rank1.id, err)
	}
	rv, err := cl.RegisterRank(ctx, j.ID, 1, 0, api.RegisterRankBody{WorkerID: rank0.id, Addr: "127.0.0.1:4000"})
	if err != nil {
		t.Fatal(err)
	}
	if rv.Ready || len(rv.Addrs) != 2 || rv.Addrs[0] != "127.0.0.1:4000" || rv.Addrs[1] != "" {
		t.Fatalf("after rank 0: %+v", rv)
	}
	if b, err := hex.DecodeString(rv.Secret); err != nil || len(b) != 32 {
		t.Fatalf("secret %q is not 32 bytes of hex", rv.Secret)
	}
	// A blocking query wakes when rank 1 registers.
	_, meta, err := cl.RendezvousQuery(ctx, j.ID, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	woke := make(chan *api.Rendezvous, 1)
	go func() {
		rv, _, err := cl.RendezvousQuery(ctx, j.ID, 1, &api.QueryOptions{WaitIndex: meta.LastIndex, WaitTime: 20 * time.Second})
		if err != nil {
			t.Error(err)
		}
		woke <- rv
	}()
	time.Sleep(100 * time.Millisecond)
	if _, err := cl.RegisterRank(ctx, j.ID, 1, 1, api.RegisterRankBody{WorkerID: rank1.id, Addr: "127.0.0.1:4001"}); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-woke:
		if got == nil || !got.Ready || got.Addrs[1] != "127.0.0.1:4001" || got.Secret != rv.Secret {
			t.Fatalf("woken rendezvous %+v", got)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the blocking rendezvous did not wake")
	}

	// Ring state and throughput show in the job; never the secret.
	if _, err := cl.ReportAttempt(ctx, j.ID, 1, api.AttemptReportBody{WorkerID: rank1.id, State: api.AttemptRunning, Rank: 1,
		Ring: api.RingConnected, Step: 7, ImagesPerSec: 3.5}); err != nil {
		t.Fatal(err)
	}
	job, _ = cl.Job(ctx, j.ID)
	rs := job.CurrentAttempt().Ranks
	if len(rs) != 2 || rs[1].Ring != api.RingConnected || rs[1].Step != 7 || rs[1].ImagesPerSec != 3.5 || rs[1].Node != rank1.id ||
		rs[0].Addr != "127.0.0.1:4000" || rs[1].Connected.IsZero() || rs[0].Registered.IsZero() {
		t.Fatalf("rank statuses %+v", rs)
	}
	raw, _ := c.nodes[0].srv.State().Job(j.ID)
	if got, _ := jsonString(convertPtr(raw, apiJob)); strings.Contains(got, rv.Secret) {
		t.Fatal("the job's API view holds the attempt's secret")
	}

	// Only rank 0 reports success; a failure blames the rank named.
	if _, err := cl.ReportAttempt(ctx, j.ID, 1, api.AttemptReportBody{WorkerID: rank1.id, State: api.AttemptSucceeded, Rank: 1}); !errors.Is(err, api.ErrInvalid) {
		t.Fatalf("success from rank 1: %v, want invalid", err)
	}
	blame := 1
	out, err := cl.ReportAttempt(ctx, j.ID, 1, api.AttemptReportBody{WorkerID: rank0.id, State: api.AttemptFailed, Rank: 0,
		FailedRank: &blame, Error: "rank 1: all-reduce: collective timed out"})
	if err != nil {
		t.Fatal(err)
	}
	if a := out.Attempts[0]; a.FailedNode != rank1.id || out.ExcludedNodes[0] != rank1.id {
		t.Fatalf("attempt 1 failed on %q, excluded %v; want %s blamed", a.FailedNode, out.ExcludedNodes, rank1.id)
	}
	// The rendezvous of an ended attempt is a conflict: waiting ranks stop.
	if _, _, err := cl.RendezvousQuery(ctx, j.ID, 1, nil); !errors.Is(err, api.ErrConflict) {
		t.Fatalf("rendezvous of the failed attempt: %v, want conflict", err)
	}
}

// jsonString is v as JSON.
func jsonString(v any) (string, error) {
	b, err := json.Marshal(v)
	return string(b), err
}
