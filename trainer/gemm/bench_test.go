package gemm

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// benchShape is a multiply the trainer does, named after the layer.
type benchShape struct {
	name           string
	transA, transB bool
	m, n, k        int
}

// benchShapes are UNet-S convolutions as im2col GEMMs (forward, weight
// gradient dW = dOut·colᵀ, column gradient dCol = Wᵀ·dOut) and two squares.
func benchShapes() []benchShape {
	return []benchShape{
		{"conv16x16@128_fwd", false, false, 16, 128 * 128, 16 * 9},
		{"conv16x16@128_dW", false, true, 16, 16 * 9, 128 * 128},
		{"conv16x16@128_dCol", true, false, 16 * 9, 128 * 128, 16},
		{"conv64x64@32_fwd", false, false, 64, 32 * 32, 64 * 9},
		{"conv64x64@32_dW", false, true, 64, 64 * 9, 32 * 32},
		{"conv64x64@32_dCol", true, false, 64 * 9, 32 * 32, 64},
		{"conv256x256@8b32_fwd", false, false, 256, 64 * 32, 256 * 9},
		{"conv256x256@8b32_dW", false, true, 256, 256 * 9, 64 * 32},
		{"conv256x256@8b32_dCol", true, false, 256 * 9, 64 * 32, 256},
		{"square512", false, false, 512, 512, 512},
		{"square1024", false, false, 1024, 1024, 1024},
		{"square1024TT", true, true, 1024, 1024, 1024},
	}
}

func BenchmarkSgemm(b *testing.B) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, s := range benchShapes() {
		a := randMatrix(r, s.m*s.k)
		bm := randMatrix(r, s.k*s.n)
		c := randMatrix(r, s.m*s.n)
		lda, ldb := s.k, s.n
		if s.transA {
			lda = s.m
		}
		if s.transB {
			ldb = s.k
		}
		for _, k := range Kernels() {
			for _, threads := range []int{1, 2} {
				b.Run(fmt.Sprintf("%s/%s/t%d", s.name, k, threads), func(b *testing.B) {
					e, err := NewWithKernel(threads, k)
					if err != nil {
						b.Fatal(err)
					}
					defer e.Close()
					e.Sgemm(s.transA, s.transB, s.m, s.n, s.k, 1, a, lda, bm, ldb, 0, c, s.n)
					for b.Loop() {
						e.Sgemm(s.transA, s.transB, s.m, s.n, s.k, 1, a, lda, bm, ldb, 0, c, s.n)
					}
					flops := 2 * float64(s.m) * float64(s.n) * float64(s.k)
					b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
				})
			}
		}
	}
}
