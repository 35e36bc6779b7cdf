package coordinator

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"time"

	"github.com/trainctl/trainctl/coordinator/structs"
)

// Writes go to the leader. Every write endpoint calls leaderOnly once it
// has checked its request: on the leader it returns nil and the endpoint
// commits; elsewhere it returns a *notLeaderError naming the leader's HTTP
// address, and the transport passes the request on (the HTTP adapter
// proxies it, proxyToLeader); with no known leader it returns an error
// wrapping structs.ErrNoLeader (HTTP 503 with Retry-After). Clients retry
// on 503, and every write is idempotent, so a write that reached a leader
// that died before answering is safe to send again.

// forwardedHeader marks a request a follower forwarded, with the follower's
// id; a server that is not the leader answers such a request with 503
// instead of forwarding it again, so forwarding never loops.
const forwardedHeader = "X-Trainctl-Forwarded-By"

// notLeaderError is leaderOnly's answer on a server that is not the leader
// while the leader is known. It wraps structs.ErrNotLeader, so a caller
// that cannot pass the request on answers 503 and its client retries.
type notLeaderError struct {
	// LeaderID and Addr are the leader's node id and HTTP address.
	LeaderID, Addr string
	// Path, Body and Header, when set, replace the forwarded request's
	// path and body and add headers: an endpoint that did part of a write
	// here (a follower that stored a report's step points) passes on only
	// what is left for the leader.
	Path   string
	Body   []byte
	Header http.Header
}

func (e *notLeaderError) Error() string {
	return fmt.Sprintf("%s: the leader is %s at %s", structs.ErrNotLeader, e.LeaderID, e.Addr)
}

func (e *notLeaderError) Unwrap() error { return structs.ErrNotLeader }

// longForwardTimeout bounds the wait for the leader's answer to a
// forwarded request of longForward: the leader imports and replicates up
// to Config.MaxBlobBytes before it answers. The request's context (the
// client hanging up) ends the wait sooner.
const longForwardTimeout = 30 * time.Minute

// longForward reports whether the leader may take minutes to answer r:
// uploads and registrations that import or replicate a blob first.
func longForward(r *http.Request) bool {
	switch r.Pattern {
	case "POST /v1/datasets/upload", "POST /v1/datasets", "POST /v1/checkpoints", "POST /v1/models", "GET /v1/datasets/flight":
		return true
	}
	return false
}

// newProxyTransport returns a transport to the leader that waits at most
// headerTimeout for its answer's header once the request is sent.
func newProxyTransport(headerTimeout time.Duration) *http.Transport {
	return &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
		ResponseHeaderTimeout: headerTimeout,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       30 * time.Second,
	}
}

// forwardedKey is the context key of the id of the server that forwarded
// a request.
type forwardedKey struct{}

// withForwardedBy returns ctx marked as carrying a request server by
// forwarded (none when by is empty).
func withForwardedBy(ctx context.Context, by string) context.Context {
	if by == "" {
		return ctx
	}
	return context.WithValue(ctx, forwardedKey{}, by)
}

// leaderOnly returns nil on the leader once it is ready (leaderLoop);
// elsewhere the error that says where the request must go (see above). A
// leader that is not ready yet answers ErrNoLeader, which clients retry.
func (s *Server) leaderOnly(ctx context.Context) error {
	if s.IsLeader() {
		if !s.leaderReady.Load() {
			// A new leader that has not applied its predecessors'
			// entries yet would check writes against stale state.
			return fmt.Errorf("server %s leads but has not caught up with the log yet: %w", s.cfg.NodeID, structs.ErrNoLeader)
		}
		return nil
	}
	if by, _ := ctx.Value(forwardedKey{}).(string); by != "" {
		return fmt.Errorf("%s forwarded the request here: %w", by, structs.ErrNotLeader)
	}
	_, id := s.raft.LeaderWithID()
	if id == "" {
		return fmt.Errorf("server %s: %w", s.cfg.NodeID, structs.ErrNoLeader)
	}
	srv, err := s.State().Server(string(id))
	if err != nil {
		return fmt.Errorf("leader %s has not registered its HTTP address yet: %w", id, structs.ErrNoLeader)
	}
	return &notLeaderError{LeaderID: string(id), Addr: srv.HTTPAddr}
}

// forward is the guard of an HTTP handler that is not an endpoint (the
// dataset upload, which streams its body):
//
//	if s.forward(w, r) {
//		return
//	}
//
// On the leader it returns false and the handler goes on. Elsewhere it
// proxies the request, body and all, to the leader, or answers the error
// of leaderOnly, and returns true.
func (s *Server) forward(w http.ResponseWriter, r *http.Request) bool {
	err := s.leaderOnly(withForwardedBy(r.Context(), r.Header.Get(forwardedHeader)))
	if err == nil {
		return false
	}
	var nl *notLeaderError
	if errors.As(err, &nl) {
		s.proxyToLeader(w, r, r.Body, nl)
		return true
	}
	writeError(w, err)
	return true
}

// proxyToLeader passes an HTTP request on to the leader nl names, with
// body as its body (the adapter read the request's body already), and
// copies the leader's answer back. The request keeps its X-Request-Id, so
// the leader's logs and answer carry the same id as this server's.
func (s *Server) proxyToLeader(w http.ResponseWriter, r *http.Request, body io.Reader, nl *notLeaderError) {
	target := &url.URL{Scheme: "http", Host: nl.Addr}
	reqID := w.Header().Get(requestIDHeader)
	out := r.Clone(r.Context())
	if nl.Body != nil {
		body = bytes.NewReader(nl.Body)
	}
	if nl.Path != "" {
		out.URL.Path, out.URL.RawPath = nl.Path, ""
	}
	for k, vs := range nl.Header {
		out.Header[k] = vs
	}
	out.Body = io.NopCloser(body)
	if b, ok := body.(*bytes.Reader); ok {
		out.ContentLength = int64(b.Len())
		if b.Len() == 0 {
			out.Body = http.NoBody
		}
	}
	transport := s.proxyTransport
	if longForward(r) {
		transport = s.longProxyTransport
	}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Header.Set(forwardedHeader, s.cfg.NodeID)
			if reqID != "" {
				pr.Out.Header.Set(requestIDHeader, reqID)
			}
		},
		ModifyResponse: func(resp *http.Response) error {
			// This server set the id already; the leader echoes it.
			resp.Header.Del(requestIDHeader)
			return nil
		},
		Transport: transport,
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			if writeBodyTooLarge(w, err) {
				return
			}
			writeError(w, fmt.Errorf("forward to leader %s: %w: %w", nl.LeaderID, structs.ErrNotLeader, err))
		},
	}
	proxy.ServeHTTP(w, out)
}
