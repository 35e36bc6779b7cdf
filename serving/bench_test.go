package serving_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/trainctl/trainctl/serving"
	"github.com/trainctl/trainctl/trainer"
	"github.com/trainctl/trainctl/trainer/unet"
)

// BenchmarkServe is the serving load benchmark: UNet-S (the default 128×128
// configuration, untrained weights, which cost the same as trained ones)
// behind a real HTTP server on loopback, driven by 1, 4 or 16 closed-loop
// clients that each send one 128×128 PNG at a time and wait for its PNG mask,
// with dynamic batching on (MaxBatch 8, MaxWait 5 ms) and off (MaxBatch 1).
// Each sub-benchmark runs b.N requests in all and reports their p50 and p99
// latency, the requests per second, the mean forward-pass batch size, and
// the CPU cores the process used (to tell a contended run).
//
//	go test -run '^$' -bench Serve -benchtime 10s ./serving/
func BenchmarkServe(b *testing.B) {
	ckpt := webCheckpoint(b, unet.DefaultConfig(), []string{"pet", "background", "border"})
	img := webPNG(b, 128, 128)
	modes := []struct {
		name     string
		maxBatch int
	}{
		{"batching=off", 1},
		{"batching=on", 8},
	}
	for _, mode := range modes {
		for _, clients := range []int{1, 4, 16} {
			b.Run(fmt.Sprintf("%s/clients=%d", mode.name, clients), func(b *testing.B) {
				benchServe(b, ckpt, img, mode.maxBatch, clients)
			})
		}
	}
}

// benchServe runs b.N predict requests from clients concurrent clients
// against a fresh server with the given MaxBatch.
func benchServe(b *testing.B, ckpt *trainer.Checkpoint, img []byte, maxBatch, clients int) {
	threads := runtime.GOMAXPROCS(0)
	m, err := serving.NewModel(ckpt, "bench", threads, maxBatch)
	if err != nil {
		b.Fatalf("NewModel: %v", err)
	}
	reg := prometheus.NewRegistry()
	s, err := serving.New(serving.Config{
		Name:       "unet-s",
		MaxBatch:   maxBatch,
		MaxWait:    5 * time.Millisecond,
		QueueSize:  64,
		Threads:    threads,
		Logger:     slog.New(slog.DiscardHandler),
		Registerer: reg,
	})
	if err != nil {
		b.Fatalf("serving.New: %v", err)
	}
	s.Swap(m)
	ctx, cancel := context.WithCancel(b.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	ts := httptest.NewServer(s.Handler())
	defer func() {
		ts.Close()
		cancel()
		if err := <-done; err != nil {
			b.Errorf("Run: %v", err)
		}
		s.Swap(nil) // releases the model's engine
	}()
	tr := &http.Transport{MaxIdleConnsPerHost: clients}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	url := ts.URL + "/v1/models/unet-s:predict"

	// Warm up: open every client's connection and build the engine.
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			if err := benchRequest(ctx, client, url, img); err != nil {
				b.Errorf("warm-up request: %v", err)
			}
		})
	}
	wg.Wait()
	if b.Failed() {
		return
	}
	batchesBefore, imagesBefore := benchBatches(b, reg)

	lat := make([][]time.Duration, clients)
	var next atomic.Int64
	b.ResetTimer()
	cpuStart := benchCPUTime(b)
	start := time.Now()
	for c := range clients {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				t0 := time.Now()
				if err := benchRequest(ctx, client, url, img); err != nil {
					b.Errorf("request: %v", err)
					next.Store(int64(b.N)) // stop every client
					return
				}
				lat[c] = append(lat[c], time.Since(t0))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu := benchCPUTime(b) - cpuStart
	b.StopTimer()

	all := slices.Concat(lat...)
	slices.Sort(all)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(benchPercentile(all, 0.50)), "p50-ms")
	b.ReportMetric(ms(benchPercentile(all, 0.99)), "p99-ms")
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "req/s")
	// The cores the process kept busy (client and server together): well
	// under GOMAXPROCS means it waited, or other work had the CPU.
	b.ReportMetric(cpu.Seconds()/elapsed.Seconds(), "cpus")
	batches, images := benchBatches(b, reg)
	if n := batches - batchesBefore; n > 0 {
		b.ReportMetric((images-imagesBefore)/n, "images/batch")
	}
}

// benchCPUTime is the user and system CPU time the process has used.
func benchCPUTime(b *testing.B) time.Duration {
	b.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchBatches reads the server's batch-size histogram: how many forward
// passes ran and how many images they held.
func benchBatches(b *testing.B, reg *prometheus.Registry) (batches, images float64) {
	b.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		b.Fatalf("gather metrics: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "trainctl_serving_batch_size" {
			continue
		}
		for _, m := range mf.GetMetric() {
			h := m.GetHistogram()
			batches += float64(h.GetSampleCount())
			images += h.GetSampleSum()
		}
	}
	return batches, images
}

// benchRequest posts img and reads the whole PNG mask back.
func benchRequest(ctx context.Context, client *http.Client, url string, img []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(img))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "image/png")
	req.Header.Set("Accept", "image/png")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("read mask: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d: %s", resp.StatusCode, body)
	}
	return nil
}

// benchPercentile is the p-quantile (0..1) of sorted durations, nearest rank.
func benchPercentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p*float64(len(sorted))+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}
