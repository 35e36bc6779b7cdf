package gemm

// kernelSpec describes one micro-kernel and the cache blocking tuned for it.
type kernelSpec struct {
	name   Kernel
	id     int // argument of callKernel
	mr, nr int // tile computed by one call
	// kc, mc, nc: depth of a packed panel, rows of a packed A block, columns
	// of a packed B block. mc is a multiple of mr, nc of nr.
	kc, mc, nc int
	// l2Floats is the packed B block (in floats) that fits in L2 beside an A
	// block, used when all of a thread's rows fit one A block.
	l2Floats int
	// aResFloats bounds a thread's whole packed A for it to stay packed
	// across column blocks.
	aResFloats int
	// asmPack enables the SIMD packing routines (AVX2), which need nr == 16
	// (contiguous copies) and 8 | mr or 8 | nr (transposes).
	asmPack bool
	// prefetch: the kernel has a variant that prefetches the next B block.
	prefetch bool
}

// Kernel ids for callKernel.
const (
	idGeneric = iota
	idAVX2
	idAVX512
)

// genericSpec is the portable kernel: 4×4 tiles, blocking sized for a
// typical 32 KiB L1 / 512 KiB+ L2.
func genericSpec() kernelSpec {
	return kernelSpec{name: KernelGeneric, id: idGeneric, mr: 4, nr: 4, kc: 256, mc: 128, nc: 2048, l2Floats: 32 << 10, aResFloats: 32 << 10}
}

// kernGeneric computes the 4×4 tile C = A·B + beta·C (C = A·B when
// beta == 0) from panels packed as k groups of 4: a[4p+i] = A(i,p),
// b[4p+j] = B(p,j). It works in two 2×4 strips so that the accumulators and
// operands fit the 15 usable scalar registers of amd64 without spilling.
func kernGeneric(k int, a, b, c []float32, ldc int, beta float32) {
	for h := 0; h < 2; h++ {
		c0, c1, c2, c3, d0, d1, d2, d3 := strip2x4(a[2*h:4*k], b[:4*k])
		r0 := c[2*h*ldc : 2*h*ldc+4 : 2*h*ldc+4]
		r1 := c[(2*h+1)*ldc : (2*h+1)*ldc+4 : (2*h+1)*ldc+4]
		if beta != 0 {
			c0 += beta * r0[0]
			c1 += beta * r0[1]
			c2 += beta * r0[2]
			c3 += beta * r0[3]
			d0 += beta * r1[0]
			d1 += beta * r1[1]
			d2 += beta * r1[2]
			d3 += beta * r1[3]
		}
		r0[0], r0[1], r0[2], r0[3] = c0, c1, c2, c3
		r1[0], r1[1], r1[2], r1[3] = d0, d1, d2, d3
	}
}

// strip2x4 returns rows 0 and 1 of the product of a 2-row strip of a packed
// A panel (a[4p], a[4p+1]) with a 4-column packed B panel (b[4p..4p+3]).
func strip2x4(a, b []float32) (c0, c1, c2, c3, d0, d1, d2, d3 float32) {
	for len(b) >= 4 && len(a) >= 2 {
		b0, b1, b2, b3 := b[0], b[1], b[2], b[3]
		a0, a1 := a[0], a[1]
		c0 += a0 * b0
		c1 += a0 * b1
		c2 += a0 * b2
		c3 += a0 * b3
		d0 += a1 * b0
		d1 += a1 * b1
		d2 += a1 * b2
		d3 += a1 * b3
		b = b[4:]
		if len(a) < 4 {
			break
		}
		a = a[4:]
	}
	return
}
