package coordinator

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/trainctl/trainctl/api"
)

// newMiddlewareServer serves handlers behind the middleware chain with
// the given limits, over real HTTP.
func newMiddlewareServer(t *testing.T, lim httpLimits, routes map[string]http.HandlerFunc) *httptest.Server {
	t.Helper()
	s := &Server{cfg: Config{NodeID: "mw"}, log: testLogger()}
	mux := http.NewServeMux()
	for p, h := range routes {
		mux.Handle(p, h)
	}
	ts := httptest.NewServer(s.middleware(mux, lim))
	t.Cleanup(ts.Close)
	return ts
}

// errorBody reads an answer that must be a JSON api.ErrorBody.
func errorBody(t *testing.T, resp *http.Response) api.ErrorBody {
	t.Helper()
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("content type %q of %s", ct, data)
	}
	var eb api.ErrorBody
	if err := json.Unmarshal(data, &eb); err != nil || eb.Error == "" || eb.Code == "" {
		t.Fatalf("error body %s: %v", data, err)
	}
	return eb
}

func TestMiddlewareRequestID(t *testing.T) {
	ts := newMiddlewareServer(t, httpLimits{inFlight: 4, blocking: 4}, map[string]http.HandlerFunc{
		"GET /fail": func(w http.ResponseWriter, _ *http.Request) {
			writeError(w, api.ErrInvalid) // any error: the body must carry the id
		},
	})
	tests := []struct {
		name, sent string
		kept       bool
	}{
		{"none", "", false},
		{"well-formed", "req-123:abc", true},
		{"too long", strings.Repeat("a", api.MaxRequestIDLen+1), false},
		{"odd characters", "a b\"c", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", ts.URL+"/fail", nil)
			if tt.sent != "" {
				req.Header.Set(requestIDHeader, tt.sent)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got := resp.Header.Get(requestIDHeader)
			eb := errorBody(t, resp)
			switch {
			case api.CheckID(api.KindRequestID, got) != nil:
				t.Fatalf("answered request id %q is malformed", got)
			case tt.kept && got != tt.sent, !tt.kept && got == tt.sent:
				t.Fatalf("request id %q answered as %q; kept=%v", tt.sent, got, tt.kept)
			case eb.RequestID != got:
				t.Fatalf("error body request id %q, header %q", eb.RequestID, got)
			}
		})
	}
}

// TestMiddlewarePanic checks that a handler that panics is answered 500
// with a JSON error carrying the request id, and that the server goes on.
func TestMiddlewarePanic(t *testing.T) {
	ts := newMiddlewareServer(t, httpLimits{inFlight: 4, blocking: 4}, map[string]http.HandlerFunc{
		"GET /panic": func(http.ResponseWriter, *http.Request) { panic("test: boom") },
		"GET /ok":    func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, "ok") },
	})
	for range 3 {
		resp, err := http.Get(ts.URL + "/panic")
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusInternalServerError {
			t.Fatalf("status %d, want 500", resp.StatusCode)
		}
		id := resp.Header.Get(requestIDHeader)
		if eb := errorBody(t, resp); eb.Code != api.CodeInternal || eb.RequestID == "" || eb.RequestID != id {
			t.Fatalf("error body %+v, request id header %q", eb, id)
		}
	}
	resp, err := http.Get(ts.URL + "/ok")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("after the panics: status %d", resp.StatusCode)
	}
}

// TestMiddlewareInFlightLimit fills the in-flight and blocking-query slots
// with held requests and checks that one more of each kind is refused 503
// with Retry-After, and served again once a slot is free.
func TestMiddlewareInFlightLimit(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 8)
	hold := func(w http.ResponseWriter, _ *http.Request) {
		entered <- struct{}{}
		<-release
		writeJSON(w, http.StatusOK, "done")
	}
	ts := newMiddlewareServer(t, httpLimits{inFlight: 2, blocking: 1}, map[string]http.HandlerFunc{
		"GET /hold": hold,
		"GET /ok":   func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, "ok") },
	})
	held := []string{"/hold", "/hold", "/hold?index=5"}
	done := make(chan int, len(held))
	for _, p := range held {
		go func() {
			resp, err := http.Get(ts.URL + p)
			if err != nil {
				done <- 0
				return
			}
			resp.Body.Close()
			done <- resp.StatusCode
		}()
	}
	for range held {
		<-entered
	}
	for _, p := range []string{"/ok", "/ok?index=1"} {
		resp, err := http.Get(ts.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("%s with every slot taken: status %d, Retry-After %q", p, resp.StatusCode, resp.Header.Get("Retry-After"))
		}
		if eb := errorBody(t, resp); eb.Code != api.CodeOverloaded {
			t.Fatalf("%s: code %q, want %q", p, eb.Code, api.CodeOverloaded)
		}
	}
	close(release)
	for range held {
		if code := <-done; code != http.StatusOK {
			t.Fatalf("a held request ended %d", code)
		}
	}
	resp, err := http.Get(ts.URL + "/ok")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("after the release: status %d", resp.StatusCode)
	}
}

// TestMiddlewareHeadBlockingQuery holds a HEAD blocking query, which the
// GET routes serve as well: it must take a blocking-query slot, leaving the
// one ordinary slot to other requests.
func TestMiddlewareHeadBlockingQuery(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	ts := newMiddlewareServer(t, httpLimits{inFlight: 1, blocking: 1}, map[string]http.HandlerFunc{
		"GET /hold": func(w http.ResponseWriter, _ *http.Request) {
			entered <- struct{}{}
			<-release
			w.WriteHeader(http.StatusOK)
		},
		"GET /ok": func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, "ok") },
	})
	done := make(chan error, 1)
	go func() {
		resp, err := http.Head(ts.URL + "/hold?index=5")
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	<-entered
	resp, err := http.Get(ts.URL + "/ok")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	close(release)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET while a HEAD blocking query waits: status %d, want 200", resp.StatusCode)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
