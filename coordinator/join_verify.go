package coordinator

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/trainctl/trainctl/api"
	"github.com/trainctl/trainctl/coordinator/structs"
)

// joinVerifyTimeout bounds the leader's check of a joining server.
const joinVerifyTimeout = 5 * time.Second

// maxStatusBytes bounds the status answer a joining server sends back.
const maxStatusBytes = 1 << 20

// verifyJoiner checks, before the leader changes the Raft configuration or
// the registry for a join, that the server the join names is there and is
// who the join says: GET http://{http_addr}/v1/cluster/status must answer
// node_id req.ID and raft_addr req.RaftAddr. A server starts its HTTP API
// before it asks to join (New), so a real joiner always answers. Without
// this check anyone could add made-up voters (and so take the cluster's
// quorum away) or move a real voter to another Raft address. Errors wrap
// structs.ErrInvalid and name the field that failed.
func (s *Server) verifyJoiner(ctx context.Context, req api.JoinRequest) error {
	ctx, cancel := context.WithTimeout(ctx, joinVerifyTimeout)
	defer cancel()
	url := "http://" + req.HTTPAddr + "/v1/cluster/status"
	hreq, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("http_addr: %w: %w", structs.ErrInvalid, err)
	}
	resp, err := (&http.Client{Transport: s.proxyTransport}).Do(hreq)
	if err != nil {
		return fmt.Errorf("http_addr: %w: the leader cannot reach the joining server: %w", structs.ErrInvalid, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("http_addr: %w: GET %s answered status %d", structs.ErrInvalid, url, resp.StatusCode)
	}
	var st api.ClusterStatus
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxStatusBytes)).Decode(&st); err != nil {
		return fmt.Errorf("http_addr: %w: GET %s: no cluster status: %w", structs.ErrInvalid, url, err)
	}
	switch {
	case st.NodeID != req.ID:
		return fmt.Errorf("id: %w: the server at %s is %q, not %q", structs.ErrInvalid, req.HTTPAddr, api.Truncate(st.NodeID, 64), req.ID)
	case st.RaftAddr != req.RaftAddr:
		return fmt.Errorf("raft_addr: %w: server %s reports raft address %q, not %q", structs.ErrInvalid, req.ID, api.Truncate(st.RaftAddr, maxAddrLen), req.RaftAddr)
	}
	return nil
}
