package artifact

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// ClientConfig configures a Client. Zero fields take the defaults noted.
type ClientConfig struct {
	// HTTPClient, when set, is used as is and the timeouts below other
	// than RequestTimeout are ignored (set them on its transport). Use it
	// to add TLS or an authenticating RoundTripper.
	HTTPClient *http.Client
	// DialTimeout bounds connecting to a peer; default 5 s.
	DialTimeout time.Duration
	// ResponseHeaderTimeout bounds the wait for a peer's answer once the
	// request, body included, is sent; it covers the peer's fsync.
	// Default 60 s.
	ResponseHeaderTimeout time.Duration
	// RequestTimeout bounds one whole request, body transfer included;
	// default 10 min. Negative means no limit beyond the context's.
	RequestTimeout time.Duration
	// MaxBlobSize bounds the size of a blob a GET may return;
	// DefaultMaxBlobSize when zero or negative.
	MaxBlobSize int64
}

// Client talks to the blob API (see Handler) of coordinators, addressed as
// base URLs ("http://10.0.0.2:7070") or host:port pairs (taken as http).
// Workers use it to upload checkpoints; the Replicator uses it between
// coordinators. It is safe for concurrent use.
type Client struct {
	hc  *http.Client
	cfg ClientConfig
}

// NewClient returns a client with cfg's zero fields set to their defaults.
func NewClient(cfg ClientConfig) *Client {
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 5 * time.Second
	}
	if cfg.ResponseHeaderTimeout <= 0 {
		cfg.ResponseHeaderTimeout = 60 * time.Second
	}
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = 10 * time.Minute
	}
	if cfg.MaxBlobSize <= 0 {
		cfg.MaxBlobSize = DefaultMaxBlobSize
	}
	hc := cfg.HTTPClient
	if hc == nil {
		dialer := &net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: 30 * time.Second}
		hc = &http.Client{Transport: &http.Transport{
			// Intra-cluster traffic: never through a proxy.
			Proxy:                 nil,
			DialContext:           dialer.DialContext,
			ForceAttemptHTTP2:     false,
			MaxIdleConns:          64,
			MaxIdleConnsPerHost:   8,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   cfg.DialTimeout,
			ResponseHeaderTimeout: cfg.ResponseHeaderTimeout,
		}}
	}
	return &Client{hc: hc, cfg: cfg}
}

// CloseIdleConnections closes the client's idle keep-alive connections.
func (c *Client) CloseIdleConnections() { c.hc.CloseIdleConnections() }

// BlobURL is the URL of a blob on a peer given as a base URL or host:port.
func BlobURL(peer, digest string) string {
	if !strings.Contains(peer, "://") {
		peer = "http://" + peer
	}
	return strings.TrimRight(peer, "/") + BlobsPath + digest
}

// statusError is a non-2xx answer of a peer. It matches the sentinel
// errors its status stands for under errors.Is.
type statusError struct {
	code int
	msg  string
}

// Error describes the answer.
func (e *statusError) Error() string {
	if e.msg == "" {
		return fmt.Sprintf("%d %s", e.code, http.StatusText(e.code))
	}
	return fmt.Sprintf("%d %s: %s", e.code, http.StatusText(e.code), e.msg)
}

// Is maps the status to ErrBadDigest, ErrNotFound, ErrDigestMismatch and
// ErrTooLarge.
func (e *statusError) Is(target error) bool {
	switch target {
	case ErrBadDigest:
		return e.code == http.StatusBadRequest
	case ErrNotFound:
		return e.code == http.StatusNotFound
	case ErrDigestMismatch:
		return e.code == http.StatusConflict
	case ErrTooLarge:
		return e.code == http.StatusRequestEntityTooLarge
	}
	return false
}

// temporary reports whether retrying the request may help.
func (e *statusError) temporary() bool {
	return e.code >= 500 || e.code == http.StatusRequestTimeout || e.code == http.StatusTooManyRequests
}

// readStatusError drains and closes resp's body into a statusError.
func readStatusError(resp *http.Response) error {
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	var eb errorBody
	msg := strings.TrimSpace(string(b))
	if json.Unmarshal(b, &eb) == nil && eb.Error != "" {
		msg = eb.Error
	}
	return &statusError{code: resp.StatusCode, msg: msg}
}

// withTimeout applies the per-request timeout to ctx.
func (c *Client) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if c.cfg.RequestTimeout > 0 {
		return context.WithTimeout(ctx, c.cfg.RequestTimeout)
	}
	return context.WithCancel(ctx)
}

// Stat asks peer for the size of a blob (HEAD). A missing blob gives an
// error wrapping ErrNotFound.
func (c *Client) Stat(ctx context.Context, peer, digest string) (int64, error) {
	if _, err := ParseDigest(digest); err != nil {
		return 0, fmt.Errorf("stat blob on %s: %w", peer, err)
	}
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, BlobURL(peer, digest), nil)
	if err != nil {
		return 0, fmt.Errorf("stat blob on %s: %w", peer, err)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, fmt.Errorf("stat blob %s on %s: %w", ShortDigest(digest), peer, err)
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("stat blob %s on %s: %w", ShortDigest(digest), peer, readStatusError(resp))
	}
	resp.Body.Close()
	if resp.ContentLength < 0 {
		return 0, fmt.Errorf("stat blob %s on %s: no Content-Length", ShortDigest(digest), peer)
	}
	return resp.ContentLength, nil
}

// Push uploads size bytes from body as the blob digest to peer (PUT) and
// checks the peer's answer: it returns nil only when the peer stored the
// blob durably under that digest and size. Push does not close body. An
// answer of 409 (the bytes do not hash to digest) wraps ErrDigestMismatch,
// 413 ErrTooLarge.
func (c *Client) Push(ctx context.Context, peer, digest string, body io.Reader, size int64) error {
	if _, err := ParseDigest(digest); err != nil {
		return fmt.Errorf("push blob to %s: %w", peer, err)
	}
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	var rc io.ReadCloser = http.NoBody
	if size > 0 {
		// NopCloser: the transport closes the body it is given, but the
		// caller owns this one. net/http unwraps it to use sendfile.
		rc = io.NopCloser(body)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, BlobURL(peer, digest), rc)
	if err != nil {
		return fmt.Errorf("push blob to %s: %w", peer, err)
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("push blob %s to %s: %w", ShortDigest(digest), peer, err)
	}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("push blob %s to %s: %w", ShortDigest(digest), peer, readStatusError(resp))
	}
	defer resp.Body.Close()
	var res PutResult
	if err := json.NewDecoder(io.LimitReader(resp.Body, 4096)).Decode(&res); err != nil {
		return fmt.Errorf("push blob %s to %s: bad answer: %w", ShortDigest(digest), peer, err)
	}
	if res.Digest != digest || res.Size != size {
		return fmt.Errorf("push blob %s to %s: peer stored %s of %d bytes, want %d bytes: %w",
			ShortDigest(digest), peer, ShortDigest(res.Digest), res.Size, size, ErrDigestMismatch)
	}
	return nil
}

// Get opens the blob digest on peer (GET) and returns its content and
// size. The caller closes the reader, and must verify the content (see
// Store.PutExpected) before trusting it. A missing blob gives an error
// wrapping ErrNotFound; a blob larger than MaxBlobSize ErrTooLarge, from
// Get when the answer declares its length and from the reader otherwise.
func (c *Client) Get(ctx context.Context, peer, digest string) (io.ReadCloser, int64, error) {
	if _, err := ParseDigest(digest); err != nil {
		return nil, 0, fmt.Errorf("get blob from %s: %w", peer, err)
	}
	ctx, cancel := c.withTimeout(ctx)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, BlobURL(peer, digest), nil)
	if err != nil {
		cancel()
		return nil, 0, fmt.Errorf("get blob from %s: %w", peer, err)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		cancel()
		return nil, 0, fmt.Errorf("get blob %s from %s: %w", ShortDigest(digest), peer, err)
	}
	if resp.StatusCode != http.StatusOK {
		err := readStatusError(resp)
		cancel()
		return nil, 0, fmt.Errorf("get blob %s from %s: %w", ShortDigest(digest), peer, err)
	}
	if resp.ContentLength > c.cfg.MaxBlobSize {
		resp.Body.Close()
		cancel()
		return nil, 0, fmt.Errorf("get blob %s from %s: %w: %d bytes, the limit is %d", ShortDigest(digest), peer, ErrTooLarge, resp.ContentLength, c.cfg.MaxBlobSize)
	}
	body := &boundedBody{ReadCloser: resp.Body, left: c.cfg.MaxBlobSize,
		tooLarge: fmt.Errorf("get blob %s from %s: %w: more than %d bytes", ShortDigest(digest), peer, ErrTooLarge, c.cfg.MaxBlobSize)}
	return &cancelOnClose{ReadCloser: body, cancel: cancel}, resp.ContentLength, nil
}

// boundedBody fails a read with tooLarge once the body goes past left
// bytes: an answer without a Content-Length (chunked) is held to
// MaxBlobSize too, before it can fill a disk.
type boundedBody struct {
	io.ReadCloser
	left     int64 // bytes still allowed; negative once exceeded
	tooLarge error
}

// Read reads at most one byte beyond the limit, to tell a body of exactly
// the limit from a longer one, and hands that byte to no one.
func (b *boundedBody) Read(p []byte) (int, error) {
	if b.left < 0 {
		return 0, b.tooLarge
	}
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= int64(n)
	if b.left < 0 {
		return n - 1, b.tooLarge
	}
	return n, err
}

// cancelOnClose ends a request's context when its body is closed.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

// Close closes the body and releases the request's context.
func (c *cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}

// retryable reports whether a failed request may succeed when repeated:
// transport failures and 5xx answers, unless ctx has ended.
func retryable(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	var se *statusError
	if errors.As(err, &se) {
		return se.temporary()
	}
	return !errors.Is(err, ErrBadDigest) && !errors.Is(err, ErrDigestMismatch) && !errors.Is(err, ErrTooLarge)
}
