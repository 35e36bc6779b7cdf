package gemm

import "unsafe"

// packPanels packs a rows×kc view X of src into panels of w rows, as the
// micro-kernels read them: panel q holds dst[q*w*kc + p*w + r] =
// alpha*X(q*w+r, p), zero for q*w+r >= rows. X(r, p) is src[off+p*ld+r] when
// contig (the w rows of one depth p are adjacent in memory) and
// src[off+r*ld+p] otherwise (each row is contiguous along p, so packing is a
// transpose). simd enables the AVX routines for the common full panels.
//
// For A, rows are the rows of op(A) (contig when transA); for B, rows are the
// columns of op(B) (contig unless transB).
func packPanels(dst, src []float32, off, ld int, contig bool, rows, kc, w int, alpha float32, simd bool) {
	q0 := 0
	if simd && contig && w == 16 && rows >= 16 && kc > 0 {
		// Whole panels row by row: the source is read sequentially.
		q0 = rows / 16
		packRows16(&dst[0], &src[off], kc, ld, q0, alpha)
	}
	for q, r0 := q0, q0*w; r0 < rows; q, r0 = q+1, r0+w {
		valid := min(w, rows-r0)
		panel := dst[q*w*kc : (q+1)*w*kc]
		if contig {
			packContigGo(panel, src, off+r0, ld, valid, kc, w, alpha)
			continue
		}
		r := 0
		if simd && kc >= 8 {
			kc8 := kc / 8
			switch {
			case w%8 == 0:
				for ; r+8 <= valid; r += 8 {
					packT8(&panel[r], &src[off+(r0+r)*ld], kc8, ld, w, alpha)
				}
			case w == 6 && valid == 6:
				packT6(&panel[0], &src[off+r0*ld], kc8, ld, alpha)
				r = 6
			}
			// The depths past the last multiple of 8 for those rows.
			packStridedGo(panel[8*kc8*w:], src, off+r0*ld+8*kc8, ld, 0, r, kc-8*kc8, w, alpha)
		}
		packStridedGo(panel, src, off+r0*ld, ld, r, valid, kc, w, alpha)
		for ; valid < w; valid++ {
			for p := 0; p < kc; p++ {
				panel[p*w+valid] = 0
			}
		}
	}
}

// packContigGo packs one panel: panel[p*w+r] = alpha*src[off+p*ld+r] for
// r < valid, zero for valid <= r < w.
func packContigGo(panel, src []float32, off, ld, valid, kc, w int, alpha float32) {
	for p := 0; p < kc; p++ {
		s := src[off+p*ld : off+p*ld+valid]
		d := panel[p*w : p*w+w]
		for r, v := range s {
			d[r] = alpha * v
		}
		clear(d[valid:])
	}
}

// packStridedGo packs rows [r0, r1) of one panel: panel[p*w+r] =
// alpha*src[off+r*ld+p] for p < kc.
func packStridedGo(panel, src []float32, off, ld, r0, r1, kc, w int, alpha float32) {
	if kc == 0 {
		return
	}
	for r := r0; r < r1; r++ {
		s := src[off+r*ld : off+r*ld+kc]
		d := panel[r : r+(kc-1)*w+1]
		for p, v := range s {
			d[p*w] = alpha * v
		}
	}
}

// alignedFloats returns a zeroed slice of n float32s whose first element is
// 64-byte aligned (one cache line, one zmm register).
func alignedFloats(n int) []float32 {
	const align = 64 / 4
	buf := make([]float32, n+align)
	skip := (align - int(uintptr(unsafe.Pointer(&buf[0]))/4%align)) % align
	return buf[skip : skip+n : skip+n]
}
