package coordinator

import (
	"context"
	"fmt"
	"net"

	"github.com/trainctl/trainctl/api"
	"github.com/trainctl/trainctl/coordinator/structs"
)

// maxAddrLen bounds a host:port address a request gives.
const maxAddrLen = 256

// Cluster is the endpoint of the coordinators' own cluster.
type Cluster struct{ srv *Server }

// StatusRequest is the request of Cluster.Status; it has no parameters.
type StatusRequest struct{}

// Status answers this server's view of the Raft cluster (GET
// /v1/cluster/status).
func (e *Cluster) Status(ctx context.Context, id Identity, _ *StatusRequest) (Reply[*api.ClusterStatus], error) {
	s := e.srv
	if err := s.authorize(ctx, id, ActionClusterRead); err != nil {
		return Reply[*api.ClusterStatus]{}, err
	}
	st, err := s.Status()
	return reply(st), err
}

// Join adds a coordinator to the cluster (POST /v1/cluster/join): the
// leader adds it as a voter (a no-op when it already is one at that
// address) and records its addresses in the server registry. Answers the
// cluster status.
func (e *Cluster) Join(ctx context.Context, id Identity, req *api.JoinRequest) (Reply[*api.ClusterStatus], error) {
	s := e.srv
	if err := s.authorize(ctx, id, ActionClusterJoin); err != nil {
		return Reply[*api.ClusterStatus]{}, err
	}
	if err := checkID("id", api.KindServer, req.ID); err != nil {
		return Reply[*api.ClusterStatus]{}, err
	}
	for _, f := range []struct{ name, value string }{{"raft_addr", req.RaftAddr}, {"http_addr", req.HTTPAddr}} {
		if err := checkAddr(f.name, f.value); err != nil {
			return Reply[*api.ClusterStatus]{}, err
		}
	}
	if err := s.leaderOnly(ctx); err != nil {
		return Reply[*api.ClusterStatus]{}, err
	}
	if err := s.addVoter(ctx, *req); err != nil {
		return Reply[*api.ClusterStatus]{}, err
	}
	return e.Status(ctx, id, &StatusRequest{})
}

// checkAddr checks a host:port address given as field.
func checkAddr(field, v string) error {
	switch {
	case v == "":
		return fmt.Errorf("%s: %w: required", field, structs.ErrInvalid)
	case len(v) > maxAddrLen:
		return fmt.Errorf("%s: %w: %d bytes, the limit is %d", field, structs.ErrInvalid, len(v), maxAddrLen)
	}
	if _, _, err := net.SplitHostPort(v); err != nil {
		return fmt.Errorf("%s: %w: want host:port: %w", field, structs.ErrInvalid, err)
	}
	return nil
}
