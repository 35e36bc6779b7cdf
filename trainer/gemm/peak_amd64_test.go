//go:build amd64

package gemm

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/cpu"
)

// BenchmarkPeak measures the machine's achievable FMA throughput: register
// only loops of independent FMAs (12 accumulators, no memory traffic), on 1
// and 2 goroutines at once. It also reports the theoretical peak at the
// clock in /proc/cpuinfo, taking 32 FLOPs per cycle per core (two 256-bit
// FMA pipes, as on AMD Zen 4; a zmm FMA occupies both): "theory-GFLOP/s".
func BenchmarkPeak(b *testing.B) {
	type loop struct {
		name  string
		ok    bool
		f     func(int)
		flops float64 // per iteration
	}
	loops := []loop{
		{"zmm", cpu.X86.HasAVX512F, peakZ, 12 * 16 * 2},
		{"ymm", cpu.X86.HasAVX2 && cpu.X86.HasFMA, peakY, 12 * 8 * 2},
	}
	mhz := cpuinfoMHz()
	const iters = 1 << 20
	for _, l := range loops {
		if !l.ok {
			continue
		}
		for _, threads := range []int{1, 2} {
			b.Run(fmt.Sprintf("%s/t%d", l.name, threads), func(b *testing.B) {
				for b.Loop() {
					var wg sync.WaitGroup
					for range threads {
						wg.Go(func() { l.f(iters) })
					}
					wg.Wait()
				}
				b.ReportMetric(l.flops*iters*float64(threads)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
				if mhz > 0 {
					b.ReportMetric(float64(threads)*mhz/1e3*32, "theory-GFLOP/s")
				}
			})
		}
	}
}

// cpuinfoMHz is the first "cpu MHz" of /proc/cpuinfo, or 0.
func cpuinfoMHz() float64 {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == "cpu MHz" {
			mhz, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return mhz
		}
	}
	return 0
}
