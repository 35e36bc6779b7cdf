package serving

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/png"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/trainctl/trainctl/trainer"
)

// routes registers the API on s.mux. Method checks happen in the handlers
// so that every error, 405 included, is JSON.
func (s *Server) routes() {
	s.mux.HandleFunc("/v1/models/", s.handlePredict)
	s.mux.HandleFunc("/v1/models", s.handleModels)
	s.mux.HandleFunc("/healthz", s.handleHealthz)
	s.mux.HandleFunc("/readyz", s.handleReadyz)
	s.mux.HandleFunc("/metrics", s.handleMetrics)
}

// serveHTTP is the server's handler: it stamps X-Model-Version on every
// response while a model is loaded (the predict handler overwrites it with
// the version that actually answered) and answers unknown routes with JSON
// 404 or 405.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if m := s.cur.Load(); m != nil {
		w.Header().Set("X-Model-Version", m.version)
	}
	if _, pattern := s.mux.Handler(r); pattern == "" {
		// No route for this method and path: a 405 if GET would match.
		probe := r.Clone(r.Context())
		probe.Method = http.MethodGet
		if _, p := s.mux.Handler(probe); p != "" && r.Method != http.MethodGet {
			w.Header().Set("Allow", "GET, HEAD")
			writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", fmt.Sprintf("%s %s is not allowed; use GET", r.Method, r.URL.Path))
			return
		}
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no route for %s %s; the API is POST /v1/models/%s:predict, GET /v1/models, /healthz, /readyz, /metrics", r.Method, r.URL.Path, s.cfg.Name))
		return
	}
	s.mux.ServeHTTP(w, r)
}

// errorBody is the JSON of every error response.
type errorBody struct {
	Error string `json:"error"` // what was wrong, for a person
	Code  string `json:"code"`  // a stable identifier, for a program
}

// writeError writes a JSON error response.
func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, errorBody{Error: msg, Code: code})
}

// writeJSON writes v as a JSON response.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil { // only our own types are written: a bug
		status, b = http.StatusInternalServerError, []byte(`{"error":"encoding the response failed","code":"internal"}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// allowGet answers 405 unless r is a GET or HEAD.
func allowGet(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return true
	}
	w.Header().Set("Allow", "GET, HEAD")
	writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", fmt.Sprintf("%s %s is not allowed; use GET", r.Method, r.URL.Path))
	return false
}

// handleHealthz answers 200 while the process serves HTTP at all.
func (s *Server) handleHealthz(w http.ResponseWriter, r *http.Request) {
	if allowGet(w, r) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	}
}

// handleReadyz answers 200 while a model is loaded and the batching loop
// has not stopped, else 503, so a load balancer sends traffic only to
// replicas that can predict.
func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request) {
	if !allowGet(w, r) {
		return
	}
	m := s.cur.Load()
	switch {
	case m == nil:
		writeError(w, http.StatusServiceUnavailable, "no_model", "no model loaded yet")
	case s.isStopped():
		writeError(w, http.StatusServiceUnavailable, "shutting_down", "server is shutting down")
	default:
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready", "model": s.cfg.Name, "version": m.version})
	}
}

// handleMetrics serves the Prometheus registry.
func (s *Server) handleMetrics(w http.ResponseWriter, r *http.Request) {
	if !allowGet(w, r) {
		return
	}
	if s.met.handler == nil {
		writeError(w, http.StatusNotFound, "not_found", "metrics go to the configured Prometheus registerer, which this server cannot gather; serve that registry instead")
		return
	}
	s.met.handler.ServeHTTP(w, r)
}

// ModelInfo describes a served model in GET /v1/models.
type ModelInfo struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Input   struct {
		Width    int `json:"width"`
		Height   int `json:"height"`
		Channels int `json:"channels"`
	} `json:"input"`
	// Classes are the class names, index = class id = mask pixel value.
	Classes []string `json:"classes"`
	// ClassColors are the mask PNG's palette as CSS "#rrggbb", per class.
	ClassColors    []string `json:"class_colors"`
	Dataset        string   `json:"dataset,omitempty"`
	DatasetVersion string   `json:"dataset_version,omitempty"`
	// Step is the number of optimizer steps the checkpoint was trained for.
	Step int64 `json:"step"`
}

// ModelList is the response of GET /v1/models: the served model, or none
// before the first Swap.
type ModelList struct {
	Models []ModelInfo `json:"models"`
}

// handleModels lists the served model.
func (s *Server) handleModels(w http.ResponseWriter, r *http.Request) {
	if !allowGet(w, r) {
		return
	}
	list := ModelList{Models: []ModelInfo{}}
	if m := s.cur.Load(); m != nil {
		var mi ModelInfo
		mi.Name, mi.Version = s.cfg.Name, m.version
		mi.Input.Width, mi.Input.Height, mi.Input.Channels = m.width, m.height, m.channels
		mi.Classes, mi.ClassColors = m.classes, m.colorsHex
		mi.Dataset, mi.DatasetVersion, mi.Step = m.ckpt.Dataset, m.ckpt.DatasetVersion, m.ckpt.Step
		list.Models = append(list.Models, mi)
	}
	writeJSON(w, http.StatusOK, list)
}

// PredictResponse is the JSON answer to a predict request.
type PredictResponse struct {
	Model   string `json:"model"`
	Version string `json:"version"`
	// Width and Height are the input image's (and the mask's) size.
	Width  int `json:"width"`
	Height int `json:"height"`
	// Classes are the class names, index = class id.
	Classes []string `json:"classes"`
	// MaskRLE is the mask, run-length encoded (see RLE).
	MaskRLE RLE `json:"mask_rle"`
	// Fractions is each class's share of the mask's pixels; they sum to 1.
	Fractions map[string]float64 `json:"fractions"`
	// LatencyMs is the server time spent on the request, in milliseconds.
	LatencyMs float64 `json:"latency_ms"`
}

// handlePredict answers POST /v1/models/NAME:predict and records the
// request's metrics. They are recorded just before the response is
// written, so a client that has its answer sees it counted.
func (s *Server) handlePredict(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	recorded := false
	record := func(status int) {
		if recorded {
			return
		}
		recorded = true
		s.met.requests.WithLabelValues(strconv.Itoa(status)).Inc()
		s.met.duration.Observe(time.Since(start).Seconds())
	}
	status := s.predict(w, r, start, record)
	record(status) // 499: nothing was written
}

// predict serves one predict request and returns the status it answered
// (499 when the client went away first and nothing was written). It calls
// record with the status before writing any response.
func (s *Server) predict(w http.ResponseWriter, r *http.Request, start time.Time, record func(status int)) int {
	fail := func(status int, code, msg string) int {
		record(status)
		writeError(w, status, code, msg)
		return status
	}
	rest := strings.TrimPrefix(r.URL.Path, "/v1/models/")
	name, verb, ok := strings.Cut(rest, ":")
	switch {
	case !ok:
		return fail(http.StatusNotFound, "not_found", fmt.Sprintf("no route for %s; predict is POST /v1/models/%s:predict", r.URL.Path, s.cfg.Name))
	case name != s.cfg.Name:
		return fail(http.StatusNotFound, "unknown_model", fmt.Sprintf("unknown model %q; this server serves %q", name, s.cfg.Name))
	case verb != "predict":
		return fail(http.StatusNotFound, "unknown_verb", fmt.Sprintf("unknown verb %q for model %q; the only one is \"predict\"", verb, name))
	case r.Method != http.MethodPost:
		w.Header().Set("Allow", "POST")
		return fail(http.StatusMethodNotAllowed, "method_not_allowed", fmt.Sprintf("%s %s is not allowed; use POST with a PNG or JPEG body", r.Method, r.URL.Path))
	}
	m := s.acquireModel()
	if m == nil {
		w.Header().Set("Retry-After", "1")
		return fail(http.StatusServiceUnavailable, "no_model", "no model loaded yet")
	}
	enqueued := false
	defer func() {
		if !enqueued {
			m.release()
		}
	}()
	w.Header().Set("X-Model-Version", m.version)
	w.Header().Set("X-Model-Name", s.cfg.Name)

	// Reserve the body's memory before reading it (Config.MaxBodyMemory);
	// it is given back once the image is decoded, or on any return.
	reserved := s.cfg.MaxBodyBytes
	if r.ContentLength >= 0 {
		reserved = min(r.ContentLength, s.cfg.MaxBodyBytes)
	}
	if s.bodyBytes.Add(reserved) > s.cfg.MaxBodyMemory {
		s.bodyBytes.Add(-reserved)
		w.Header().Set("Retry-After", "1")
		return fail(http.StatusServiceUnavailable, "overloaded",
			fmt.Sprintf("request bodies being read already hold close to %d bytes; retry later", s.cfg.MaxBodyMemory))
	}
	unreserve := func() {
		s.bodyBytes.Add(-reserved)
		reserved = 0
	}
	defer func() { unreserve() }()

	data, err := s.readImageBytes(w, r)
	if err != nil {
		if r.Context().Err() != nil {
			return 499 // the client broke off the upload: nobody to answer
		}
		st, code := errorStatus(err)
		return fail(st, code, err.Error())
	}
	// From here until it is queued (or fails) the request is arriving:
	// decoding takes milliseconds, so the batching loop waits for it
	// rather than running a batch alone. (While its body was uploading
	// it did not count: a slow client would make every batch wait.)
	s.arriving.Add(1)
	arrived := false
	arrive := func() {
		if !arrived {
			arrived = true
			s.arriving.Add(-1)
		}
	}
	defer arrive()
	// Decoding and resizing take CPU and, at their peak, up to about 24
	// bytes per pixel of the image (see Config.Threads): bound how many
	// requests do it at once. The body read before this wait is bounded
	// by MaxBodyMemory instead.
	select {
	case s.decoders <- struct{}{}:
	case <-r.Context().Done():
		return 499
	}
	img, err := decodeImage(data, s.cfg.MaxPixels)
	unreserve() // the body is not used after this
	var input []byte
	if err == nil {
		input = toModelInput(img, m.width, m.height, m.channels)
	}
	<-s.decoders
	if err != nil {
		st, code := errorStatus(err)
		return fail(st, code, err.Error())
	}
	bounds := img.Bounds()

	j := &job{ctx: r.Context(), model: m, input: input, done: make(chan jobResult, 1)}
	// Stop arriving before queueing: were j still counted once queued, the
	// batching loop could take it and then wait MaxWait for j itself.
	arrive()
	err = s.enqueue(j)
	if err != nil {
		w.Header().Set("Retry-After", "1")
		if errors.Is(err, errQueueFull) {
			return fail(http.StatusServiceUnavailable, "overloaded", fmt.Sprintf("all %d queue slots are taken; retry later", s.cfg.QueueSize))
		}
		return fail(http.StatusServiceUnavailable, "shutting_down", "server is shutting down")
	}
	enqueued = true // the batching loop releases m now
	var res jobResult
	select {
	case res = <-j.done:
	case <-r.Context().Done():
		return 499
	}
	switch {
	case errors.Is(res.err, errShuttingDown):
		w.Header().Set("Retry-After", "1")
		return fail(http.StatusServiceUnavailable, "shutting_down", "server is shutting down")
	case res.err != nil && r.Context().Err() != nil:
		return 499
	case res.err != nil:
		s.log.Error("predict failed", "version", m.version, "err", res.err)
		return fail(http.StatusInternalServerError, "internal", "running the model failed: "+res.err.Error())
	}
	mask := trainer.ResizeMaskNearest(res.mask, m.width, m.height, bounds.Dx(), bounds.Dy())
	latency := float64(time.Since(start).Microseconds()) / 1000
	w.Header().Set("X-Latency-Ms", strconv.FormatFloat(latency, 'f', 3, 64))
	w.Header().Add("Vary", "Accept")
	if wantsPNG(r.Header.Get("Accept")) {
		pal := &image.Paletted{Pix: mask, Stride: bounds.Dx(), Rect: image.Rect(0, 0, bounds.Dx(), bounds.Dy()), Palette: m.colors}
		var buf bytes.Buffer
		enc := png.Encoder{CompressionLevel: png.BestSpeed}
		if err := enc.Encode(&buf, pal); err != nil {
			return fail(http.StatusInternalServerError, "internal", "encoding the mask PNG failed: "+err.Error())
		}
		w.Header().Set("Content-Type", "image/png")
		w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
		record(http.StatusOK)
		w.WriteHeader(http.StatusOK)
		w.Write(buf.Bytes())
		return http.StatusOK
	}
	resp := PredictResponse{
		Model:     s.cfg.Name,
		Version:   m.version,
		Width:     bounds.Dx(),
		Height:    bounds.Dy(),
		Classes:   m.classes,
		MaskRLE:   EncodeRLE(mask),
		Fractions: fractions(mask, m.classes),
		LatencyMs: latency,
	}
	record(http.StatusOK)
	writeJSON(w, http.StatusOK, resp)
	return http.StatusOK
}

// readImageBytes reads the image from the body: the whole body, or for
// multipart/form-data the part named "image", else the first file part.
// Errors wrap errBodyTooLarge, errBodyRead or errBadMultipart.
func (s *Server) readImageBytes(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
	// readAll reads rd; a failure other than the size limit wraps kind.
	readAll := func(rd io.Reader, what string, kind error) ([]byte, error) {
		b, err := io.ReadAll(rd)
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe):
			return nil, fmt.Errorf("%w: the body is longer than the %d-byte limit", errBodyTooLarge, mbe.Limit)
		case err != nil:
			return nil, fmt.Errorf("%w: reading %s: %v", kind, what, err)
		}
		return b, nil
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "multipart/form-data" {
		return readAll(r.Body, "the body", errBodyRead)
	}
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errBadMultipart, err)
	}
	var firstFile []byte
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, fmt.Errorf("%w: the body is longer than the %d-byte limit", errBodyTooLarge, mbe.Limit)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %v", errBadMultipart, err)
		}
		switch {
		case p.FormName() == "image":
			return readAll(p, `multipart field "image"`, errBadMultipart)
		case p.FileName() != "" && firstFile == nil:
			if firstFile, err = readAll(p, fmt.Sprintf("multipart file %q", p.FileName()), errBadMultipart); err != nil {
				return nil, err
			}
		default:
			if _, err := readAll(p, fmt.Sprintf("multipart field %q", p.FormName()), errBadMultipart); err != nil {
				return nil, err
			}
		}
	}
	if firstFile == nil {
		return nil, fmt.Errorf("%w: no field named \"image\" and no file part", errBadMultipart)
	}
	return firstFile, nil
}

// wantsPNG reports whether an Accept header prefers image/png to
// application/json. The most specific matching range gives each type's q;
// on a tie an explicit image/png beats a wildcard match for JSON, otherwise
// JSON (the default) wins.
func wantsPNG(accept string) bool {
	if accept == "" {
		return false
	}
	qPNG, qJSON := -1.0, -1.0
	specPNG, specJSON := -1, -1 // 2 exact, 1 type/*, 0 */*
	for _, part := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		q := 1.0
		if v, ok := params["q"]; ok {
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				q = f
			}
		}
		match := func(typ string, spec *int, qq *float64) {
			major, _, _ := strings.Cut(typ, "/")
			sp := -1
			switch mt {
			case typ:
				sp = 2
			case major + "/*":
				sp = 1
			case "*/*":
				sp = 0
			}
			if sp > *spec {
				*spec, *qq = sp, q
			}
		}
		match("image/png", &specPNG, &qPNG)
		match("application/json", &specJSON, &qJSON)
	}
	if qPNG <= 0 {
		return false
	}
	return qPNG > qJSON || (qPNG == qJSON && specPNG == 2 && specJSON < 2)
}

// fractions is each class's share of mask's pixels.
func fractions(mask []byte, classes []string) map[string]float64 {
	counts := make([]int, len(classes))
	for _, c := range mask {
		if int(c) < len(counts) {
			counts[c]++
		}
	}
	out := make(map[string]float64, len(classes))
	for i, n := range counts {
		out[classes[i]] = float64(n) / float64(len(mask))
	}
	return out
}
