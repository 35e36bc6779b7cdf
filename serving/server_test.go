package serving

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/gif"
	"image/png"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/trainctl/trainctl/trainer"
)

// checkJSONPrediction decodes a JSON prediction and checks it describes a
// w×h mask; it returns the decoded mask.
func checkJSONPrediction(t *testing.T, r response, w, h int, version string) []byte {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("status %d, body %s", r.status, r.body)
	}
	var p PredictResponse
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatalf("body %q: %v", r.body, err)
	}
	if p.Width != w || p.Height != h {
		t.Errorf("prediction is %dx%d, the image %dx%d", p.Width, p.Height, w, h)
	}
	if p.Model != "default" || p.Version != version || r.header.Get("X-Model-Version") != version {
		t.Errorf("model %q version %q header %q, want default %q", p.Model, p.Version, r.header.Get("X-Model-Version"), version)
	}
	if want := []string{"pet", "background", "border"}; fmt.Sprint(p.Classes) != fmt.Sprint(want) {
		t.Errorf("classes %v, want %v", p.Classes, want)
	}
	mask, err := p.MaskRLE.Decode(w, h)
	if err != nil {
		t.Fatalf("mask_rle: %v", err)
	}
	counts := make(map[string]int)
	for _, c := range mask {
		if int(c) >= len(p.Classes) {
			t.Fatalf("mask has class %d, only %d classes", c, len(p.Classes))
		}
		counts[p.Classes[c]]++
	}
	sum := 0.0
	for name, f := range p.Fractions {
		sum += f
		if want := float64(counts[name]) / float64(w*h); math.Abs(f-want) > 1e-12 {
			t.Errorf("fraction of %s is %v, the mask says %v", name, f, want)
		}
	}
	if len(p.Fractions) != 3 || math.Abs(sum-1) > 1e-9 {
		t.Errorf("fractions %v sum to %v, want 3 classes summing to 1", p.Fractions, sum)
	}
	if p.LatencyMs <= 0 || r.header.Get("X-Latency-Ms") == "" || r.header.Get("X-Model-Name") != "default" {
		t.Errorf("latency_ms %v, X-Latency-Ms %q, X-Model-Name %q", p.LatencyMs, r.header.Get("X-Latency-Ms"), r.header.Get("X-Model-Name"))
	}
	return mask
}

// checkPNGPrediction decodes a PNG mask and checks it is w×h, paletted with
// the class colours, and returns its pixels.
func checkPNGPrediction(t *testing.T, r response, w, h int) []byte {
	t.Helper()
	if r.status != http.StatusOK || r.header.Get("Content-Type") != "image/png" {
		t.Fatalf("status %d, Content-Type %q, body %.200q", r.status, r.header.Get("Content-Type"), r.body)
	}
	img, err := png.Decode(bytes.NewReader(r.body))
	if err != nil {
		t.Fatalf("mask PNG: %v", err)
	}
	pal, ok := img.(*image.Paletted)
	if !ok {
		t.Fatalf("mask PNG decodes to %T, want *image.Paletted", img)
	}
	if b := pal.Bounds(); b.Dx() != w || b.Dy() != h {
		t.Fatalf("mask is %dx%d, the image %dx%d", b.Dx(), b.Dy(), w, h)
	}
	want := []color.RGBA{{220, 60, 60, 255}, {0, 0, 0, 255}, {250, 220, 40, 255}}
	if len(pal.Palette) != len(want) {
		t.Fatalf("palette has %d colours, want %d", len(pal.Palette), len(want))
	}
	for i, c := range want {
		if got := color.RGBAModel.Convert(pal.Palette[i]); got != c {
			t.Errorf("palette[%d] = %v, want %v", i, got, c)
		}
	}
	for _, v := range pal.Pix {
		if v > 2 {
			t.Fatalf("mask pixel %d is not a class id", v)
		}
	}
	if r.header.Get("X-Model-Version") == "" || r.header.Get("X-Latency-Ms") == "" || r.header.Get("X-Model-Name") != "default" {
		t.Errorf("headers %v lack X-Model-Version, X-Latency-Ms or X-Model-Name", r.header)
	}
	return pal.Pix
}

func TestPredict(t *testing.T) {
	ts := startServer(t, Config{MaxWait: 1}, tinyModel(t, 16, 1, "v1"), nil)
	const w, h = 37, 23 // not the model's 16×16, not square
	pngImg, jpegImg := pngBytes(t, w, h), jpegBytes(t, w, h)
	mp, mpType := multipartBody(t, "image", pngImg, map[string]string{"note": "hi"})
	mpOther, mpOtherType := multipartBody(t, "upload", jpegImg, nil)
	// The PNG mask of the PNG is the reference the other answers match.
	ref := checkPNGPrediction(t, do(t, ts.ts.Client(), http.MethodPost, ts.predictURL(), "", "image/png", pngImg), w, h)
	tests := []struct {
		name, contentType, accept string
		body                      []byte
		png                       bool
		sameAsRef                 bool
	}{
		{"png json default", "", "", pngImg, false, true},
		{"png json explicit", "image/png", "application/json", pngImg, false, true},
		{"png lying content type", "text/plain", "*/*", pngImg, false, true},
		{"png accept prefers png", "", "application/json;q=0.5, image/png", pngImg, true, true},
		{"jpeg json", "image/jpeg", "", jpegImg, false, false},
		{"jpeg png", "", "image/png", jpegImg, true, false},
		{"multipart image field", mpType, "image/png", mp, true, true},
		{"multipart first file part", mpOtherType, "", mpOther, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, ts.ts.Client(), http.MethodPost, ts.predictURL(), tt.contentType, tt.accept, tt.body)
			var mask []byte
			if tt.png {
				mask = checkPNGPrediction(t, r, w, h)
			} else {
				mask = checkJSONPrediction(t, r, w, h, "v1")
			}
			if tt.sameAsRef && !bytes.Equal(mask, ref) {
				t.Error("mask differs from the PNG answer for the same image")
			}
		})
	}
}

func TestPredictBadInput(t *testing.T) {
	ts := startServer(t, Config{MaxBodyBytes: 64 << 10, MaxPixels: 1 << 20}, tinyModel(t, 16, 1, "v1"), nil)
	good := pngBytes(t, 20, 20)
	var gifBuf bytes.Buffer
	if err := gif.Encode(&gifBuf, testImage(8, 8), nil); err != nil {
		t.Fatal(err)
	}
	big := append(pngHeader(64, 64), bytes.Repeat([]byte{0}, 65<<10)...)
	noImage, noImageType := multipartBody(t, "", nil, map[string]string{"note": "no file"})
	bigPart, bigPartType := multipartBody(t, "image", bytes.Repeat([]byte{1}, 70<<10), nil)
	url := ts.predictURL()
	tests := []struct {
		name, method, url, contentType string
		body                           []byte
		status                         int
		code                           string
	}{
		{"empty body", "POST", url, "image/png", nil, 400, "empty_body"},
		{"text body", "POST", url, "image/png", []byte("hello, this is not an image"), 415, "unsupported_media_type"},
		{"gif", "POST", url, "", gifBuf.Bytes(), 415, "unsupported_media_type"},
		{"truncated png", "POST", url, "", good[:len(good)/2], 400, "bad_image"},
		{"png header only", "POST", url, "", pngHeader(20, 20), 400, "bad_image"},
		{"truncated jpeg", "POST", url, "", jpegBytes(t, 20, 20)[:300], 400, "bad_image"},
		{"zero width png", "POST", url, "", pngHeader(0, 20), 400, "bad_image"},
		{"huge declared dimensions", "POST", url, "", pngHeader(100000, 100000), 413, "image_too_large"},
		{"over max pixels", "POST", url, "", pngHeader(1025, 1024), 413, "image_too_large"},
		{"oversize body", "POST", url, "", big, 413, "body_too_large"},
		{"oversize multipart", "POST", url, bigPartType, bigPart, 413, "body_too_large"},
		{"multipart without image", "POST", url, noImageType, noImage, 400, "bad_multipart"},
		{"multipart broken", "POST", url, "multipart/form-data; boundary=xyz", []byte("garbage"), 400, "bad_multipart"},
		{"unknown model", "POST", ts.ts.URL + "/v1/models/other:predict", "", good, 404, "unknown_model"},
		{"unknown verb", "POST", ts.ts.URL + "/v1/models/default:explain", "", good, 404, "unknown_verb"},
		{"no verb", "POST", ts.ts.URL + "/v1/models/default", "", good, 404, "not_found"},
		{"GET on predict", "GET", url, "", nil, 405, "method_not_allowed"},
		{"POST on models", "POST", ts.ts.URL + "/v1/models", "", good, 405, "method_not_allowed"},
		{"unknown path", "GET", ts.ts.URL + "/nope", "", nil, 404, "not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, ts.ts.Client(), tt.method, tt.url, tt.contentType, "", tt.body)
			e := errorOf(t, r)
			if r.status != tt.status || e.Code != tt.code {
				t.Errorf("got %d %s (%q), want %d %s", r.status, e.Code, e.Error, tt.status, tt.code)
			}
			if r.header.Get("X-Model-Version") != "v1" {
				t.Errorf("X-Model-Version %q, want v1 on errors too", r.header.Get("X-Model-Version"))
			}
			if tt.status == 405 && r.header.Get("Allow") == "" {
				t.Error("405 without Allow")
			}
		})
	}
	// Every bad request was answered without running the model.
	if v := metricValue(ts.metricsText(t), "trainctl_serving_batch_size_count"); v != 0 {
		t.Errorf("batch_size_count = %v after only bad requests, want 0", v)
	}
}

func TestLoadShedding(t *testing.T) {
	gate := newBatchGate()
	ts := startServer(t, Config{QueueSize: 1, MaxBatch: 1}, tinyModel(t, 16, 1, "v1"), gate.hook)
	t.Cleanup(gate.release) // before the server stops, even if the test fails early
	img := pngBytes(t, 16, 16)
	results := make(chan response, 32)
	post := func() {
		results <- do(t, ts.ts.Client(), http.MethodPost, ts.predictURL(), "", "", img)
	}
	go post()
	recv(t, gate.entered, "the first batch") // the loop holds it; the queue (1 slot) is empty
	const flood = 12
	for range flood {
		go post()
	}
	// One request fits the queue; every other is shed at once.
	for range flood - 1 {
		r := recv(t, results, "a flooded request's answer")
		e := errorOf(t, r)
		if r.status != http.StatusServiceUnavailable || e.Code != "overloaded" || r.header.Get("Retry-After") != "1" {
			t.Errorf("flooded request: %d %s Retry-After %q, want 503 overloaded Retry-After 1", r.status, e.Code, r.header.Get("Retry-After"))
		}
	}
	gate.release()
	for range 2 {
		if r := recv(t, results, "a held request's answer"); r.status != http.StatusOK {
			t.Errorf("held or queued request: %d %s, want 200", r.status, r.body)
		}
	}
	text := ts.metricsText(t)
	if ok, shed := metricValue(text, `trainctl_serving_requests_total{code="200"}`), metricValue(text, `trainctl_serving_requests_total{code="503"}`); ok != 2 || shed != flood-1 {
		t.Errorf("requests_total 200=%v 503=%v, want 2 and %d", ok, shed, flood-1)
	}
}

func TestClientGoneIsDropped(t *testing.T) {
	gate := newBatchGate()
	ts := startServer(t, Config{MaxBatch: 1}, tinyModel(t, 16, 1, "v1"), gate.hook)
	t.Cleanup(gate.release)
	img := pngBytes(t, 16, 16)
	first := make(chan response, 1)
	go func() { first <- do(t, ts.ts.Client(), http.MethodPost, ts.predictURL(), "", "", img) }()
	recv(t, gate.entered, "the first batch")
	ctx, cancel := context.WithCancel(context.Background())
	gone := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, ts.predictURL(), bytes.NewReader(img))
		resp, err := ts.ts.Client().Do(req)
		if err == nil {
			resp.Body.Close()
		}
		gone <- err
	}()
	waitFor(t, "the second request to be queued", func() bool { return len(ts.queue) == 1 })
	cancel()
	if err := recv(t, gone, "the cancelled request"); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled request: %v, want context.Canceled", err)
	}
	waitFor(t, "the server to see the client go", func() bool {
		return metricValue(ts.metricsText(t), `trainctl_serving_requests_total{code="499"}`) == 1
	})
	gate.release()
	if r := recv(t, first, "the first request"); r.status != http.StatusOK {
		t.Fatalf("first request: %d %s", r.status, r.body)
	}
	// A later request runs as the second batch: the cancelled one never ran.
	if r := do(t, ts.ts.Client(), http.MethodPost, ts.predictURL(), "", "", img); r.status != http.StatusOK {
		t.Fatalf("third request: %d %s", r.status, r.body)
	}
	if n := len(gate.batchSizes()); n != 2 {
		t.Errorf("%d forward passes, want 2 (the cancelled request dropped unrun)", n)
	}
}

func TestBatching(t *testing.T) {
	tests := []struct {
		name      string
		maxBatch  int
		wantSizes []int // batch sizes in order
	}{
		// A minute of MaxWait: a batch closes when full or when nothing
		// more is arriving, never by time.
		{"queued requests share a pass", 4, []int{1, 4}},
		{"batching off", 1, []int{1, 1, 1, 1, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gate := newBatchGate()
			ts := startServer(t, Config{MaxBatch: tt.maxBatch, MaxWait: 60e9, QueueSize: 8}, tinyModel(t, 16, 1, "v1"), gate.hook)
			t.Cleanup(gate.release)
			img := pngBytes(t, 16, 16)
			var wg sync.WaitGroup
			post := func() {
				wg.Go(func() {
					if r := do(t, ts.ts.Client(), http.MethodPost, ts.predictURL(), "", "", img); r.status != http.StatusOK {
						t.Errorf("status %d %s", r.status, r.body)
					}
				})
			}
			// The first request runs alone (nothing else queued or
			// arriving) and holds the loop; four more queue meanwhile.
			post()
			recv(t, gate.entered, "the first batch")
			for range 4 {
				post()
			}
			waitFor(t, "four queued requests", func() bool { return len(ts.queue) == 4 })
			gate.release()
			wg.Wait()
			if sizes := gate.batchSizes(); !slices.Equal(sizes, tt.wantSizes) {
				t.Errorf("batch sizes %v, want %v", sizes, tt.wantSizes)
			}
			text := ts.metricsText(t)
			if count := metricValue(text, "trainctl_serving_batch_size_count"); count != float64(len(tt.wantSizes)) {
				t.Errorf("batch_size count %v, want %d", count, len(tt.wantSizes))
			}
		})
	}
}

// TestLoneRequestDoesNotWait: with nothing else queued or arriving, a
// request runs at once instead of waiting MaxWait for company.
func TestLoneRequestDoesNotWait(t *testing.T) {
	ts := startServer(t, Config{MaxBatch: 8, MaxWait: time.Hour}, tinyModel(t, 16, 1, "v1"), nil)
	done := make(chan response, 1)
	go func() { done <- do(t, ts.ts.Client(), http.MethodPost, ts.predictURL(), "", "", pngBytes(t, 16, 16)) }()
	if r := recv(t, done, "the lone request's answer"); r.status != http.StatusOK {
		t.Fatalf("status %d %s", r.status, r.body)
	}
}

func TestHotSwapUnderLoad(t *testing.T) {
	// The models differ in input size too: each request runs on the model
	// it was resized for.
	a, b := tinyModel(t, 16, 1, "a"), tinyModel(t, 32, 2, "b")
	ts := startServer(t, Config{MaxWait: 1}, a, nil)
	img := pngBytes(t, 24, 20)
	var (
		stop atomic.Bool
		// swaps counts the swaps that have returned. A request that reads
		// swaps == n before it is sent reaches the server after swap n, so
		// it runs on swap n's model or a later one, never an earlier one.
		swaps  atomic.Int64
		mu     sync.Mutex
		seen   = map[string]int{}
		after  = map[int64]map[string]int{} // swaps read at the start → version → answers
		failed []string
		wg     sync.WaitGroup
	)
	for range 4 {
		wg.Go(func() {
			for !stop.Load() {
				n := swaps.Load()
				r := do(t, ts.ts.Client(), http.MethodPost, ts.predictURL(), "", "", img)
				mu.Lock()
				if r.status != http.StatusOK {
					failed = append(failed, fmt.Sprintf("%d %s", r.status, r.body))
				} else {
					var p PredictResponse
					if err := json.Unmarshal(r.body, &p); err != nil || p.Version != r.header.Get("X-Model-Version") {
						failed = append(failed, fmt.Sprintf("version %q vs header %q (%v)", p.Version, r.header.Get("X-Model-Version"), err))
					}
					seen[p.Version]++
					if after[n] == nil {
						after[n] = map[string]int{}
					}
					after[n][p.Version]++
				}
				mu.Unlock()
			}
		})
	}
	for i := range 20 {
		m := []*Model{a, b}[(i+1)%2]
		ts.Swap(m)
		n := swaps.Add(1)
		// Let a request sent after this swap through on the new model
		// before the next swap. An answer from a request sent earlier
		// does not count: it may come from the previous time m was
		// current, before m's engine was released and before this swap
		// made m current again (and its engine is rebuilt only by a
		// request that runs on it).
		waitFor(t, "an answer from the new model to a request sent after the swap", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return after[n][m.Version()] > 0
		})
	}
	stop.Store(true)
	wg.Wait()
	if len(failed) > 0 {
		t.Fatalf("%d requests failed during swaps, first: %s", len(failed), failed[0])
	}
	if seen["a"] == 0 || seen["b"] == 0 {
		t.Fatalf("versions seen %v, want both a and b", seen)
	}
	// The last swap made a current; b's engine is released once idle.
	if ts.Model() != a {
		t.Fatalf("current model %v, want a", ts.Model().Version())
	}
	waitFor(t, "b to release its engine", b.released)
	if a.released() {
		t.Error("the current model released its engine")
	}
	if v := metricValue(ts.metricsText(t), "trainctl_serving_swaps_total"); v != 21 {
		t.Errorf("swaps_total %v, want 21", v)
	}
}

func TestSwapKeepsOldModelForItsRequests(t *testing.T) {
	gate := newBatchGate()
	a, b := tinyModel(t, 16, 1, "a"), tinyModel(t, 16, 2, "b")
	ts := startServer(t, Config{MaxBatch: 1}, a, gate.hook)
	t.Cleanup(gate.release)
	img := pngBytes(t, 16, 16)
	answers := make([]chan response, 3)
	send := func(i int) {
		answers[i] = make(chan response, 1)
		go func() { answers[i] <- do(t, ts.ts.Client(), http.MethodPost, ts.predictURL(), "", "", img) }()
	}
	send(0) // runs on a; the loop blocks in its batch
	recv(t, gate.entered, "the first batch")
	send(1) // queued for a
	waitFor(t, "the second request to be queued", func() bool { return len(ts.queue) == 1 })
	ts.Swap(b)
	if a.released() {
		t.Fatal("Swap released the old model while a batch and a queued request held it")
	}
	send(2) // goes to b
	waitFor(t, "the third request to be queued", func() bool { return len(ts.queue) == 2 })
	gate.release()
	for i, want := range []string{"a", "a", "b"} {
		r := recv(t, answers[i], "an answer")
		if r.status != http.StatusOK || r.header.Get("X-Model-Version") != want {
			t.Errorf("request %d: %d version %q, want 200 from %s (%s)", i, r.status, r.header.Get("X-Model-Version"), want, r.body)
		}
	}
	waitFor(t, "the old model to release its engine after its last request", a.released)
	if b.released() {
		t.Error("the current model released its engine")
	}
}

func TestReadiness(t *testing.T) {
	ts := startServer(t, Config{}, nil, nil)
	c := ts.ts.Client()
	get := func(path string) response { return do(t, c, http.MethodGet, ts.ts.URL+path, "", "", nil) }
	if r := get("/healthz"); r.status != 200 {
		t.Errorf("healthz without a model: %d", r.status)
	}
	if r := get("/readyz"); r.status != 503 || errorOf(t, r).Code != "no_model" {
		t.Errorf("readyz without a model: %d %s", r.status, r.body)
	}
	if r := do(t, c, http.MethodPost, ts.predictURL(), "", "", pngBytes(t, 8, 8)); r.status != 503 || errorOf(t, r).Code != "no_model" || r.header.Get("X-Model-Version") != "" {
		t.Errorf("predict without a model: %d %s version %q", r.status, r.body, r.header.Get("X-Model-Version"))
	}
	var list ModelList
	if r := get("/v1/models"); r.status != 200 || json.Unmarshal(r.body, &list) != nil || len(list.Models) != 0 {
		t.Errorf("models without a model: %d %s", r.status, r.body)
	}
	ts.Swap(tinyModel(t, 16, 1, "v7"))
	if r := get("/readyz"); r.status != 200 || r.header.Get("X-Model-Version") != "v7" {
		t.Errorf("readyz with a model: %d %s", r.status, r.body)
	}
	r := get("/v1/models")
	if err := json.Unmarshal(r.body, &list); r.status != 200 || err != nil || len(list.Models) != 1 {
		t.Fatalf("models: %d %s", r.status, r.body)
	}
	mi := list.Models[0]
	if mi.Name != "default" || mi.Version != "v7" || mi.Input.Width != 16 || mi.Input.Height != 16 || mi.Input.Channels != 3 ||
		strings.Join(mi.Classes, ",") != "pet,background,border" || strings.Join(mi.ClassColors, ",") != "#dc3c3c,#000000,#fadc28" || mi.Step != 7 {
		t.Errorf("model info %+v", mi)
	}
	ts.stop(t)
	if r := get("/readyz"); r.status != 503 || errorOf(t, r).Code != "shutting_down" {
		t.Errorf("readyz after Run returned: %d %s", r.status, r.body)
	}
	if r := do(t, c, http.MethodPost, ts.predictURL(), "", "", pngBytes(t, 8, 8)); r.status != 503 || errorOf(t, r).Code != "shutting_down" || r.header.Get("Retry-After") == "" {
		t.Errorf("predict after Run returned: %d %s", r.status, r.body)
	}
	if r := get("/healthz"); r.status != 200 {
		t.Errorf("healthz after Run returned: %d", r.status)
	}
}

func TestMetrics(t *testing.T) {
	ts := startServer(t, Config{}, tinyModel(t, 16, 1, "v1"), nil)
	if r := do(t, ts.ts.Client(), http.MethodPost, ts.predictURL(), "", "", pngBytes(t, 16, 16)); r.status != 200 {
		t.Fatalf("predict: %d %s", r.status, r.body)
	}
	text := ts.metricsText(t)
	for _, series := range []string{
		`trainctl_serving_requests_total{code="200"}`,
		"trainctl_serving_request_duration_seconds_count",
		"trainctl_serving_batch_size_count",
		"trainctl_serving_queue_depth",
		`trainctl_serving_model_info{version="v1"}`,
		"trainctl_serving_swaps_total",
	} {
		if v := metricValue(text, series); v != 1 && !(series == "trainctl_serving_queue_depth" && v == 0) {
			t.Errorf("%s = %v", series, v)
		}
	}
	ts.Swap(tinyModel(t, 16, 1, "v2"))
	text = ts.metricsText(t)
	if metricValue(text, `trainctl_serving_model_info{version="v1"}`) != -1 || metricValue(text, `trainctl_serving_model_info{version="v2"}`) != 1 {
		t.Errorf("model_info after a swap to v2:\n%s", text)
	}
}

func TestNewConfig(t *testing.T) {
	shared := prometheus.NewRegistry()
	if _, err := New(Config{Registerer: shared}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  Config
	}{
		{"negative batch", Config{MaxBatch: -1}},
		{"negative queue", Config{QueueSize: -3}},
		{"negative wait", Config{MaxWait: -1}},
		{"negative body", Config{MaxBodyBytes: -1}},
		{"negative body memory", Config{MaxBodyMemory: -1}},
		{"body memory below the largest body", Config{MaxBodyBytes: 2000, MaxBodyMemory: 1000}},
		{"name with colon", Config{Name: "a:b"}},
		{"name with slash", Config{Name: "a/b"}},
		{"registerer shared", Config{Registerer: shared}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.cfg); err == nil {
				t.Fatal("New succeeded")
			} else if !errors.Is(err, ErrConfig) {
				t.Fatalf("error %v does not wrap ErrConfig", err)
			}
		})
	}
	s, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if s.cfg.Name != DefaultName || s.cfg.MaxBatch != DefaultMaxBatch || s.cfg.QueueSize != DefaultQueueSize || s.cfg.MaxPixels != DefaultMaxPixels || s.cfg.MaxBodyBytes != DefaultMaxBodyBytes {
		t.Errorf("defaults not applied: %+v", s.cfg)
	}
	if err := s.Run(canceledContext()); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if err := s.Run(canceledContext()); err == nil {
		t.Fatal("a second Run succeeded")
	}
}

func canceledContext() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

func TestLoadModel(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "best.ckpt")
	if err := trainer.WriteCheckpoint(path, tinyCheckpoint(t, 16, 3)); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	corrupt := filepath.Join(dir, "corrupt.ckpt")
	if err := os.WriteFile(corrupt, data[:len(data)-1], 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path, version, want string
		wantErr                   error
	}{
		{"version from file hash", path, "", hex.EncodeToString(sum[:])[:12], nil},
		{"explicit version", path, "run-42", "run-42", nil},
		{"corrupt", corrupt, "", "", trainer.ErrCorruptCheckpoint},
		{"missing", filepath.Join(dir, "nope"), "", "", os.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := LoadModel(tt.path, tt.version, 1, 2)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("error %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			if m.Version() != tt.want {
				t.Errorf("version %q, want %q", m.Version(), tt.want)
			}
		})
	}
	// NewModel's derived version depends on the weights.
	v1, v2 := tinyModel(t, 16, 1, "").Version(), tinyModel(t, 16, 2, "").Version()
	if len(v1) != 12 || v1 == v2 || v1 != tinyModel(t, 16, 1, "").Version() {
		t.Errorf("derived versions %q, %q", v1, v2)
	}
}

// TestModelClose: Close is final. It releases the engine at once when idle,
// or after the last request holding the model even while the model is
// still current; a closed model's requests fail (500 naming the close)
// without rebuilding the engine. A model merely swapped out and in again
// rebuilds its engine.
func TestModelClose(t *testing.T) {
	img := pngBytes(t, 16, 16)
	wantClosed := func(t *testing.T, ts *testServer, m *Model) {
		t.Helper()
		r := do(t, ts.ts.Client(), http.MethodPost, ts.predictURL(), "", "", img)
		if e := errorOf(t, r); r.status != http.StatusInternalServerError || !strings.Contains(e.Error, ErrModelClosed.Error()) {
			t.Errorf("predict on a closed model: %d %s, want 500 naming %q", r.status, r.body, ErrModelClosed)
		}
		if !m.released() || m.predCreated != 1 {
			t.Errorf("closed model: released %v, engines built %d; want true and 1 (no rebuild)", m.released(), m.predCreated)
		}
	}
	t.Run("idle", func(t *testing.T) {
		m := tinyModel(t, 16, 1, "v1")
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		if !m.released() {
			t.Fatal("Close of an idle model kept its engine")
		}
		if err := m.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		wantClosed(t, startServer(t, Config{}, m, nil), m)
	})
	t.Run("held and current", func(t *testing.T) {
		gate := newBatchGate()
		m := tinyModel(t, 16, 1, "v1")
		ts := startServer(t, Config{MaxBatch: 1}, m, gate.hook)
		t.Cleanup(gate.release)
		first := make(chan response, 1)
		go func() { first <- do(t, ts.ts.Client(), http.MethodPost, ts.predictURL(), "", "", img) }()
		recv(t, gate.entered, "the first batch")
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		if m.released() {
			t.Fatal("Close released the engine under a running batch")
		}
		gate.release()
		if r := recv(t, first, "the running request's answer"); r.status != http.StatusOK {
			t.Fatalf("request running when the model was closed: %d %s, want 200", r.status, r.body)
		}
		// Still current in ts, but closed: the last request out releases it.
		waitFor(t, "the closed model to release its engine after its last request", m.released)
		if ts.Model() != m {
			t.Fatal("the closed model is no longer current")
		}
		wantClosed(t, ts, m)
	})
	t.Run("swapped out and in again", func(t *testing.T) {
		a, b := tinyModel(t, 16, 1, "a"), tinyModel(t, 16, 2, "b")
		ts := startServer(t, Config{}, a, nil)
		ts.Swap(b)
		if !a.released() {
			t.Fatal("an idle model swapped out kept its engine")
		}
		ts.Swap(a)
		if r := do(t, ts.ts.Client(), http.MethodPost, ts.predictURL(), "", "", img); r.status != http.StatusOK {
			t.Fatalf("predict on a model swapped in again: %d %s", r.status, r.body)
		}
		if a.released() || a.predCreated != 2 {
			t.Errorf("released %v, engines built %d, want false and 2", a.released(), a.predCreated)
		}
	})
}

func TestWantsPNG(t *testing.T) {
	tests := []struct {
		accept string
		want   bool
	}{
		{"", false},
		{"*/*", false},
		{"application/json", false},
		{"image/png", true},
		{"image/*", true},
		{"image/png, */*", true},
		{"image/png;q=0.5, application/json", false},
		{"application/json;q=0.5, image/png", true},
		{"image/png;q=0", false},
		{"text/html, image/webp", false},
		{"image/png, application/json", false},
		{"bogus;;;", false},
	}
	for _, tt := range tests {
		if got := wantsPNG(tt.accept); got != tt.want {
			t.Errorf("wantsPNG(%q) = %v, want %v", tt.accept, got, tt.want)
		}
	}
}

func TestRLE(t *testing.T) {
	tests := []struct {
		name string
		mask []byte
		want []int
	}{
		{"empty", []byte{}, []int{}},
		{"one run", []byte{2, 2, 2}, []int{2, 3}},
		{"doc example", []byte{0, 0, 1, 1, 1, 1}, []int{0, 2, 1, 4}},
		{"alternating", []byte{0, 1, 0, 255}, []int{0, 1, 1, 1, 0, 1, 255, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := EncodeRLE(tt.mask)
			if fmt.Sprint(got.Counts) != fmt.Sprint(tt.want) {
				t.Fatalf("counts %v, want %v", got.Counts, tt.want)
			}
			if len(tt.mask) == 0 {
				return // no mask is 0 pixels wide: Decode rejects the size
			}
			back, err := got.Decode(len(tt.mask), 1)
			if err != nil || !bytes.Equal(back, tt.mask) {
				t.Fatalf("decode: %v %v", back, err)
			}
		})
	}
	if back, err := (RLE{[]int{0, 2, 1, 4}}).Decode(3, 2); err != nil || !bytes.Equal(back, []byte{0, 0, 1, 1, 1, 1}) {
		t.Errorf("Decode of the doc example as 3x2: %v %v", back, err)
	}
}

// TestRLEDecodeErrors: every malformed RLE or size is an ErrRLE naming what
// is wrong, never a panic, and sizes the runs do not cover allocate
// nothing (a 2^40-pixel mask would not fit in memory).
func TestRLEDecodeErrors(t *testing.T) {
	tests := []struct {
		name          string
		counts        []int
		width, height int
		want          string // in the error
	}{
		{"zero width", []int{0, 1}, 0, 1, "mask size 0x1"},
		{"zero height", []int{}, 5, 0, "mask size 5x0"},
		{"negative", []int{0, 1}, -1, 1, "mask size -1x1"},
		{"product overflows int", []int{0, 1}, 3037000500, 3037000500, "more than the"},
		{"over the pixel limit", []int{0, 1}, 1 << 20, 1 << 20, "more than the"},
		{"huge size, tiny runs", []int{0, 1}, 1 << 15, 1 << 15, "runs cover 1 pixels, the mask has 32768x32768"},
		{"odd count", []int{0}, 2, 2, "1 counts"},
		{"run of 0", []int{0, 0}, 2, 2, "run length 0"},
		{"class 256", []int{256, 1}, 2, 2, "class 256"},
		{"class -1", []int{-1, 1}, 2, 2, "class -1"},
		{"runs short", []int{0, 3}, 2, 2, "runs cover 3 pixels"},
		{"runs over", []int{0, 5}, 2, 2, "cover more than"},
		{"run sum would overflow", []int{0, 3, 1, math.MaxInt}, 2, 2, "cover more than"},
		{"no runs", []int{}, 2, 2, "runs cover 0 pixels"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			mask, err := (RLE{tt.counts}).Decode(tt.width, tt.height)
			runtime.ReadMemStats(&after)
			if !errors.Is(err, ErrRLE) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Decode(%v, %d, %d) = %d bytes, %v; want ErrRLE naming %q", tt.counts, tt.width, tt.height, len(mask), err, tt.want)
			}
			// The mask is never allocated (the "huge size" one would be
			// 1 GiB); the bound leaves room for anything else running.
			if grew := after.TotalAlloc - before.TotalAlloc; mask != nil || grew > 64<<20 {
				t.Errorf("a failed Decode returned %d bytes and allocated %d bytes", len(mask), grew)
			}
		})
	}
}
