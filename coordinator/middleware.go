package coordinator

import (
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/trainctl/trainctl/api"
)

// The middleware chain every HTTP request passes, outermost first:
//
//  1. request id: a well-formed X-Request-Id from the client is kept,
//     otherwise one is made; it is set on the answer's header before
//     anything else runs, so every answer, error bodies included
//     (writeError), and every log line of the request carry it;
//  2. access log: method, path, status, duration and request id, with
//     slog (debug level when the request succeeded);
//  3. panic recovery: a handler that panics is answered 500 with a JSON
//     error and logged with its stack; the process lives on;
//  4. limits: at most maxInFlight requests are served at once and at most
//     maxBlockingInFlight blocking queries wait at once; beyond that a
//     request is answered 503 with Retry-After at once, without reading
//     its body. (Headers are bounded by maxHeaderBytes in the http.Server,
//     bodies by maxBodyBytes in the adapter.)
//  5. body pace: a request's body must arrive within bodyGrace plus one
//     second per bodyMinRate bytes read so far (rateBody), so a client
//     that sends a body slowly, or part of one and then nothing, gives its
//     slot back instead of holding it for good; this bounds JSON bodies
//     and uploads (datasets, blobs) alike, each by its size.

// requestIDHeader carries a request's id, in requests and answers.
const requestIDHeader = "X-Request-Id"

// Limits of the HTTP server.
const (
	// maxInFlight bounds the requests a server serves at once, blocking
	// queries aside: with maxBodyBytes, about 1 GiB of bodies at worst.
	maxInFlight = 256
	// maxBlockingInFlight bounds the blocking queries waiting at once;
	// a waiting query holds a goroutine and no body.
	maxBlockingInFlight = 4096
	// maxHeaderBytes bounds a request's header (http.Server).
	maxHeaderBytes = 64 << 10
	// bodyGrace is the time a request body may take before it must
	// keep up bodyMinRate.
	bodyGrace = 30 * time.Second
	// bodyMinRate is the slowest a body may arrive after bodyGrace,
	// in bytes per second on average: 64 KiB/s.
	bodyMinRate = 64 << 10
	// httpIdleTimeout closes a keep-alive connection idle that long.
	httpIdleTimeout = 2 * time.Minute
)

// httpLimits are the limits of the middleware chain.
type httpLimits struct {
	inFlight, blocking int
	// bodyGrace and bodyMinRate pace request bodies (rateBody).
	bodyGrace   time.Duration
	bodyMinRate int64
	// forwardHeaderTimeout bounds the wait for the leader's answer to
	// an ordinary forwarded request; 0 means Config.ApplyTimeout plus
	// 5 s (forward.go).
	forwardHeaderTimeout time.Duration
}

// proxyHeaderTimeout is l.forwardHeaderTimeout, or its default for cfg.
func (l httpLimits) proxyHeaderTimeout(cfg Config) time.Duration {
	if l.forwardHeaderTimeout > 0 {
		return l.forwardHeaderTimeout
	}
	return cfg.ApplyTimeout + 5*time.Second
}

// withDefaults returns l with each field that is not set given its
// default.
func (l httpLimits) withDefaults() httpLimits {
	if l.inFlight <= 0 {
		l.inFlight = maxInFlight
	}
	if l.blocking <= 0 {
		l.blocking = maxBlockingInFlight
	}
	if l.bodyGrace <= 0 {
		l.bodyGrace = bodyGrace
	}
	if l.bodyMinRate <= 0 {
		l.bodyMinRate = bodyMinRate
	}
	return l
}

// middleware wraps the API's handler in the chain above.
func (s *Server) middleware(next http.Handler, lim httpLimits) http.Handler {
	inFlight := make(chan struct{}, lim.inFlight)
	blocking := make(chan struct{}, lim.blocking)
	limited := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sem := inFlight
		if isBlockingQuery(r) {
			sem = blocking
		}
		select {
		case sem <- struct{}{}:
			defer func() { <-sem }()
		default:
			w.Header().Set("Retry-After", retryAfterSeconds)
			writeJSON(w, http.StatusServiceUnavailable, api.ErrorBody{
				Error:     fmt.Sprintf("coordinator %s is serving %d requests, its limit: retry later", s.cfg.NodeID, cap(sem)),
				Code:      api.CodeOverloaded,
				RequestID: w.Header().Get(requestIDHeader),
			})
			return
		}
		if r.Body != nil && r.Body != http.NoBody && lim.bodyGrace > 0 {
			r.Body = newRateBody(w, r.Body, lim.bodyGrace, lim.bodyMinRate)
		}
		next.ServeHTTP(w, r)
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := r.Header.Get(requestIDHeader)
		if api.CheckID(api.KindRequestID, id) != nil {
			id = newID()
		}
		w.Header().Set(requestIDHeader, id)
		rec := &statusRecorder{ResponseWriter: w}
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler { //nolint:errorlint // the sentinel value itself
					panic(p)
				}
				s.log.Error("http handler panicked", "method", r.Method, "path", r.URL.Path, "request_id", id,
					"panic", fmt.Sprint(p), "stack", string(debug.Stack()))
				if rec.status != 0 {
					// Part of the answer is out: all that is left is to
					// cut the connection.
					panic(http.ErrAbortHandler)
				}
				writeJSON(rec, http.StatusInternalServerError, api.ErrorBody{
					Error: "internal error: the request's handler failed; see the coordinator's log", Code: api.CodeInternal, RequestID: id,
				})
			}
			s.logAccess(r, rec.status, time.Since(start), id)
		}()
		limited.ServeHTTP(rec, r)
	})
}

// isBlockingQuery reports whether r is a blocking query: a read (GET, or
// HEAD, which the same routes serve) with an index.
func isBlockingQuery(r *http.Request) bool {
	return (r.Method == http.MethodGet || r.Method == http.MethodHead) && r.URL.Query().Has("index")
}

// logAccess logs one request: at debug level when it succeeded, info for a
// client error, warn for a server error.
func (s *Server) logAccess(r *http.Request, status int, d time.Duration, id string) {
	if status == 0 {
		status = http.StatusOK // the handler wrote nothing
	}
	level := slog.LevelDebug
	switch {
	case status >= 500:
		level = slog.LevelWarn
	case status >= 400:
		level = slog.LevelInfo
	}
	s.log.Log(r.Context(), level, "http request", "method", r.Method, "path", r.URL.Path,
		"status", status, "duration", d, "request_id", id)
}

// statusRecorder remembers the status a handler answered.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
	r.ResponseWriter.WriteHeader(status)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// Unwrap gives http.ResponseController (and the reverse proxy's flushes)
// the underlying writer.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// Flush flushes the underlying writer, for streamed answers.
func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
