package serving

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Config configures a Server. Zero values take the defaults noted.
type Config struct {
	// Name is the model name in URLs (/v1/models/NAME:predict); default
	// "default". It may not contain '/' or ':'.
	Name string
	// MaxBatch is the most images per forward pass (default 8; 1 turns
	// batching off). Give LoadModel the same maxBatch, or the model splits
	// a batch into several passes.
	MaxBatch int
	// MaxWait is how long the first request of a batch waits for others to
	// join it while others are on their way (default 5ms). A request that
	// finds nothing else queued or arriving runs at once: batching costs a
	// lone client nothing.
	MaxWait time.Duration
	// QueueSize is the most requests waiting for a batch (default 64); a
	// request beyond it is answered 503 with Retry-After: 1 at once, so the
	// queue never grows without limit.
	QueueSize int
	// MaxBodyBytes is the largest request body accepted (default 16 MiB);
	// a longer one is answered 413. A request's body is read into memory
	// in full before the request waits for a decode slot (see Threads);
	// MaxBodyMemory bounds what all of them hold together.
	MaxBodyBytes int64
	// MaxBodyMemory is the most bytes of request bodies held at once, from
	// the start of reading a body until its image is decoded (default 256
	// MiB; at least MaxBodyBytes). A request whose body would take the
	// total past it is answered 503 with Retry-After: 1 at once, before
	// its body is read, so many large concurrent uploads cannot exhaust
	// memory. A body counts as its Content-Length, or as MaxBodyBytes when
	// the request does not declare one (chunked).
	MaxBodyMemory int64
	// MaxPixels is the largest width×height an image header may declare
	// (default 16,000,000), checked before any pixel is decoded so a small
	// file cannot claim a huge canvas (a decompression bomb); beyond it,
	// 413.
	MaxPixels int
	// Threads bounds how many requests decode and resize images at once
	// (default GOMAXPROCS), which bounds the memory decoded images take:
	// at its peak a decode holds up to about 24 bytes per pixel (a
	// progressive 4-channel JPEG: int32 coefficient planes, 16 B/px, plus
	// the decoded planes and the CMYK image; a progressive RGB JPEG about
	// 19 B/px; an interlaced 16-bit PNG about 12 B/px, 8 B/px not
	// interlaced), about 384 MB at the default MaxPixels, so Threads ×
	// 384 MB in all. Pass the same count to LoadModel for the engine.
	Threads int
	// Logger receives swap and error logs; nil means slog.Default().
	Logger *slog.Logger
	// Registerer receives the server's Prometheus metrics; nil means a new
	// private registry. /metrics serves the registry when it is also a
	// prometheus.Gatherer (a *prometheus.Registry, as the default one is).
	Registerer prometheus.Registerer
}

// Defaults of Config's zero values.
const (
	DefaultName          = "default"            // Config.Name
	DefaultMaxBatch      = 8                    // Config.MaxBatch
	DefaultMaxWait       = 5 * time.Millisecond // Config.MaxWait
	DefaultQueueSize     = 64                   // Config.QueueSize
	DefaultMaxBodyBytes  = 16 << 20             // Config.MaxBodyBytes: 16 MiB
	DefaultMaxBodyMemory = 256 << 20            // Config.MaxBodyMemory: 256 MiB
	DefaultMaxPixels     = 16_000_000           // Config.MaxPixels
)

// ErrConfig is wrapped by New's errors for an invalid Config.
var ErrConfig = errors.New("invalid serving config")

// Errors a predict request can meet after its image is decoded.
var (
	errQueueFull    = errors.New("queue full")
	errShuttingDown = errors.New("server shutting down")
)

// Server is the HTTP inference server: it answers predict requests for the
// current Model, batching concurrent requests into one forward pass, and
// swaps models without failing a request. Handler gives its routes; Run is
// its batching loop and must be running for predictions to be answered.
type Server struct {
	cfg     Config
	log     *slog.Logger
	met     *metrics
	mux     *http.ServeMux
	handler http.Handler

	cur    atomic.Pointer[Model]
	swapMu sync.Mutex // serialises Swap

	queue    chan *job
	decoders chan struct{} // semaphore: requests decoding or resizing now
	// arriving counts predict requests that have read their body and are
	// decoding it (or waiting to): they will be queued within
	// milliseconds, so a batch is worth waiting for.
	arriving atomic.Int64
	// bodyBytes is the request body memory reserved now (see
	// Config.MaxBodyMemory).
	bodyBytes atomic.Int64
	running   atomic.Bool  // Run has been called
	mu        sync.RWMutex // orders enqueue against Run's shutdown
	stopped   bool         // Run has returned; guarded by mu

	// testHookBatch, when set, is called by the batching loop with each
	// batch's size before its forward pass (tests block the loop with it).
	testHookBatch func(n int)
}

// job is one predict request between its handler and the batching loop.
// From a successful enqueue on, the loop owns the job's hold on model and
// releases it.
type job struct {
	ctx   context.Context
	model *Model
	input []byte         // H×W×C at the model's input geometry
	done  chan jobResult // buffered: the loop never blocks on a handler
}

type jobResult struct {
	mask []byte // H×W at the model's input geometry
	err  error
}

// New returns a Server with cfg's defaults filled in, serving no model until
// the first Swap. It fails (ErrConfig) for negative limits or a name with
// '/' or ':', and when its metrics cannot be registered with
// cfg.Registerer (one another Server already registered with, say).
func New(cfg Config) (*Server, error) {
	if cfg.Name == "" {
		cfg.Name = DefaultName
	}
	if strings.ContainsAny(cfg.Name, "/:") {
		return nil, fmt.Errorf("%w: model name %q contains '/' or ':'", ErrConfig, cfg.Name)
	}
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"MaxBatch", int64(cfg.MaxBatch)}, {"MaxWait", int64(cfg.MaxWait)}, {"QueueSize", int64(cfg.QueueSize)},
		{"MaxBodyBytes", cfg.MaxBodyBytes}, {"MaxBodyMemory", cfg.MaxBodyMemory}, {"MaxPixels", int64(cfg.MaxPixels)}, {"Threads", int64(cfg.Threads)},
	} {
		if f.v < 0 {
			return nil, fmt.Errorf("%w: %s is %d, want >= 0 (0: the default)", ErrConfig, f.name, f.v)
		}
	}
	if cfg.MaxBatch == 0 {
		cfg.MaxBatch = DefaultMaxBatch
	}
	if cfg.MaxWait == 0 {
		cfg.MaxWait = DefaultMaxWait
	}
	if cfg.QueueSize == 0 {
		cfg.QueueSize = DefaultQueueSize
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.MaxBodyMemory == 0 {
		cfg.MaxBodyMemory = max(DefaultMaxBodyMemory, cfg.MaxBodyBytes)
	}
	if cfg.MaxBodyMemory < cfg.MaxBodyBytes {
		return nil, fmt.Errorf("%w: MaxBodyMemory %d is below MaxBodyBytes %d: a body of the largest size could never be read", ErrConfig, cfg.MaxBodyMemory, cfg.MaxBodyBytes)
	}
	if cfg.MaxPixels == 0 {
		cfg.MaxPixels = DefaultMaxPixels
	}
	if cfg.Threads == 0 {
		cfg.Threads = runtime.GOMAXPROCS(0)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{
		cfg:      cfg,
		log:      cfg.Logger.With("component", "serving", "model", cfg.Name),
		mux:      http.NewServeMux(),
		queue:    make(chan *job, cfg.QueueSize),
		decoders: make(chan struct{}, cfg.Threads),
	}
	met, err := newMetrics(cfg.Registerer, func() float64 { return float64(len(s.queue)) })
	if err != nil {
		return nil, err
	}
	s.met = met
	s.routes()
	s.handler = http.HandlerFunc(s.serveHTTP)
	return s, nil
}

// Swap makes m the model new requests go to (nil: none, and /readyz turns
// 503). Requests already holding the old model, queued or in a running
// batch, finish on it; the old model releases its engine after the last of
// them, so no request fails during a swap. A model swapped out can be
// swapped in again (it rebuilds its engine) unless it was closed
// (Model.Close), after which its requests fail.
func (s *Server) Swap(m *Model) {
	s.swapMu.Lock()
	defer s.swapMu.Unlock()
	if m != nil {
		m.setLive(+1)
	}
	old := s.cur.Swap(m)
	if old != nil {
		old.setLive(-1)
	}
	s.met.modelInfo.Reset()
	if m != nil {
		s.met.modelInfo.WithLabelValues(m.version).Set(1)
	}
	if old == m {
		return
	}
	s.met.swaps.Inc()
	switch {
	case m == nil:
		s.log.Info("model unloaded", "old_version", old.version)
	case old == nil:
		s.log.Info("model loaded", "version", m.version)
	default:
		s.log.Info("model swapped", "version", m.version, "old_version", old.version)
	}
}

// Model is the model new requests go to, nil before the first Swap.
func (s *Server) Model() *Model { return s.cur.Load() }

// Handler serves all the server's routes (see the package documentation),
// and those added with Mount, before or after Handler was called: it
// serves the server's live mux.
func (s *Server) Handler() http.Handler { return s.handler }

// Mount adds a route to the server's mux (an http.ServeMux pattern such as
// "GET /{$}"), for the web page; it may be called before or after Handler,
// also while requests are served. The API's routes are the method-less
// patterns /v1/models, /v1/models/, /healthz, /readyz and /metrics.
// Mount panics, as http.ServeMux.Handle does, for a pattern already
// registered or one that conflicts with another (matches some of the same
// requests with neither more specific). A more specific pattern does not
// conflict: it silently takes over the requests it matches, so "GET
// /healthz" replaces the API's /healthz for GET and HEAD. Mount nothing
// under the API's paths.
func (s *Server) Mount(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// Run is the batching loop: it takes the first queued request and every
// other already queued (up to MaxBatch, all for the same model); if the
// batch is not full and more requests are queued or arriving, it waits up
// to MaxWait for them; then it runs one forward pass for the batch and
// answers each. A lone request runs at once. Requests whose client has gone
// are dropped unrun. When ctx ends, Run finishes the forward pass it is
// running, starts no other (requests still queued or being collected into
// a batch are answered 503), and returns nil; later requests get 503 too.
// Run may be called once.
func (s *Server) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("serving: Run called twice")
	}
	defer s.shutdown()
	var carry *job // taken from the queue for a different model than the batch
	for {
		var first *job
		switch {
		case ctx.Err() != nil:
			if carry != nil {
				s.finish(carry, jobResult{err: errShuttingDown})
			}
			return nil
		case carry != nil:
			first, carry = carry, nil
		default:
			select {
			case <-ctx.Done():
				continue
			case first = <-s.queue:
			}
		}
		// ctx may have ended while first was taken (select picks at
		// random among ready cases) or while the batch was collected: no
		// pass starts after ctx ends, the jobs go to shutdown's 503.
		if ctx.Err() != nil {
			s.finish(first, jobResult{err: errShuttingDown})
			return nil
		}
		if s.dropIfGone(first) {
			continue
		}
		batch := []*job{first}
		if s.cfg.MaxBatch > 1 {
			batch, carry = s.collect(ctx, batch)
		}
		if ctx.Err() != nil {
			for _, j := range append(batch, carry) {
				if j != nil {
					s.finish(j, jobResult{err: errShuttingDown})
				}
			}
			return nil
		}
		s.runBatch(batch)
	}
}

// collect fills batch (whose first job fixes the model) up to MaxBatch:
// first with what is already queued, then, while more requests are queued
// or arriving, with what comes within MaxWait. A job for another model
// ends the batch and is returned as carry, to start the next one.
func (s *Server) collect(ctx context.Context, batch []*job) (_ []*job, carry *job) {
	model := batch[0].model
	add := func(j *job) bool { // false: j ends the batch
		switch {
		case s.dropIfGone(j):
		case j.model != model:
			carry = j
			return false
		default:
			batch = append(batch, j)
		}
		return true
	}
	// What is queued already joins without waiting.
drain:
	for len(batch) < s.cfg.MaxBatch {
		select {
		case j := <-s.queue:
			if !add(j) {
				return batch, carry
			}
		default:
			break drain
		}
	}
	if len(batch) >= s.cfg.MaxBatch || s.arriving.Load() == 0 {
		return batch, nil
	}
	timer := time.NewTimer(s.cfg.MaxWait)
	defer timer.Stop()
	for len(batch) < s.cfg.MaxBatch {
		select {
		case j := <-s.queue:
			if !add(j) {
				return batch, carry
			}
			if len(s.queue) == 0 && s.arriving.Load() == 0 {
				return batch, nil // nobody else is coming
			}
		case <-timer.C:
			return batch, nil
		case <-ctx.Done():
			return batch, nil
		}
	}
	return batch, nil
}

// runBatch runs one forward pass for jobs of one model and answers them.
// The pass is not cancelled by Run's context: a batch that started
// finishes.
func (s *Server) runBatch(batch []*job) {
	if s.testHookBatch != nil {
		s.testHookBatch(len(batch))
	}
	m := batch[0].model
	images := make([][]byte, len(batch))
	for i, j := range batch {
		images[i] = j.input
	}
	s.met.batchSize.Observe(float64(len(batch)))
	masks, err := m.predict(context.Background(), images)
	if err != nil {
		s.log.Error("forward pass failed", "version", m.version, "batch", len(batch), "err", err)
	}
	for i, j := range batch {
		r := jobResult{err: err}
		if err == nil {
			r.mask = masks[i]
		}
		s.finish(j, r)
	}
}

// finish answers a job and releases its hold on the model.
func (s *Server) finish(j *job, r jobResult) {
	j.done <- r
	j.model.release()
}

// dropIfGone finishes a job whose client has gone, without running it.
func (s *Server) dropIfGone(j *job) bool {
	if err := j.ctx.Err(); err != nil {
		s.finish(j, jobResult{err: err})
		return true
	}
	return false
}

// enqueue hands j to the batching loop, or fails at once with errQueueFull
// or errShuttingDown.
func (s *Server) enqueue(j *job) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.stopped {
		return errShuttingDown
	}
	select {
	case s.queue <- j:
		return nil
	default:
		return errQueueFull
	}
}

// shutdown stops enqueueing and answers everything still queued.
func (s *Server) shutdown() {
	s.mu.Lock()
	s.stopped = true
	s.mu.Unlock()
	for {
		select {
		case j := <-s.queue:
			s.finish(j, jobResult{err: errShuttingDown})
		default:
			return
		}
	}
}

// isStopped reports whether Run has returned.
func (s *Server) isStopped() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.stopped
}

// acquireModel returns the current model with a hold on it, or nil. The
// hold is taken before re-checking that the model is still current, so a
// concurrent Swap cannot release it under the request.
func (s *Server) acquireModel() *Model {
	for {
		m := s.cur.Load()
		if m == nil {
			return nil
		}
		m.acquire()
		if s.cur.Load() == m {
			return m
		}
		m.release()
	}
}
