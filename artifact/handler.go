package artifact

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
)

// BlobsPath is where the blob API is mounted: a blob is the resource
// BlobsPath + digest.
const BlobsPath = "/v1/blobs/"

// DefaultMaxBlobSize is the size limit of an uploaded or fetched blob when
// none is configured.
const DefaultMaxBlobSize int64 = 16 << 30

// HandlerConfig configures the HTTP handler of a store.
type HandlerConfig struct {
	// MaxBlobSize is the largest blob a PUT may upload (413 beyond);
	// DefaultMaxBlobSize when zero or negative.
	MaxBlobSize int64
	// Logger receives request failures; slog.Default() when nil.
	Logger *slog.Logger
}

// PutResult is the JSON body of a successful PUT.
type PutResult struct {
	Digest string `json:"digest"`
	Size   int64  `json:"size"`
}

// errorBody is the JSON body of every error answer: the message and a
// code naming the kind of error, the same codes as the rest of the /v1/
// API ("invalid", "not_found", "conflict", "too_large", "internal").
type errorBody struct {
	Error string `json:"error"`
	Code  string `json:"code,omitempty"`
}

// codeOf is the error code of an HTTP status.
func codeOf(status int) string {
	switch status {
	case http.StatusNotFound:
		return "not_found"
	case http.StatusConflict:
		return "conflict"
	case http.StatusRequestEntityTooLarge:
		return "too_large"
	}
	if status >= 500 {
		return "internal"
	}
	return "invalid"
}

// Handler serves a Store over HTTP at BlobsPath (mount it there without
// stripping the prefix):
//
//	PUT  /v1/blobs/{digest}  store the request body, which must hash to
//	                         digest; 201 when new, 200 when already there,
//	                         both with a PutResult, and only once the blob
//	                         is durable on disk
//	GET  /v1/blobs/{digest}  the blob, with Content-Length, ETag and Range
//	HEAD /v1/blobs/{digest}  the same headers without the body
//
// Errors are JSON {"error": "…", "code": "…"}: 400 for a malformed digest or a body that
// could not be read, 404 for a missing blob, 405 for other methods, 409
// when the body does not hash to the digest, 413 when it exceeds
// MaxBlobSize, 500 for failures of the store.
type Handler struct {
	store *Store
	cfg   HandlerConfig
	log   *slog.Logger
}

// NewHandler returns the HTTP handler of store, with cfg's zero fields set
// to their defaults.
func NewHandler(store *Store, cfg HandlerConfig) *Handler {
	if cfg.MaxBlobSize <= 0 {
		cfg.MaxBlobSize = DefaultMaxBlobSize
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Handler{store: store, cfg: cfg, log: cfg.Logger}
}

// ServeHTTP handles one blob request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	digest, ok := strings.CutPrefix(r.URL.Path, BlobsPath)
	if !ok || digest == "" || strings.Contains(digest, "/") {
		h.fail(w, r, http.StatusNotFound, fmt.Errorf("no such resource %q: blobs are %s<digest>", r.URL.Path, BlobsPath))
		return
	}
	if _, err := ParseDigest(digest); err != nil {
		h.fail(w, r, http.StatusBadRequest, err)
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		h.get(w, r, digest)
	case http.MethodPut:
		h.put(w, r, digest)
	default:
		w.Header().Set("Allow", "GET, HEAD, PUT")
		h.fail(w, r, http.StatusMethodNotAllowed, fmt.Errorf("method %s not allowed on blobs", r.Method))
	}
}

func (h *Handler) get(w http.ResponseWriter, r *http.Request, digest string) {
	f, fi, err := h.store.openFile(digest)
	if err != nil {
		h.fail(w, r, statusOf(err), err)
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("ETag", `"`+digest+`"`)
	w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	http.ServeContent(w, r, "", fi.ModTime(), f)
}

func (h *Handler) put(w http.ResponseWriter, r *http.Request, digest string) {
	if r.ContentLength > h.cfg.MaxBlobSize {
		h.fail(w, r, http.StatusRequestEntityTooLarge, fmt.Errorf("put blob %s: %w: %d bytes, the limit is %d", ShortDigest(digest), ErrTooLarge, r.ContentLength, h.cfg.MaxBlobSize))
		return
	}
	_, size, created, err := h.store.put(r.Context(), r.Body, digest, h.cfg.MaxBlobSize)
	if err != nil {
		h.fail(w, r, statusOf(err), err)
		return
	}
	code := http.StatusOK
	if created {
		code = http.StatusCreated
		w.Header().Set("Location", BlobsPath+digest)
	}
	writeJSON(w, code, PutResult{Digest: digest, Size: size})
}

// statusOf maps an error of the store to an HTTP status.
func statusOf(err error) int {
	var be *bodyError
	switch {
	case errors.Is(err, ErrBadDigest):
		return http.StatusBadRequest
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, ErrDigestMismatch):
		return http.StatusConflict
	case errors.Is(err, ErrTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.As(err, &be):
		return http.StatusBadRequest
	default:
		return http.StatusInternalServerError
	}
}

func (h *Handler) fail(w http.ResponseWriter, r *http.Request, code int, err error) {
	if code >= 500 {
		h.log.Error("blob request failed", "method", r.Method, "path", r.URL.Path, "status", code, "err", err)
	} else {
		h.log.Debug("blob request refused", "method", r.Method, "path", r.URL.Path, "status", code, "err", err)
	}
	writeJSON(w, code, errorBody{Error: err.Error(), Code: codeOf(code)})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code, b = http.StatusInternalServerError, []byte(`{"error":"encode response"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}
