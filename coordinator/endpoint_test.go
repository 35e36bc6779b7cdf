package coordinator

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/trainctl/trainctl/api"
	"github.com/trainctl/trainctl/coordinator/structs"
)

// TestEndpointsWithoutHTTP calls the endpoints directly, as an in-process
// transport would: the leader commits; a follower checks the request, then
// names the leader to pass a write on to; reads answer api types with the
// tables' index.
func TestEndpointsWithoutHTTP(t *testing.T) {
	c := newCluster(t, 3, nil)
	l := c.leader(nil)
	f := c.followers(l)[0]
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var anon Identity

	body := &api.SubmitJobBody{RequestID: "direct-1", Spec: testSpec("direct")}
	rep, err := l.srv.Endpoints().Jobs.Submit(ctx, anon, body)
	if err != nil || !rep.Created || rep.Value.ID == "" {
		t.Fatalf("submit on the leader: %+v, %v", rep, err)
	}
	again, err := l.srv.Endpoints().Jobs.Submit(ctx, anon, body)
	if err != nil || again.Created || again.Value.ID != rep.Value.ID {
		t.Fatalf("resubmit: %+v, %v; want job %s, not created", again, err, rep.Value.ID)
	}

	_, err = f.srv.Endpoints().Jobs.Cancel(ctx, anon, &ObjectRequest{ID: rep.Value.ID})
	var nl *notLeaderError
	if !errors.As(err, &nl) || nl.LeaderID != l.cfg.NodeID || nl.Addr != l.srv.HTTPAddr() || !errors.Is(err, structs.ErrNotLeader) {
		t.Fatalf("cancel on a follower: %v, want the leader %s at %s", err, l.cfg.NodeID, l.srv.HTTPAddr())
	}
	// A forwarded request is never forwarded again.
	_, err = f.srv.Endpoints().Jobs.Cancel(withForwardedBy(ctx, "elsewhere"), anon, &ObjectRequest{ID: rep.Value.ID})
	if errors.As(err, &nl) || !errors.Is(err, structs.ErrNotLeader) {
		t.Fatalf("forwarded cancel on a follower: %v, want a plain not-leader error", err)
	}
	// Bad input is refused where it arrives, before any forwarding.
	_, err = f.srv.Endpoints().Jobs.Cancel(ctx, anon, &ObjectRequest{ID: "../x"})
	if !errors.Is(err, structs.ErrInvalid) {
		t.Fatalf("cancel of a malformed id on a follower: %v, want invalid", err)
	}

	waitFor(t, 10*time.Second, "the job on the follower", func() error {
		_, err := f.srv.Endpoints().Jobs.Get(ctx, anon, &ObjectRequest{ID: rep.Value.ID})
		return err
	})
	got, err := f.srv.Endpoints().Jobs.Get(ctx, anon, &ObjectRequest{ID: rep.Value.ID})
	if err != nil || got.Value.Spec.Name != "direct" || got.Index == 0 {
		t.Fatalf("get on the follower: %+v, %v", got, err)
	}
}
