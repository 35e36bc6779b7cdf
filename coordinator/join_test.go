package coordinator

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/trainctl/trainctl/api"
)

// TestJoinVerifiesTheJoiner sends joins over HTTP that no real server
// backs: each is refused with a 400 naming the field, and neither the Raft
// configuration nor the registry changes. A real server still joins.
func TestJoinVerifiesTheJoiner(t *testing.T) {
	c := newCluster(t, 2, nil)
	l := c.leader(nil)
	f := c.followers(l)[0]
	// An address where nothing listens.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()

	tests := []struct {
		name, body, wantInErr string
	}{
		{"made-up server", `{"id":"fake1","raft_addr":"` + dead + `","http_addr":"` + dead + `"}`, "http_addr"},
		{"real id, wrong raft address", `{"id":"` + f.cfg.NodeID + `","raft_addr":"` + dead + `","http_addr":"` + f.srv.HTTPAddr() + `"}`, "raft_addr"},
		{"real id, wrong http address", `{"id":"` + f.cfg.NodeID + `","raft_addr":"` + f.srv.RaftAddr() + `","http_addr":"` + dead + `"}`, "http_addr"},
		{"another server's http address", `{"id":"fake2","raft_addr":"` + dead + `","http_addr":"` + f.srv.HTTPAddr() + `"}`, "id"},
	}
	before := stateBytes(t, l.srv)
	for _, tt := range tests {
		for _, target := range []*node{l, f} {
			t.Run(tt.name+" via "+target.cfg.NodeID, func(t *testing.T) {
				resp, err := http.Post("http://"+target.srv.HTTPAddr()+"/v1/cluster/join", "application/json", strings.NewReader(tt.body))
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				data, _ := io.ReadAll(resp.Body)
				var eb api.ErrorBody
				if resp.StatusCode != http.StatusBadRequest || json.Unmarshal(data, &eb) != nil ||
					eb.Code != api.CodeInvalid || !strings.HasPrefix(eb.Error, tt.wantInErr+":") {
					t.Fatalf("status %d %s, want 400 %s naming %s", resp.StatusCode, data, api.CodeInvalid, tt.wantInErr)
				}
			})
		}
	}
	st, err := l.srv.Status()
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Voters) != 2 {
		t.Fatalf("voters %+v, want the 2 real ones", st.Voters)
	}
	real := map[string]*node{l.cfg.NodeID: l, f.cfg.NodeID: f}
	for _, v := range st.Voters {
		n, ok := real[v.ID]
		if !ok || v.RaftAddr != n.srv.RaftAddr() || v.HTTPAddr != n.srv.HTTPAddr() {
			t.Fatalf("voter %+v is no real server at its addresses", v)
		}
	}
	if after := stateBytes(t, l.srv); string(after) != string(before) {
		t.Fatal("the refused joins changed the state")
	}

	// A real server joins (through the follower, which forwards).
	cfg := testConfig("c2", t.TempDir())
	cfg.Join = []string{f.srv.HTTPAddr()}
	c.nodes = append(c.nodes, &node{cfg: cfg})
	c.start(2)
	waitFor(t, 10*time.Second, "3 voters", func() error {
		st, err := l.srv.Status()
		if err != nil {
			return err
		}
		if len(st.Voters) != 3 {
			return fmt.Errorf("%d voters", len(st.Voters))
		}
		return nil
	})
}
