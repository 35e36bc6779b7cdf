package coordinator

import (
	"fmt"
	"net/http"
	"net/http/httputil"
	"net/url"

	"github.com/trainctl/trainctl/coordinator/structs"
)

// forwardedHeader marks a request a follower forwarded, with the follower's
// id; a server that is not the leader answers such a request with 503
// instead of forwarding it again, so forwarding never loops.
const forwardedHeader = "X-Trainctl-Forwarded-By"

// forward is the guard every write handler starts with:
//
//	if s.forward(w, r) {
//		return
//	}
//
// On the leader it returns false and the handler goes on. Elsewhere it
// proxies the request to the leader's HTTP address (from the server
// registry) and returns true; with no known leader it answers 503 with
// code no_leader and a Retry-After header. Clients retry on 503, and every
// write is idempotent, so a write that reached a leader that died before
// answering is safe to send again.
func (s *Server) forward(w http.ResponseWriter, r *http.Request) bool {
	if s.IsLeader() {
		return false
	}
	if by := r.Header.Get(forwardedHeader); by != "" {
		writeError(w, fmt.Errorf("%s forwarded the request here: %w", by, structs.ErrNotLeader))
		return true
	}
	_, id := s.raft.LeaderWithID()
	if id == "" {
		writeError(w, fmt.Errorf("server %s: %w", s.cfg.NodeID, structs.ErrNoLeader))
		return true
	}
	srv, err := s.State().Server(string(id))
	if err != nil {
		writeError(w, fmt.Errorf("leader %s has not registered its HTTP address yet: %w", id, structs.ErrNoLeader))
		return true
	}
	target := &url.URL{Scheme: "http", Host: srv.HTTPAddr}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Header.Set(forwardedHeader, s.cfg.NodeID)
		},
		Transport: s.proxyTransport,
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			if writeBodyTooLarge(w, err) {
				return
			}
			writeError(w, fmt.Errorf("forward to leader %s: %w: %w", id, structs.ErrNotLeader, err))
		},
	}
	proxy.ServeHTTP(w, r)
	return true
}
