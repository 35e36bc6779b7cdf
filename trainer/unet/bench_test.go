package unet

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/trainctl/trainctl/trainer/gemm"
)

// BenchmarkUNetSTrainStep is one training step of UNet-S (forward, loss,
// backward; no optimizer) at batch 8 on two threads.
func BenchmarkUNetSTrainStep(b *testing.B) {
	for _, batchSize := range []int{8} {
		b.Run(fmt.Sprintf("b%d", batchSize), func(b *testing.B) {
			m, x, labels := benchModel(b, batchSize)
			cpu := cpuTime()
			for b.Loop() {
				m.Forward(x, batchSize)
				m.LossAndBackward(labels, batchSize)
			}
			reportImages(b, batchSize, cpu)
		})
	}
}

// BenchmarkUNetSForward is the forward pass of UNet-S at batch 1 and 8 on
// two threads.
func BenchmarkUNetSForward(b *testing.B) {
	for _, batchSize := range []int{1, 8} {
		b.Run(fmt.Sprintf("b%d", batchSize), func(b *testing.B) {
			m, x, _ := benchModel(b, batchSize)
			cpu := cpuTime()
			for b.Loop() {
				m.Forward(x, batchSize)
			}
			reportImages(b, batchSize, cpu)
		})
	}
}

// reportImages reports images/s and, because the benchmark box is shared,
// the process's CPU seconds per op since cpu0: on an idle box about twice
// the wall time per op with two threads.
func reportImages(b *testing.B, batchSize int, cpu0 time.Duration) {
	b.ReportMetric(float64(b.N*batchSize)/b.Elapsed().Seconds(), "images/s")
	b.ReportMetric((cpuTime()-cpu0).Seconds()/float64(b.N), "cpu-s/op")
}

// cpuTime is the user and system CPU time of the process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func benchModel(b *testing.B, batchSize int) (*Model, []float32, []uint8) {
	eng := gemm.New(2)
	m, err := New(DefaultConfig(), eng, batchSize)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(m.Close)
	m.Init(1)
	x, labels := batch(m.Config, batchSize, 1)
	return m, x, labels
}
