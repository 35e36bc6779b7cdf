// Package gemm is the single-precision matrix multiply under every
// convolution of the trainer engine.
//
// All matrices are row-major float32 slices with explicit leading dimensions,
// as in BLAS's cblas_sgemm with CblasRowMajor. Engine is the fast path (packed
// panels, cache blocking, assembly micro-kernels chosen at run time, work split
// across cores); Reference is a plain triple loop that tests compare against.
package gemm

// Engine multiplies matrices using a fixed number of threads and reusable
// packing workspaces. An Engine is not safe for concurrent use: give each
// training loop its own.
type Engine struct {
	threads int
}

// New returns an Engine that splits work across threads goroutines
// (threads < 1 means 1).
func New(threads int) *Engine {
	if threads < 1 {
		threads = 1
	}
	return &Engine{threads: threads}
}

// Threads is the number of goroutines the Engine splits work across.
func (e *Engine) Threads() int { return e.threads }

// Sgemm computes C = alpha*op(A)*op(B) + beta*C where op(A) is m×k, op(B) is
// k×n and C is m×n. op(X) is X, or X transposed when transX is set; A is then
// stored k×m. lda, ldb and ldc are the row strides of A, B and C as stored.
// With beta == 0, C is overwritten and its prior contents (even NaN) ignored.
func (e *Engine) Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	Reference(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// Reference is the unoptimised definition of Sgemm, kept for tests and as
// the oracle for the fast kernels.
func Reference(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s float32
			for p := 0; p < k; p++ {
				var av, bv float32
				if transA {
					av = a[p*lda+i]
				} else {
					av = a[i*lda+p]
				}
				if transB {
					bv = b[j*ldb+p]
				} else {
					bv = b[p*ldb+j]
				}
				s += av * bv
			}
			if beta == 0 {
				c[i*ldc+j] = alpha * s
			} else {
				c[i*ldc+j] = alpha*s + beta*c[i*ldc+j]
			}
		}
	}
}
