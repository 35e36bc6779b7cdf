package coordinator

import (
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/trainctl/trainctl/api"
)

// TestWritesOnUnknownObjectsCommitNothing sends the writes that address an
// object by id with made-up ids, to the leader and to a follower: each is
// answered 404 and the leader's log does not grow.
func TestWritesOnUnknownObjectsCommitNothing(t *testing.T) {
	c := newCluster(t, 2, nil)
	l := c.leader(nil)
	c.converged(c.live())
	paths := []string{"/v1/jobs/nope/cancel", "/v1/sweeps/nope/cancel", "/v1/workers/nope/drain"}
	for _, target := range []*node{l, c.followers(l)[0]} {
		for _, p := range paths {
			t.Run(target.cfg.NodeID+p, func(t *testing.T) {
				last := l.srv.raft.LastIndex()
				resp, err := http.Post("http://"+target.srv.HTTPAddr()+p, "application/json", nil)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				data, _ := io.ReadAll(resp.Body)
				var eb api.ErrorBody
				if resp.StatusCode != http.StatusNotFound || json.Unmarshal(data, &eb) != nil || eb.Code != api.CodeNotFound {
					t.Fatalf("status %d %s, want 404 %s", resp.StatusCode, data, api.CodeNotFound)
				}
				if got := l.srv.raft.LastIndex(); got != last {
					t.Fatalf("the leader's log grew from %d to %d", last, got)
				}
			})
		}
	}
}
