package gemm

import (
	"errors"
	"fmt"
	"runtime"
)

// ErrKernel is returned (wrapped) by NewWithKernel for a kernel this machine
// cannot run.
var ErrKernel = errors.New("gemm: kernel not available")

// Kernel names a micro-kernel implementation.
type Kernel string

// The micro-kernels. KernelAVX512 and KernelAVX2 exist only on amd64 CPUs
// (and operating systems) that support those instruction sets.
const (
	KernelGeneric Kernel = "generic" // portable Go, 4×4 tiles
	KernelAVX2    Kernel = "avx2"    // AVX2+FMA assembly, 6×16 tiles
	KernelAVX512  Kernel = "avx512"  // AVX-512F assembly, 16×16 tiles
)

// Kernels lists the micro-kernels this machine can run, the one New picks
// first.
func Kernels() []Kernel {
	var ks []Kernel
	for _, s := range availableKernels() {
		ks = append(ks, s.name)
	}
	return ks
}

// Engine multiplies matrices using a fixed number of threads and reusable
// packing workspaces. An Engine is not safe for concurrent use: give each
// training loop its own.
//
// With more than one thread, New starts threads-1 worker goroutines that live
// until Close (or until the Engine is garbage collected); the calling
// goroutine is the first thread. After a multiply the workers spin for up
// to 1ms, then park; parked workers are woken only for multiplies over
// 16 MFLOP (waking one costs more than it brings below that), and
// multiplies under 2 MFLOP run on the calling goroutine alone. Workspaces
// grow to the largest problem seen and are then reused, so repeated
// multiplies of a steady set of shapes do not allocate.
type Engine struct {
	e *engine
}

// New returns an Engine that splits work across threads goroutines
// (threads < 1 means 1, and at most 1024), using the fastest micro-kernel
// the CPU supports.
func New(threads int) *Engine {
	return newEngine(threads, availableKernels()[0])
}

// NewWithKernel is New with an explicit micro-kernel, for tests and
// benchmarks. It fails if the kernel is unknown or this machine cannot run it.
func NewWithKernel(threads int, k Kernel) (*Engine, error) {
	for _, s := range availableKernels() {
		if s.name == k {
			return newEngine(threads, s), nil
		}
	}
	return nil, fmt.Errorf("%w: %q (this machine has %v)", ErrKernel, k, Kernels())
}

func newEngine(threads int, k kernelSpec) *Engine {
	threads = min(max(threads, 1), maxThreads)
	in := newInner(threads, k)
	e := &Engine{e: in}
	if threads > 1 {
		// The workers reference only the inner engine, so an Engine dropped
		// without Close is still collected and its workers stopped.
		runtime.AddCleanup(e, func(in *engine) { in.stop() }, in)
	}
	return e
}

// Threads is the number of goroutines the Engine splits work across.
func (e *Engine) Threads() int { return e.e.threads }

// Kernel is the micro-kernel the Engine uses.
func (e *Engine) Kernel() Kernel { return e.e.kern.name }

// Close stops the Engine's worker goroutines. Close is idempotent; an
// Engine still works after it, on the calling goroutine only.
func (e *Engine) Close() { e.e.stop() }

// Sgemm computes C = alpha*op(A)*op(B) + beta*C where op(A) is m×k, op(B) is
// k×n and C is m×n. op(X) is X, or X transposed when transX is set; A is then
// stored k×m. lda, ldb and ldc are the row strides of A, B and C as stored.
// With beta == 0, C is overwritten and its prior contents (even NaN) ignored.
// With alpha == 0 or k == 0, A and B are not read and C becomes beta*C.
//
// The result does not depend on the Engine's thread count, bit for bit:
// every element of C is summed in the same order however the work is split.
//
// Sgemm panics if a leading dimension is smaller than the row it strides or
// a slice is too short for the matrix it holds.
func (e *Engine) Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m <= 0 || n <= 0 {
		return
	}
	checkMatrix("C", m, n, c, ldc)
	if k <= 0 || alpha == 0 {
		scaleC(m, n, beta, c, ldc)
		return
	}
	if transA {
		checkMatrix("A", k, m, a, lda)
	} else {
		checkMatrix("A", m, k, a, lda)
	}
	if transB {
		checkMatrix("B", n, k, b, ldb)
	} else {
		checkMatrix("B", k, n, b, ldb)
	}
	e.e.sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// checkMatrix panics unless x holds a rows×cols matrix with row stride ld.
func checkMatrix(name string, rows, cols int, x []float32, ld int) {
	if ld < cols {
		panic(fmt.Sprintf("gemm: %s: leading dimension %d < %d columns", name, ld, cols))
	}
	if need := (rows-1)*ld + cols; len(x) < need {
		panic(fmt.Sprintf("gemm: %s: %d elements, %d×%d with stride %d needs %d", name, len(x), rows, cols, ld, need))
	}
}

// scaleC sets C = beta*C, or 0 when beta == 0.
func scaleC(m, n int, beta float32, c []float32, ldc int) {
	for i := 0; i < m; i++ {
		row := c[i*ldc : i*ldc+n]
		switch beta {
		case 0:
			clear(row)
		case 1:
		default:
			for j := range row {
				row[j] *= beta
			}
		}
	}
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
