package gemm

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestPackPanels checks the packing routines (SIMD and Go) against their
// definition, for full and partial panels and every kernel's panel width.
func TestPackPanels(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	tests := []struct {
		contig   bool
		rows, kc int
		w        int
	}{
		{true, 16, 8, 16}, {true, 33, 7, 16}, {true, 15, 3, 16}, {true, 64, 19, 16},
		{false, 16, 8, 16}, {false, 16, 17, 16}, {false, 40, 31, 16}, {false, 9, 64, 16},
		{false, 7, 5, 16}, {false, 24, 24, 8},
		{true, 13, 9, 6}, {false, 13, 9, 6}, {true, 9, 5, 4}, {false, 9, 5, 4},
	}
	for _, tc := range tests {
		for _, simd := range []bool{false, true} {
			if simd && !availableKernels()[0].asmPack {
				continue
			}
			name := fmt.Sprintf("contig=%v/%dx%d/w%d/simd=%v", tc.contig, tc.rows, tc.kc, tc.w, simd)
			t.Run(name, func(t *testing.T) {
				ld := tc.rows + 3
				if !tc.contig {
					ld = tc.kc + 3
				}
				src := randMatrix(r, 2+tc.rows*ld+tc.kc*ld)
				np := ceilDiv(tc.rows, tc.w)
				dst := make([]float32, np*tc.w*tc.kc)
				for i := range dst {
					dst[i] = float32(math.NaN())
				}
				const alpha = 0.5
				packPanels(dst, src, 2, ld, tc.contig, tc.rows, tc.kc, tc.w, alpha, simd)
				for q := 0; q < np; q++ {
					for p := 0; p < tc.kc; p++ {
						for i := 0; i < tc.w; i++ {
							row := q*tc.w + i
							var want float32
							if row < tc.rows {
								if tc.contig {
									want = alpha * src[2+p*ld+row]
								} else {
									want = alpha * src[2+row*ld+p]
								}
							}
							if got := dst[q*tc.w*tc.kc+p*tc.w+i]; got != want {
								t.Fatalf("panel %d depth %d row %d = %g, want %g", q, p, i, got, want)
							}
						}
					}
				}
			})
		}
	}
}

// TestThreadsBitwise checks that the thread count does not change a single
// bit of the result (blocks are cut at tile boundaries and every element is
// summed in the same order), which exact resume on another machine needs.
func TestThreadsBitwise(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	for _, k := range Kernels() {
		for _, tiny := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/tiny=%v", k, tiny), func(t *testing.T) {
				var es []*Engine
				for _, threads := range []int{1, 2, 3} {
					e, err := NewWithKernel(threads, k)
					if err != nil {
						t.Fatal(err)
					}
					defer e.Close()
					e.e.minPar, e.e.minCols, e.e.minRows = 0, 1, 1
					if tiny {
						ks := &e.e.kern
						ks.kc, ks.mc, ks.nc = 8, 2*ks.mr, 2*ks.nr
					}
					es = append(es, e)
				}
				const m, n, kk = 61, 83, 300
				a, b := randMatrix(r, m*kk), randMatrix(r, kk*n)
				c0 := randMatrix(r, m*n)
				var want []float32
				for _, e := range es {
					c := append([]float32(nil), c0...)
					e.Sgemm(false, true, m, n, kk, 0.5, a, kk, b, kk, 0.25, c, n)
					if want == nil {
						want = c
						continue
					}
					for i := range c {
						if math.Float32bits(c[i]) != math.Float32bits(want[i]) {
							t.Fatalf("threads %d: C[%d] = %g, threads 1: %g", e.Threads(), i, c[i], want[i])
						}
					}
				}
			})
		}
	}
}

// TestScaleOnly checks that alpha == 0 or k == 0 leaves C = beta*C without
// reading A or B (NaN there must not leak into C).
func TestScaleOnly(t *testing.T) {
	nan := float32(math.NaN())
	tests := []struct {
		name  string
		k     int
		alpha float32
		beta  float32
		want  float32 // every element of C, which starts at 2
	}{
		{"alpha0-beta0", 3, 0, 0, 0},
		{"alpha0-beta1", 3, 0, 1, 2},
		{"alpha0-beta.25", 3, 0, 0.25, 0.5},
		{"k0-beta0", 0, 1, 0, 0},
		{"k0-beta.5", 0, 1, 0.5, 1},
	}
	e := New(2)
	defer e.Close()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := []float32{nan, nan, nan, nan, nan, nan}
			b := []float32{nan, nan, nan, nan, nan, nan, nan, nan, nan}
			c := []float32{2, 2, 2, 2, 2, 2}
			e.Sgemm(false, false, 2, 3, tc.k, tc.alpha, a, max(tc.k, 1), b, 3, tc.beta, c, 3)
			for i, v := range c {
				if v != tc.want {
					t.Fatalf("C[%d] = %g, want %g", i, v, tc.want)
				}
			}
		})
	}
}

// TestSgemmPanics checks that bad strides and short slices are refused
// before anything is read or written.
func TestSgemmPanics(t *testing.T) {
	buf := make([]float32, 100)
	tests := []struct {
		name                   string
		m, n, k, lda, ldb, ldc int
		la, lb, lc             int
	}{
		{"lda<k", 4, 4, 4, 3, 4, 4, 100, 100, 100},
		{"ldb<n", 4, 4, 4, 4, 3, 4, 100, 100, 100},
		{"ldc<n", 4, 4, 4, 4, 4, 3, 100, 100, 100},
		{"short A", 4, 4, 4, 4, 4, 4, 15, 100, 100},
		{"short B", 4, 4, 4, 4, 4, 4, 100, 15, 100},
		{"short C", 4, 4, 4, 4, 4, 4, 100, 100, 15},
	}
	e := New(1)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("no panic")
				}
			}()
			e.Sgemm(false, false, tc.m, tc.n, tc.k, 1, buf[:tc.la], tc.lda, buf[:tc.lb], tc.ldb, 0, buf[:tc.lc], tc.ldc)
		})
	}
}

// TestNoAllocs checks that a warmed-up Engine multiplies without allocating,
// on one thread and on two.
func TestNoAllocs(t *testing.T) {
	if testing.CoverMode() != "" || raceEnabled {
		t.Skip("instrumented build")
	}
	r := rand.New(rand.NewPCG(7, 8))
	const m, n, k = 70, 300, 90
	a, b, c := randMatrix(r, m*k), randMatrix(r, k*n), randMatrix(r, m*n)
	for _, e := range engines(t, false) {
		for _, tr := range [][2]bool{{false, false}, {true, true}} {
			t.Run(fmt.Sprintf("%s/t%d/%v", e.Kernel(), e.Threads(), tr), func(t *testing.T) {
				lda, ldb := k, n
				if tr[0] {
					lda = m
				}
				if tr[1] {
					ldb = k
				}
				e.Sgemm(tr[0], tr[1], m, n, k, 1, a, lda, b, ldb, 0, c, n)
				allocs := testing.AllocsPerRun(20, func() {
					e.Sgemm(tr[0], tr[1], m, n, k, 1, a, lda, b, ldb, 0.5, c, n)
				})
				if allocs != 0 {
					t.Fatalf("%v allocations per Sgemm", allocs)
				}
			})
		}
	}
}

// TestKernels checks kernel selection.
func TestKernels(t *testing.T) {
	ks := Kernels()
	if len(ks) == 0 || ks[len(ks)-1] != KernelGeneric {
		t.Fatalf("Kernels() = %v, want the generic kernel last", ks)
	}
	e := New(0)
	defer e.Close()
	if e.Kernel() != ks[0] || e.Threads() != 1 {
		t.Fatalf("New(0): kernel %s threads %d, want %s 1", e.Kernel(), e.Threads(), ks[0])
	}
	if _, err := NewWithKernel(1, "avx9000"); !errors.Is(err, ErrKernel) {
		t.Fatalf("NewWithKernel(avx9000): %v, want ErrKernel", err)
	}
}

// workers counts the worker goroutines of all Engines.
func workers() int {
	buf := make([]byte, 1<<20)
	return strings.Count(string(buf[:runtime.Stack(buf, true)]), "gemm.(*engine).work(")
}

// waitWorkers waits until exactly n worker goroutines exist.
func waitWorkers(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for workers() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d worker goroutines, want %d", workers(), n)
		}
		runtime.Gosched()
	}
}

// TestClose checks that New starts threads-1 workers and Close stops them
// (Close may be repeated, and the Engine still works, on one goroutine).
func TestClose(t *testing.T) {
	waitWorkers(t, 0) // the Engines of other tests are closed
	e := New(4)
	waitWorkers(t, 3)
	e.Close()
	e.Close()
	waitWorkers(t, 0)
	c := make([]float32, 64*64)
	ones := make([]float32, 64*64)
	for i := range ones {
		ones[i] = 1
	}
	e.Sgemm(false, false, 64, 64, 64, 1, ones, 64, ones, 64, 0, c, 64)
	if c[0] != 64 || c[len(c)-1] != 64 {
		t.Fatalf("Sgemm after Close: C[0] = %g, want 64", c[0])
	}
}

// TestDroppedEngine checks that the workers of an Engine that is dropped
// without Close stop once it is garbage collected.
func TestDroppedEngine(t *testing.T) {
	waitWorkers(t, 0)
	func() {
		e := New(3)
		c := make([]float32, 1)
		e.Sgemm(false, false, 1, 1, 1, 1, []float32{2}, 1, []float32{3}, 1, 0, c, 1)
	}()
	deadline := time.Now().Add(5 * time.Second)
	for workers() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d workers still running", workers())
		}
		runtime.GC()
		runtime.Gosched()
	}
}

func ExampleEngine_Sgemm() {
	e := New(1)
	defer e.Close()
	a := []float32{1, 2, 3, 4, 5, 6} // 2×3
	b := []float32{1, 0, 0, 1, 1, 1} // 3×2
	c := make([]float32, 4)          // 2×2
	e.Sgemm(false, false, 2, 2, 3, 1, a, 3, b, 2, 0, c, 2)
	fmt.Println(c)
	// Output: [4 5 10 11]
}
