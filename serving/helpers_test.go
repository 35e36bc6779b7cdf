package serving

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trainctl/trainctl/dataset"
	"github.com/trainctl/trainctl/trainer"
	"github.com/trainctl/trainctl/trainer/gemm"
	"github.com/trainctl/trainctl/trainer/unet"
)

// tinyCheckpoint is an untrained UNet with two encoder levels on size×size
// RGB input and the trimap classes, weights drawn from seed.
func tinyCheckpoint(t testing.TB, size int, seed uint64) *trainer.Checkpoint {
	t.Helper()
	cfg := unet.Config{InChannels: 3, Classes: 3, Height: size, Width: size, Widths: []int{4, 8}, Bottleneck: 8}
	m, err := unet.New(cfg, gemm.New(1), 1)
	if err != nil {
		t.Fatal(err)
	}
	m.Init(seed)
	params := slices.Clone(m.Params)
	m.Close()
	return &trainer.Checkpoint{
		Created:   time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		Model:     cfg,
		Input:     trainer.InputSpec{Normalize: trainer.InputNormalizeUnit},
		Classes:   dataset.TrimapClasses(),
		Step:      7,
		Params:    params,
		Optimizer: []byte{},
	}
}

// tinyModel is a Model of tinyCheckpoint, closed at the end of the test.
func tinyModel(t testing.TB, size int, seed uint64, version string) *Model {
	t.Helper()
	m, err := NewModel(tinyCheckpoint(t, size, seed), version, 1, 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// testServer is a Server with its batching loop running and a real HTTP
// listener in front of it.
type testServer struct {
	*Server
	ts     *httptest.Server
	cancel context.CancelFunc
	done   chan error
}

// startServer starts a Server for cfg (quiet logger, threads 1 unless set),
// optionally with a model swapped in and a hook installed before Run.
func startServer(t *testing.T, cfg Config, m *Model, hook func(int)) *testServer {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Threads == 0 {
		cfg.Threads = 2
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.testHookBatch = hook
	if m != nil {
		s.Swap(m)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ts := &testServer{Server: s, ts: httptest.NewServer(s.Handler()), cancel: cancel, done: make(chan error, 1)}
	go func() { ts.done <- s.Run(ctx) }()
	t.Cleanup(func() {
		ts.stop(t)
		ts.ts.Close()
	})
	return ts
}

// stop ends Run and waits for it (idempotent).
func (ts *testServer) stop(t *testing.T) {
	t.Helper()
	ts.cancel()
	select {
	case err, ok := <-ts.done:
		if ok && err != nil {
			t.Errorf("Run: %v", err)
		}
		if ok {
			close(ts.done)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return within 10s of its context ending")
	}
}

func (ts *testServer) predictURL() string {
	return ts.ts.URL + "/v1/models/" + ts.cfg.Name + ":predict"
}

// response is what a test keeps of an HTTP response.
type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends a request and reads the whole response. It may be called from
// any goroutine: a transport failure is reported with t.Errorf and gives
// status -1.
func do(t testing.TB, client *http.Client, method, url, contentType, accept string, body []byte) response {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Errorf("%s %s: %v", method, url, err)
		return response{status: -1}
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Errorf("%s %s: %v", method, url, err)
		return response{status: -1}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Errorf("%s %s: read body: %v", method, url, err)
		return response{status: -1}
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// errorOf decodes a JSON error body, failing the test if it is not one.
func errorOf(t testing.TB, r response) errorBody {
	t.Helper()
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("error response has Content-Type %q, want JSON; body %q", ct, r.body)
	}
	var e errorBody
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatalf("error body %q: %v", r.body, err)
	}
	if e.Error == "" || e.Code == "" {
		t.Fatalf("error body %q lacks error or code", r.body)
	}
	return e
}

// testImage is a w×h RGB gradient with a disc, so the model sees structure.
func testImage(w, h int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			c := color.RGBA{uint8(255 * x / max(1, w-1)), uint8(255 * y / max(1, h-1)), 80, 255}
			if dx, dy := x-w/2, y-h/2; dx*dx+dy*dy < w*h/16 {
				c = color.RGBA{240, 240, 240, 255}
			}
			img.SetRGBA(x, y, c)
		}
	}
	return img
}

func pngBytes(t testing.TB, w, h int) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, testImage(w, h)); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func jpegBytes(t testing.TB, w, h int) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := jpeg.Encode(&b, testImage(w, h), &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// pngHeader is a PNG signature and an IHDR chunk (valid CRC) declaring a
// w×h 8-bit RGB image, and no pixel data.
func pngHeader(w, h uint32) []byte {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	chunk := make([]byte, 0, 17)
	chunk = append(chunk, "IHDR"...)
	chunk = binary.BigEndian.AppendUint32(chunk, w)
	chunk = binary.BigEndian.AppendUint32(chunk, h)
	chunk = append(chunk, 8, 2, 0, 0, 0) // depth 8, RGB, deflate, no filter, no interlace
	b.Write(binary.BigEndian.AppendUint32(nil, 13))
	b.Write(chunk)
	b.Write(binary.BigEndian.AppendUint32(nil, crc32.ChecksumIEEE(chunk)))
	return b.Bytes()
}

// multipartBody puts data in a file part named field (with extra text
// fields first) and returns the body and its Content-Type.
func multipartBody(t testing.TB, field string, data []byte, extra map[string]string) ([]byte, string) {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	for k, v := range extra {
		if err := mw.WriteField(k, v); err != nil {
			t.Fatal(err)
		}
	}
	if field != "" {
		fw, err := mw.CreateFormFile(field, "upload.bin")
		if err != nil {
			t.Fatal(err)
		}
		fw.Write(data)
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes(), mw.FormDataContentType()
}

// waitFor polls cond until it holds, failing the test after 10 s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// recv receives from ch, failing the test after 10 s.
func recv[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// metricsText fetches /metrics.
func (ts *testServer) metricsText(t testing.TB) string {
	t.Helper()
	r := do(t, ts.ts.Client(), http.MethodGet, ts.ts.URL+"/metrics", "", "", nil)
	if r.status != http.StatusOK {
		t.Fatalf("/metrics: %d %s", r.status, r.body)
	}
	return string(r.body)
}

// metricValue is the value of the sample line that starts with series
// (name and labels exactly as exposed), or -1 if absent.
func metricValue(text, series string) float64 {
	for _, line := range strings.Split(text, "\n") {
		rest, ok := strings.CutPrefix(line, series+" ")
		if !ok {
			continue
		}
		var v float64
		if err := json.Unmarshal([]byte(strings.TrimSpace(rest)), &v); err == nil {
			return v
		}
	}
	return -1
}

// batchGate holds the batching loop in its first batch until release, so
// that a test can queue requests behind a batch it knows is running. Pass
// gate.hook to startServer, then t.Cleanup(gate.release) so that the loop
// is let go before the server stops, even when the test fails early.
type batchGate struct {
	entered     chan struct{} // closed once the first batch reached the hook
	unblock     chan struct{}
	first, done sync.Once
	mu          sync.Mutex
	sizes       []int // every batch's size, in order
}

func newBatchGate() *batchGate {
	return &batchGate{entered: make(chan struct{}), unblock: make(chan struct{})}
}

// hook is the server's batch hook: it records n and blocks the first batch.
func (g *batchGate) hook(n int) {
	g.mu.Lock()
	g.sizes = append(g.sizes, n)
	g.mu.Unlock()
	g.first.Do(func() {
		close(g.entered)
		<-g.unblock
	})
}

// release lets the first batch run; calling it again does nothing.
func (g *batchGate) release() { g.done.Do(func() { close(g.unblock) }) }

// batchSizes returns the sizes of the batches so far, in order.
func (g *batchGate) batchSizes() []int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.sizes)
}
