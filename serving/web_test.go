package serving_test

import (
	"bytes"
	"context"
	"image"
	"image/color"
	"image/png"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/trainctl/trainctl/serving"
	"github.com/trainctl/trainctl/trainer"
	"github.com/trainctl/trainctl/trainer/gemm"
	"github.com/trainctl/trainctl/trainer/unet"
)

// webCheckpoint is an untrained (seeded) checkpoint of cfg: real weights in a
// real UNet, which is all serving needs.
func webCheckpoint(t testing.TB, cfg unet.Config, classes []string) *trainer.Checkpoint {
	t.Helper()
	m, err := unet.New(cfg, gemm.New(1), 1)
	if err != nil {
		t.Fatalf("unet.New: %v", err)
	}
	defer m.Close()
	m.Init(1)
	return &trainer.Checkpoint{
		Created: time.Now().UTC(),
		Model:   cfg,
		Input:   trainer.InputSpec{Normalize: trainer.InputNormalizeUnit},
		Classes: classes,
		Params:  append([]float32(nil), m.Params...),
	}
}

// webPNG encodes a w×h RGB gradient with a bright disc in the middle, so the
// model sees some structure.
func webPNG(t testing.TB, w, h int) []byte {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			c := color.NRGBA{R: uint8(255 * x / w), G: uint8(255 * y / h), B: 90, A: 255}
			if dx, dy := x-w/2, y-h/2; dx*dx+dy*dy < w*h/16 {
				c = color.NRGBA{R: 240, G: 230, B: 40, A: 255}
			}
			img.SetNRGBA(x, y, c)
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatalf("encode PNG: %v", err)
	}
	return buf.Bytes()
}

// webModel is a tiny untrained model with classes.
func webModel(t *testing.T, version string, classes []string) *serving.Model {
	t.Helper()
	cfg := unet.Config{InChannels: 3, Classes: len(classes), Height: 16, Width: 16, Widths: []int{4, 8}, Bottleneck: 8}
	m, err := serving.NewModel(webCheckpoint(t, cfg, classes), version, 1, 4)
	if err != nil {
		t.Fatalf("NewModel: %v", err)
	}
	return m
}

// webServer starts a serving.Server with the tiny model behind a real HTTP
// server, with the web page mounted at "/". It returns the server's URL
// and the server (to swap models).
func webServer(t *testing.T, name, version string, classes []string, maxPixels int) (string, *serving.Server) {
	t.Helper()
	m := webModel(t, version, classes)
	s, err := serving.New(serving.Config{
		Name:       name,
		MaxBatch:   4,
		MaxWait:    time.Millisecond,
		MaxPixels:  maxPixels,
		Threads:    1,
		Logger:     slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
		Registerer: prometheus.NewRegistry(),
	})
	if err != nil {
		t.Fatalf("serving.New: %v", err)
	}
	s.Swap(m)
	s.MountWebPage()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		ts.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		s.Swap(nil) // releases the model's engine
	})
	return ts.URL, s
}

func TestWebPageHandler(t *testing.T) {
	h := serving.WebPage()
	tests := []struct {
		method   string
		want     int
		wantBody bool
	}{
		{http.MethodGet, http.StatusOK, true},
		{http.MethodHead, http.StatusOK, false},
		{http.MethodPost, http.StatusMethodNotAllowed, false},
		{http.MethodDelete, http.StatusMethodNotAllowed, false},
	}
	for _, tt := range tests {
		t.Run(tt.method, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(tt.method, "/", nil))
			if rec.Code != tt.want {
				t.Fatalf("%s /: status %d, want %d", tt.method, rec.Code, tt.want)
			}
			if tt.want != http.StatusOK {
				if got := rec.Header().Get("Allow"); got != "GET, HEAD" {
					t.Errorf("Allow = %q, want %q", got, "GET, HEAD")
				}
				return
			}
			if ct := rec.Header().Get("Content-Type"); ct != "text/html; charset=utf-8" {
				t.Errorf("Content-Type = %q", ct)
			}
			csp := rec.Header().Get("Content-Security-Policy")
			for _, re := range []string{`default-src 'none'`, `script-src 'sha256-[A-Za-z0-9+/]{43}='`, `style-src 'sha256-[A-Za-z0-9+/]{43}='`, `connect-src 'self'`} {
				if !regexp.MustCompile(re).MatchString(csp) {
					t.Errorf("Content-Security-Policy %q does not match %s", csp, re)
				}
			}
			body := rec.Body.String()
			if tt.wantBody != (body != "") {
				t.Fatalf("body of %d bytes, want body: %v", len(body), tt.wantBody)
			}
			if !tt.wantBody {
				return
			}
			for _, id := range []string{`id="file"`, `id="overlay"`, `id="latency"`, `id="version"`, `id="legend"`, `id="error"`} {
				if !strings.Contains(body, id) {
					t.Errorf("page has no element with %s", id)
				}
			}
			// Nothing may come from elsewhere: the page must work offline.
			if m := regexp.MustCompile(`(?i)(src|href)\s*=\s*["']?(https?:)?//`).FindString(body); m != "" {
				t.Errorf("page loads an external resource: %q", m)
			}
		})
	}
}

// webResult is what the page shows once a prediction has finished or
// failed, read back from the DOM and the overlay canvas.
type webResult struct {
	Error   string   `json:"error"`
	Version string   `json:"version"`
	Name    string   `json:"name"`
	Latency string   `json:"latency"`
	ImageW  int      `json:"imageW"`
	ImageH  int      `json:"imageH"`
	W       int      `json:"w"`
	H       int      `json:"h"`
	Pixels  []int    `json:"pixels"` // the overlay's RGBA bytes
	Legend  []string `json:"legend"`
}

// webPoll is truthy once the page shows an error or a finished prediction
// (the version is set after the overlay has been drawn).
const webPoll = `(() => {
  const $ = (id) => document.getElementById(id);
  const err = $("error");
  const done = $("version").textContent !== "–";
  if (err.hidden && !done) return null;
  const c = $("overlay");
  const px = c.width && c.height ? Array.from(c.getContext("2d").getImageData(0, 0, c.width, c.height).data) : [];
  return {
    error: err.hidden ? "" : err.textContent,
    version: $("version").textContent, name: $("name").textContent, latency: $("latency").textContent,
    imageW: $("image").width, imageH: $("image").height, w: c.width, h: c.height, pixels: px,
    legend: Array.from($("legend").children, (li) => li.textContent),
  };
})()`

// TestWebPageBrowser drives the real page in headless Chromium against a real
// server: upload an image through the file input, and check that the mask the
// server predicts is drawn over it at half opacity, pixel for pixel, with the
// model's version and a legend; and that errors are shown.
func TestWebPageBrowser(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium not found in PATH (Debian: apt-get install chromium); the browser test needs it")
	}
	const (
		name      = "pets"
		version   = "v-web-test-1"
		maxPixels = 48 * 48
	)
	classes := []string{"pet", "background", "border"}
	url, srv := webServer(t, name, version, classes, maxPixels)

	dir := t.TempDir()
	okPNG := webPNG(t, 40, 24)
	files := map[string][]byte{
		"ok.png":       okPNG,
		"large.png":    webPNG(t, 64, 64),
		"notimage.png": []byte("this is not an image\n"),
	}
	for f, b := range files {
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The mask the server predicts for ok.png, fetched directly: the page
	// must draw exactly this.
	want := webMask(t, url, name, okPNG)

	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.NoSandbox, // root in a container has no user namespaces
		chromedp.DisableGPU,
		chromedp.Flag("disable-dev-shm-usage", true),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	browserCtx, cancelBrowser := chromedp.NewContext(allocCtx)
	defer cancelBrowser()
	if err := chromedp.Do(browserCtx); err != nil { // start the browser
		t.Fatalf("start chromium: %v", err)
	}

	tests := []struct {
		name    string
		file    string
		wantErr *regexp.Regexp // nil: a mask is drawn
	}{
		{name: "mask", file: "ok.png"},
		{name: "too many pixels", file: "large.png", wantErr: regexp.MustCompile(`^HTTP 413 image_too_large: .+`)},
		{name: "not an image", file: "notimage.png", wantErr: regexp.MustCompile(`notimage\.png is not an image`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tab, cancelTab := chromedp.NewContext(browserCtx)
			defer cancelTab()
			if err := chromedp.Do(tab,
				chromedp.Navigate(url+"/"),
				chromedp.WaitReady(chromedp.ID("file")),
				chromedp.SetUploadFiles(chromedp.ID("file"), []string{filepath.Join(dir, tt.file)}),
			); err != nil {
				t.Fatalf("open page and choose %s: %v", tt.file, err)
			}
			got, err := chromedp.Run(tab, chromedp.Poll[webResult](webPoll, chromedp.WithPollingTimeout(15*time.Second)))
			if err != nil {
				t.Fatalf("wait for the page to show a result: %v", err)
			}
			if tt.wantErr != nil {
				if !tt.wantErr.MatchString(got.Error) {
					t.Errorf("#error shows %q, want a match for %s", got.Error, tt.wantErr)
				}
				for i := 3; i < len(got.Pixels); i += 4 {
					if got.Pixels[i] != 0 {
						t.Fatalf("overlay pixel %d drawn (alpha %d) although the request failed", i/4, got.Pixels[i])
					}
				}
				return
			}
			if got.Error != "" {
				t.Fatalf("#error shows %q", got.Error)
			}
			if got.Version != version || got.Name != name {
				t.Errorf("page shows model %q version %q, want %q %q", got.Name, got.Version, name, version)
			}
			if !regexp.MustCompile(`^\d+(\.\d)? ms`).MatchString(got.Latency) {
				t.Errorf("#latency = %q, want a time in ms", got.Latency)
			}
			b := want.Bounds()
			if got.ImageW != b.Dx() || got.ImageH != b.Dy() || got.W != b.Dx() || got.H != b.Dy() {
				t.Fatalf("image canvas %d×%d, overlay %d×%d; want both %d×%d", got.ImageW, got.ImageH, got.W, got.H, b.Dx(), b.Dy())
			}
			if len(got.Pixels) != 4*b.Dx()*b.Dy() {
				t.Fatalf("overlay has %d bytes, want %d", len(got.Pixels), 4*b.Dx()*b.Dy())
			}
			for y := range b.Dy() {
				for x := range b.Dx() {
					r, g, bl, _ := want.At(x, y).RGBA()
					p := got.Pixels[4*(y*b.Dx()+x):]
					if !webNear(p[0], int(r>>8), 3) || !webNear(p[1], int(g>>8), 3) || !webNear(p[2], int(bl>>8), 3) || !webNear(p[3], 128, 4) {
						t.Fatalf("overlay pixel (%d,%d) = rgba%v, want the mask's rgb(%d,%d,%d) at alpha ≈128", x, y, p[:4], r>>8, g>>8, bl>>8)
					}
				}
			}
			t.Logf("page shows latency %q, legend %q", got.Latency, got.Legend)
			if len(got.Legend) != len(classes) {
				t.Fatalf("legend %q, want one entry per class %q", got.Legend, classes)
			}
			for i, c := range classes {
				if !strings.HasPrefix(got.Legend[i], c) || !strings.HasSuffix(got.Legend[i], "%") {
					t.Errorf("legend entry %d = %q, want %q and a percentage", i, got.Legend[i], c)
				}
			}
		})
	}

	// The page lists the model once, at load: after a hot swap to a model
	// with other classes, the legend must name the new ones.
	t.Run("legend after a hot swap", func(t *testing.T) {
		tab, cancelTab := chromedp.NewContext(browserCtx)
		defer cancelTab()
		if err := chromedp.Do(tab, chromedp.Navigate(url+"/")); err != nil {
			t.Fatalf("open page: %v", err)
		}
		listed := `(() => { const t = document.getElementById("model").textContent; return t.includes("` + version + `") ? t : null; })()`
		if _, err := chromedp.Run(tab, chromedp.Poll[string](listed, chromedp.WithPollingTimeout(15*time.Second))); err != nil {
			t.Fatalf("wait for the page to list version %s: %v", version, err)
		}
		const version2 = "v-web-test-2"
		classes2 := []string{"sky", "tree"}
		srv.Swap(webModel(t, version2, classes2))
		if err := chromedp.Do(tab, chromedp.SetUploadFiles(chromedp.ID("file"), []string{filepath.Join(dir, "ok.png")})); err != nil {
			t.Fatalf("choose ok.png: %v", err)
		}
		got, err := chromedp.Run(tab, chromedp.Poll[webResult](webPoll, chromedp.WithPollingTimeout(15*time.Second)))
		if err != nil {
			t.Fatalf("wait for the page to show a result: %v", err)
		}
		if got.Error != "" || got.Version != version2 {
			t.Fatalf("page shows error %q, version %q; want version %q", got.Error, got.Version, version2)
		}
		if len(got.Legend) != len(classes2) {
			t.Fatalf("legend %q, want one entry per class %q", got.Legend, classes2)
		}
		for i, c := range classes2 {
			if !strings.HasPrefix(got.Legend[i], c) {
				t.Errorf("legend entry %d = %q, want %q (the swapped-in model's class)", i, got.Legend[i], c)
			}
		}
	})
}

// webMask asks the server for the PNG mask of img, as the page does.
func webMask(t *testing.T, url, name string, img []byte) *image.Paletted {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url+"/v1/models/"+name+":predict", bytes.NewReader(img))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "image/png")
	req.Header.Set("Content-Type", "image/png")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("predict: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("predict: status %d, %v: %s", resp.StatusCode, err, body)
	}
	m, err := png.Decode(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("decode mask: %v", err)
	}
	p, ok := m.(*image.Paletted)
	if !ok {
		t.Fatalf("mask is a %T, want a paletted PNG", m)
	}
	return p
}

// webNear is whether a and b differ by at most tol.
func webNear(a, b, tol int) bool { return a-b <= tol && b-a <= tol }
