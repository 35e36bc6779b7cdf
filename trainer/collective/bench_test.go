package collective

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

var benchSizes = []int{4 << 10, 64 << 10, 1 << 20, 8 << 20, 64 << 20}

// busbw is the bus bandwidth of an all-reduce of bytes over n ranks that
// took d, as nccl-tests reports it: algbw × 2(n−1)/n.
func busbw(bytes, n int, d time.Duration) float64 {
	return float64(bytes) / d.Seconds() * 2 * float64(n-1) / float64(n)
}

// allReduceTime is the mean time of iters all-reduces of bytes on comms.
func allReduceTime(tb testing.TB, comms []*Comm, bytes, iters int) time.Duration {
	bufs := make([][]int64, len(comms))
	for r := range bufs {
		bufs[r] = make([]int64, bytes/8)
	}
	start := time.Now()
	for i := range iters {
		errs := onEvery(comms, func(r int, c *Comm) error {
			return c.AllReduceInt64(context.Background(), Tag{Step: int64(i)}, bufs[r], Sum)
		})
		for _, err := range errs {
			if err != nil {
				tb.Fatal(err)
			}
		}
	}
	return time.Since(start) / time.Duration(iters)
}

// tcpStream is the bytes/s of one loopback TCP stream sending bytes in
// 256 KiB writes, iters times.
func tcpStream(tb testing.TB, bytes, iters int) float64 {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		io.Copy(io.Discard, c)
		c.Close()
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	buf := make([]byte, min(bytes, DefaultChunkBytes))
	start := time.Now()
	for range iters {
		for sent := 0; sent < bytes; sent += len(buf) {
			c.Write(buf[:min(len(buf), bytes-sent)])
		}
	}
	c.Close()
	<-done
	return float64(bytes*iters) / time.Since(start).Seconds()
}

// BenchmarkAllReduce reports the ring's bus bandwidth on loopback.
func BenchmarkAllReduce(b *testing.B) {
	for _, n := range []int{2, 4, 8} {
		comms := ring(b, n, nil)
		for _, size := range benchSizes {
			b.Run(fmt.Sprintf("N=%d/size=%s", n, sizeName(size)), func(b *testing.B) {
				b.SetBytes(int64(size))
				d := allReduceTime(b, comms, size, b.N)
				b.ReportMetric(busbw(size, n, d)/1e9, "busbw-GB/s")
			})
		}
	}
}

// BenchmarkTCPStream is the reference: one loopback TCP stream.
func BenchmarkTCPStream(b *testing.B) {
	for _, size := range benchSizes {
		b.Run("size="+sizeName(size), func(b *testing.B) {
			b.SetBytes(int64(size))
			b.ReportMetric(tcpStream(b, size, b.N)/1e9, "GB/s")
		})
	}
}

func sizeName(n int) string {
	if n >= 1<<20 {
		return fmt.Sprintf("%dMB", n>>20)
	}
	return fmt.Sprintf("%dKB", n>>10)
}

// TestBusBandwidthTable interleaves, over rounds, a plain TCP stream and
// ring all-reduces of 2, 4 and 8 ranks at each size, and prints a markdown
// table for BENCHMARKS.md. A benchmark, gated:
//
//	TRAINCTL_BENCH_COLLECTIVE=1 go test -run BusBandwidthTable -v ./trainer/collective/
func TestBusBandwidthTable(t *testing.T) {
	if os.Getenv("TRAINCTL_BENCH_COLLECTIVE") == "" {
		t.Skip("benchmark; set TRAINCTL_BENCH_COLLECTIVE=1")
	}
	const rounds = 3
	ranks := []int{2, 4, 8}
	rings := map[int][]*Comm{}
	for _, n := range ranks {
		rings[n] = ring(t, n, nil)
	}
	type key struct{ n, size int }
	tcp := map[int][]float64{}
	bus := map[key][]float64{}
	for range rounds {
		for _, size := range benchSizes {
			iters := max(3, (64<<20)/size/4)
			tcp[size] = append(tcp[size], tcpStream(t, size, iters))
			for _, n := range ranks {
				d := allReduceTime(t, rings[n], size, iters)
				bus[key{n, size}] = append(bus[key{n, size}], busbw(size, n, d))
			}
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n| size | ranks | busbw GB/s median (min–max) | TCP stream GB/s | busbw / TCP | latency µs |\n|---|---|---|---|---|---|\n")
	for _, size := range benchSizes {
		tm, _, _ := spread(tcp[size])
		for _, n := range ranks {
			m, lo, hi := spread(bus[key{n, size}])
			lat := float64(size) / (m * float64(n) / (2 * float64(n-1))) * 1e6
			fmt.Fprintf(&b, "| %s | %d | %.2f (%.2f–%.2f) | %.2f | %.0f%% | %.0f |\n",
				sizeName(size), n, m/1e9, lo/1e9, hi/1e9, tm/1e9, 100*m/tm, lat)
		}
	}
	t.Log(b.String())
}

// spread is the median, minimum and maximum of xs.
func spread(xs []float64) (median, lo, hi float64) {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2], s[0], s[len(s)-1]
}
