package trainer

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trainctl/trainctl/dataset"
	"github.com/trainctl/trainctl/trainer/collective"
	"github.com/trainctl/trainctl/trainer/unet"
)

// TestDataParallelThroughput measures, on this machine, UNet-S training
// (128×128, global batch 8) as 1 rank × 2 threads (exact gradients and the
// old inexact batched path) and as 2 ranks × 1 thread over a real loopback
// ring, interleaved over rounds, and prints the ratios the issue asks for
// and a scaling model for 2–64 ranks. It is a benchmark, gated:
//
//	TRAINCTL_BENCH_DP=1 go test -run DataParallelThroughput -v -timeout 30m ./trainer/
func TestDataParallelThroughput(t *testing.T) {
	if os.Getenv("TRAINCTL_BENCH_DP") == "" {
		t.Skip("benchmark; set TRAINCTL_BENCH_DP=1")
	}
	rounds := 4
	v := shapes128(t, 40)
	variants := []struct {
		name             string
		ranks, threads   int
		inexact          bool
		imagesPerSec     []float64
		allreduceSeconds []float64
	}{
		{name: "1 rank x 2 threads, exact", ranks: 1, threads: 2},
		{name: "1 rank x 2 threads, inexact (old path)", ranks: 1, threads: 2, inexact: true},
		{name: "2 ranks x 1 thread, exact, loopback ring", ranks: 2, threads: 1},
	}
	for r := range rounds {
		for i := range variants {
			vr := &variants[i]
			ips := runDP(t, v, vr.ranks, vr.threads, vr.inexact)
			vr.imagesPerSec = append(vr.imagesPerSec, ips)
			t.Logf("round %d: %s: %.2f images/s", r+1, vr.name, ips)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n| variant | images/s median (min–max) over %d rounds |\n|---|---|\n", rounds)
	med := make([]float64, len(variants))
	for i, vr := range variants {
		m, lo, hi := spread(vr.imagesPerSec)
		med[i] = m
		fmt.Fprintf(&b, "| %s | %.2f (%.2f–%.2f) |\n", vr.name, m, lo, hi)
	}
	fmt.Fprintf(&b, "\nexactness overhead (inexact / exact step time - 1): %+.1f%%\n", (med[1]/med[0]-1)*100)
	fmt.Fprintf(&b, "2 ranks x 1 thread vs 1 rank x 2 threads: %.3fx\n", med[2]/med[0])

	// The scaling model: per-image compute of one 1-thread rank from the
	// 2-rank run, the all-reduce of the int64 gradient over N ranks on a
	// link of the given speed (ring: 2(N-1)/N of the bytes per rank, 2(N-1)
	// hops of latency), no overlap assumed (a lower bound on efficiency).
	perImage := 2 / med[2] // seconds per image per rank at 1 thread
	bytes := float64(unet.NumParams(unet.DefaultConfig())+64) * 8
	const batch = 256
	fmt.Fprintf(&b, "\nscaling model, global batch %d, %.3f s per image per rank, %.1f MB all-reduced per step (int64):\n\n", batch, perImage, bytes/1e6)
	fmt.Fprintf(&b, "| ranks | 1 Gbit/s step s (eff.) | 10 Gbit/s step s (eff.) | 100 Gbit/s step s (eff.) |\n|---|---|---|---|\n")
	links := []struct{ bw, lat float64 }{{1e9 / 8 * 0.9, 50e-6}, {10e9 / 8 * 0.9, 20e-6}, {100e9 / 8 * 0.9, 10e-6}}
	for _, n := range []int{2, 4, 8, 16, 32, 64} {
		fmt.Fprintf(&b, "| %d |", n)
		for _, l := range links {
			compute := float64(batch/n) * perImage
			ar := 2*float64(n-1)/float64(n)*bytes/l.bw + 2*float64(n-1)*l.lat
			step := compute + ar
			fmt.Fprintf(&b, " %.3f (%.0f%%) |", step, 100*compute/step)
		}
		b.WriteString("\n")
	}
	t.Log(b.String())
}

// runDP trains UNet-S on v for a few steps as ranks ranks of threads
// threads each and returns the global images/s of the steps after the
// first two (the first calibrates the gradient scales).
func runDP(t *testing.T, v *dataset.Version, ranks, threads int, inexact bool) float64 {
	t.Helper()
	const steps = 8
	comms := ringOnLoopback(t, ranks)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		times []time.Time
		errs  = make([]error, ranks)
	)
	for r := range ranks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cfg := TrainConfig{
				Model: unet.DefaultConfig(), Batch: 8, MaxSteps: steps, Seed: 1, Threads: threads,
				InexactGrads: inexact, SkipFinalEval: true,
			}
			if comms != nil {
				cfg.Collective = comms[r]
			}
			if r == 0 {
				cfg.OnStep = func(Progress) {
					mu.Lock()
					times = append(times, time.Now())
					mu.Unlock()
				}
			}
			_, errs[r] = Train(context.Background(), v, cfg)
		}()
	}
	wg.Wait()
	for _, c := range comms {
		c.Close()
	}
	for r, err := range errs {
		if err != nil {
			t.Fatalf("rank %d: %v", r, err)
		}
	}
	if len(times) != steps {
		t.Fatalf("%d steps reported, want %d", len(times), steps)
	}
	return float64(8*(steps-2)) / times[steps-1].Sub(times[1]).Seconds()
}

// ringOnLoopback connects n ranks over 127.0.0.1 (nil for one rank).
func ringOnLoopback(t *testing.T, n int) []*collective.Comm {
	t.Helper()
	if n == 1 {
		return nil
	}
	lns := make([]net.Listener, n)
	peers := make([]string, n)
	for i := range lns {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns[i], peers[i] = ln, ln.Addr().String()
	}
	secret := make([]byte, 32)
	rand.Read(secret)
	comms := make([]*collective.Comm, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for r := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			comms[r], errs[r] = collective.New(context.Background(), collective.Config{
				Rank: r, Size: n, Peers: peers, Listener: lns[r], Secret: secret, Session: "bench/attempt-1",
			})
		}()
	}
	wg.Wait()
	for r, err := range errs {
		if err != nil {
			t.Fatalf("rank %d: %v", r, err)
		}
	}
	return comms
}

// shapes128 registers n generated 128×128 shapes examples (UNet-S's input)
// and opens the version.
func shapes128(t *testing.T, n int) *dataset.Version {
	t.Helper()
	store, err := dataset.OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg := dataset.ShapesConfig{N: n, Size: 128, Seed: 1}
	ctx := context.Background()
	if _, _, err := store.Register(ctx, "shapes", cfg.Meta(), func(yield func(dataset.Example) error) (dataset.Provenance, error) {
		return dataset.Provenance{Source: cfg.Source()}, dataset.GenerateShapes(ctx, cfg, yield)
	}); err != nil {
		t.Fatal(err)
	}
	v, _, err := store.Open("shapes")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	return v
}

// spread is the median, minimum and maximum of xs.
func spread(xs []float64) (median, lo, hi float64) {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2], s[0], s[len(s)-1]
}
