package gemm

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// shape is one multiply to check.
type shape struct {
	m, n, k int
	pad     int // added to every leading dimension
}

// testShapes covers degenerate sizes, primes, and sizes either side of
// every kernel's MR/NR and of the KC/MC/NC blocking.
func testShapes() []shape {
	return []shape{
		{1, 1, 1, 0}, {1, 1, 1, 3}, {2, 3, 4, 0}, {7, 13, 29, 0}, {7, 13, 29, 5},
		{4, 4, 4, 0}, {5, 5, 5, 1}, {6, 16, 8, 0}, {7, 17, 9, 2},
		{15, 15, 15, 0}, {16, 16, 16, 0}, {17, 17, 17, 0}, {16, 16, 16, 3},
		{12, 32, 40, 0}, {31, 33, 7, 0}, {33, 31, 65, 1}, {48, 48, 48, 0},
		{1, 300, 3, 0}, {300, 1, 3, 0}, {3, 5, 600, 0},
		{16, 64, 27, 0}, {27, 64, 16, 0}, {16, 27, 64, 0},
		{100, 37, 255, 0}, {37, 100, 256, 0}, {65, 70, 257, 1}, {61, 67, 513, 0},
		{257, 40, 30, 0}, {255, 41, 31, 2}, {513, 19, 11, 0},
		{3, 4100, 5, 0}, {5, 4097, 17, 1}, {19, 2049, 9, 0},
	}
}

func randMatrix(r *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	return x
}

// checkClose compares got against want with a relative tolerance that grows
// with the depth k of the dot products.
func checkClose(t *testing.T, got, want []float32, m, n, ldc, k int) {
	t.Helper()
	tol := float64(k+4) * 6e-8 * 4
	bad := 0
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			g, w := float64(got[i*ldc+j]), float64(want[i*ldc+j])
			// Scale by the size of the summed terms, estimated as |w|
			// plus a term for cancellation.
			scale := math.Abs(w) + math.Sqrt(float64(k)) + 1
			if d := math.Abs(g - w); !(d <= tol*scale) {
				if bad < 5 {
					t.Errorf("C[%d,%d] = %g, want %g (diff %g, tol %g)", i, j, g, w, d, tol*scale)
				}
				bad++
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d elements wrong", bad, m*n)
	}
}

// engines returns every kernel this machine runs, with 1 and 2 threads.
// With tiny set, the cache blocks shrink to a few tiles (kc 8 or 9, two MR
// rows, two NR columns) so that small shapes cross every block boundary.
func engines(t testing.TB, tiny bool) []*Engine {
	var es []*Engine
	for _, k := range Kernels() {
		for _, threads := range []int{1, 2} {
			e, err := NewWithKernel(threads, k)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(e.Close)
			// Split even the smallest multiplies, into many blocks.
			e.e.minPar, e.e.minCols, e.e.minRows = 0, 1, 1
			if tiny {
				ks := &e.e.kern
				ks.kc = 8 + threads - 1
				ks.mc = 2 * ks.mr
				ks.nc = 2 * ks.nr
				ks.l2Floats = 3 * ks.nr * ks.kc
				ks.aResFloats = 5 * ks.mr * ks.kc
			}
			es = append(es, e)
		}
	}
	return es
}

// TestSgemm checks every kernel, thread count, transpose combination,
// alpha and beta against Reference, with the production cache blocking and
// with tiny blocks.
func TestSgemm(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, tiny := range []bool{false, true} {
		for _, e := range engines(t, tiny) {
			testEngine(t, r, e, tiny)
		}
	}
}

func testEngine(t *testing.T, r *rand.Rand, e *Engine, tiny bool) {
	shapes := testShapes()
	if tiny && testing.Short() {
		shapes = shapes[:20]
	}
	for _, s := range shapes {
		{
			for _, tr := range [][2]bool{{false, false}, {true, false}, {false, true}, {true, true}} {
				for _, alpha := range []float32{1, 0.5} {
					for _, beta := range []float32{0, 1, 0.25} {
						name := fmt.Sprintf("%s/t%d/tiny=%v/%dx%dx%d+%d/tA=%v,tB=%v/a=%g,b=%g", e.Kernel(), e.Threads(), tiny, s.m, s.n, s.k, s.pad, tr[0], tr[1], alpha, beta)
						t.Run(name, func(t *testing.T) {
							runCase(t, r, e, s, tr[0], tr[1], alpha, beta)
						})
					}
				}
			}
		}
	}
}

func runCase(t *testing.T, r *rand.Rand, e *Engine, s shape, transA, transB bool, alpha, beta float32) {
	m, n, k := s.m, s.n, s.k
	ar, ac := m, k
	if transA {
		ar, ac = k, m
	}
	br, bc := k, n
	if transB {
		br, bc = n, k
	}
	lda, ldb, ldc := ac+s.pad, bc+s.pad, n+s.pad
	a := randMatrix(r, (ar-1)*lda+ac)
	b := randMatrix(r, (br-1)*ldb+bc)
	c := randMatrix(r, (m-1)*ldc+n)
	if beta == 0 {
		for i := range c {
			c[i] = float32(math.NaN())
		}
	}
	want := append([]float32(nil), c...)
	Reference(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, want, ldc)
	e.Sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
	checkClose(t, c, want, m, n, ldc, k)
	// The padding between rows of C must be untouched.
	for i := 0; i < m-1; i++ {
		for j := n; j < ldc; j++ {
			if math.Float32bits(c[i*ldc+j]) != math.Float32bits(want[i*ldc+j]) {
				t.Fatalf("padding C[%d,%d] changed", i, j)
			}
		}
	}
}
