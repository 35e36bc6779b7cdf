//go:build ignore

// gen_asm writes gemm_amd64.s: the AVX-512 and AVX2 micro-kernels, the
// packing helpers and the peak-FLOP loops. Run it with `go generate`.
//
// Every kernel has the Go signature
//
//	func kern(k int, a, b, c *float32, ldc int, beta float32)
//
// and computes the MR×NR tile C = A·B + beta·C (C = A·B when beta == 0,
// ignoring what C held) from an A panel packed as k groups of MR floats and
// a B panel packed as k groups of NR floats. ldc is in elements.
package main

import (
	"bytes"
	"fmt"
	"os"
)

var w bytes.Buffer

func p(format string, args ...any) { fmt.Fprintf(&w, format+"\n", args...) }

// kernZ writes an AVX-512 kernel with mr rows and nv zmm vectors (16 floats
// each) per row. The A values are broadcast straight from memory by the FMA
// (embedded broadcast) when bcst is set, else through a register.
func kernZ(name string, mr, nv, unroll int, bcst, pf bool) {
	nr := 16 * nv
	acc := func(i, v int) string { return fmt.Sprintf("Z%d", i*nv+v) }
	breg := func(v int) string { return fmt.Sprintf("Z%d", 31-v) }
	areg := fmt.Sprintf("Z%d", 31-nv)
	if mr*nv+nv+btoi(!bcst) > 32 {
		panic(name + ": too many registers")
	}
	header(name, mr, nr, pf)
	for i := 0; i < mr; i++ {
		for v := 0; v < nv; v++ {
			p("\tVPXORD %s, %s, %s", acc(i, v), acc(i, v), acc(i, v))
		}
	}
	step := func(u int) {
		for v := 0; v < nv; v++ {
			p("\tVMOVUPS %d(DX), %s", 4*(u*nr+16*v), breg(v))
		}
		for i := 0; i < mr; i++ {
			off := 4 * (u*mr + i)
			if bcst {
				for v := 0; v < nv; v++ {
					p("\tVFMADD231PS.BCST %d(SI), %s, %s", off, breg(v), acc(i, v))
				}
			} else {
				p("\tVBROADCASTSS %d(SI), %s", off, areg)
				for v := 0; v < nv; v++ {
					p("\tVFMADD231PS %s, %s, %s", areg, breg(v), acc(i, v))
				}
			}
		}
	}
	loops(name, mr, nr, unroll, pf, step)
	// Write back.
	p("\tMOVL beta+40(FP), AX")
	p("\tANDL $0x7fffffff, AX")
	p("\tJZ %s_store", name)
	p("\tVBROADCASTSS beta+40(FP), Z31")
	for i := 0; i < mr; i++ {
		for v := 0; v < nv; v++ {
			p("\tVFMADD231PS %d(DI), Z31, %s", 64*v, acc(i, v))
			p("\tVMOVUPS %s, %d(DI)", acc(i, v), 64*v)
		}
		if i < mr-1 {
			p("\tADDQ R8, DI")
		}
	}
	p("\tVZEROUPPER")
	p("\tRET")
	p("%s_store:", name)
	for i := 0; i < mr; i++ {
		for v := 0; v < nv; v++ {
			p("\tVMOVUPS %s, %d(DI)", acc(i, v), 64*v)
		}
		if i < mr-1 {
			p("\tADDQ R8, DI")
		}
	}
	p("\tVZEROUPPER")
	p("\tRET")
	p("")
}

// kernY writes an AVX2+FMA kernel with mr rows and nv ymm vectors (8 floats)
// per row.
func kernY(name string, mr, nv, unroll int, pf bool) {
	nr := 8 * nv
	acc := func(i, v int) string { return fmt.Sprintf("Y%d", i*nv+v) }
	breg := func(v int) string { return fmt.Sprintf("Y%d", 15-v) }
	areg := fmt.Sprintf("Y%d", 15-nv)
	if mr*nv+nv+1 > 16 {
		panic(name + ": too many registers")
	}
	header(name, mr, nr, pf)
	for i := 0; i < mr; i++ {
		for v := 0; v < nv; v++ {
			p("\tVXORPS %s, %s, %s", acc(i, v), acc(i, v), acc(i, v))
		}
	}
	step := func(u int) {
		for v := 0; v < nv; v++ {
			p("\tVMOVUPS %d(DX), %s", 4*(u*nr+8*v), breg(v))
		}
		for i := 0; i < mr; i++ {
			p("\tVBROADCASTSS %d(SI), %s", 4*(u*mr+i), areg)
			for v := 0; v < nv; v++ {
				p("\tVFMADD231PS %s, %s, %s", areg, breg(v), acc(i, v))
			}
		}
	}
	loops(name, mr, nr, unroll, pf, step)
	p("\tMOVL beta+40(FP), AX")
	p("\tANDL $0x7fffffff, AX")
	p("\tJZ %s_store", name)
	p("\tVBROADCASTSS beta+40(FP), Y15")
	for i := 0; i < mr; i++ {
		for v := 0; v < nv; v++ {
			p("\tVFMADD231PS %d(DI), Y15, %s", 32*v, acc(i, v))
			p("\tVMOVUPS %s, %d(DI)", acc(i, v), 32*v)
		}
		if i < mr-1 {
			p("\tADDQ R8, DI")
		}
	}
	p("\tVZEROUPPER")
	p("\tRET")
	p("%s_store:", name)
	for i := 0; i < mr; i++ {
		for v := 0; v < nv; v++ {
			p("\tVMOVUPS %s, %d(DI)", acc(i, v), 32*v)
		}
		if i < mr-1 {
			p("\tADDQ R8, DI")
		}
	}
	p("\tVZEROUPPER")
	p("\tRET")
	p("")
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func header(name string, mr, nr int, pf bool) {
	if pf {
		p("// func %s(k int, a, b, c *float32, ldc int, beta float32, pf *float32, pfRow, pfLd int)", name)
		p("// %d×%d tile; prefetches one line per k step (see prefetch).", mr, nr)
		p("TEXT ·%s(SB), NOSPLIT, $0-72", name)
		p("\tMOVQ pf+48(FP), R9")
		p("\tXORQ R10, R10")
		p("\tMOVQ pfRow+56(FP), R11")
		p("\tMOVQ pfLd+64(FP), R12")
	} else {
		p("// func %s(k int, a, b, c *float32, ldc int, beta float32)", name)
		p("// %d×%d tile.", mr, nr)
		p("TEXT ·%s(SB), NOSPLIT, $0-44", name)
	}
	p("\tMOVQ k+0(FP), CX")
	p("\tMOVQ a+8(FP), SI")
	p("\tMOVQ b+16(FP), DX")
	p("\tMOVQ c+24(FP), DI")
	p("\tMOVQ ldc+32(FP), R8")
	p("\tSHLQ $2, R8")
	// Touch the C tile early so the write-back does not wait on memory.
	p("\tMOVQ DI, AX")
	for i := 0; i < mr; i++ {
		p("\tPREFETCHT0 (AX)")
		if 4*nr > 64 {
			p("\tPREFETCHT0 %d(AX)", 4*nr-4)
		}
		if i < mr-1 {
			p("\tADDQ R8, AX")
		}
	}
}

// loops writes the k loop, unrolled by unroll (a power of two), then the
// remainder loop.
func loops(name string, mr, nr, unroll int, pf bool, body func(u int)) {
	step := func(u int) {
		body(u)
		if pf {
			prefetch(name)
		}
	}
	shift := 0
	for 1<<shift < unroll {
		shift++
	}
	p("\tMOVQ CX, BX")
	p("\tSHRQ $%d, BX", shift)
	p("\tANDQ $%d, CX", unroll-1)
	p("\tTESTQ BX, BX")
	p("\tJZ %s_tail", name)
	p("%s_loop:", name)
	for u := 0; u < unroll; u++ {
		step(u)
	}
	p("\tADDQ $%d, SI", 4*mr*unroll)
	p("\tADDQ $%d, DX", 4*nr*unroll)
	p("\tDECQ BX")
	p("\tJNZ %s_loop", name)
	p("%s_tail:", name)
	p("\tTESTQ CX, CX")
	p("\tJZ %s_done", name)
	p("%s_tailloop:", name)
	step(0)
	p("\tADDQ $%d, SI", 4*mr)
	p("\tADDQ $%d, DX", 4*nr)
	p("\tDECQ CX")
	p("\tJNZ %s_tailloop", name)
	p("%s_done:", name)
}

var labels int

// prefetch emits one software prefetch (into L2) of the next line of a
// pattern of rows: line R10 of the row at R9, rows R11 bytes long and R12
// bytes apart.
func prefetch(name string) {
	labels++
	p("\tPREFETCHT1 (R9)(R10*1)")
	p("\tADDQ $64, R10")
	p("\tCMPQ R10, R11")
	p("\tJB %s_pf%d", name, labels)
	p("\tXORQ R10, R10")
	p("\tADDQ R12, R9")
	p("%s_pf%d:", name, labels)
}

// packRows16 writes
//
//	func packRows16(dst, src *float32, kc, ld, np int, alpha float32)
//
// dst[q*16*kc+p*16+r] = alpha*src[p*ld+16*q+r] for p < kc, q < np, r < 16:
// np whole panels, reading each source row once, left to right.
func packRows16() {
	p("// func packRows16(dst, src *float32, kc, ld, np int, alpha float32)")
	p("TEXT ·packRows16(SB), NOSPLIT, $0-44")
	p("\tMOVQ dst+0(FP), DI")
	p("\tMOVQ src+8(FP), SI")
	p("\tMOVQ kc+16(FP), CX")
	p("\tMOVQ ld+24(FP), R8")
	p("\tSHLQ $2, R8")
	p("\tMOVQ np+32(FP), R9")
	p("\tVBROADCASTSS alpha+40(FP), Y15")
	p("\tMOVQ CX, R10")
	p("\tSHLQ $6, R10") // panel stride in bytes: 64*kc
	p("\tTESTQ CX, CX")
	p("\tJZ packRows16_done")
	p("\tTESTQ R9, R9")
	p("\tJZ packRows16_done")
	p("packRows16_row:")
	p("\tMOVQ SI, AX")
	p("\tMOVQ DI, BX")
	p("\tMOVQ R9, DX")
	p("packRows16_panel:")
	p("\tVMULPS (AX), Y15, Y0")
	p("\tVMULPS 32(AX), Y15, Y1")
	p("\tVMOVUPS Y0, (BX)")
	p("\tVMOVUPS Y1, 32(BX)")
	p("\tADDQ $64, AX")
	p("\tADDQ R10, BX")
	p("\tDECQ DX")
	p("\tJNZ packRows16_panel")
	p("\tADDQ R8, SI")
	p("\tADDQ $64, DI")
	p("\tDECQ CX")
	p("\tJNZ packRows16_row")
	p("packRows16_done:")
	p("\tVZEROUPPER")
	p("\tRET")
	p("")
}

// packT writes
//
//	func packT8(dst, src *float32, kc8, ld, w int, alpha float32)
//	func packT6(dst, src *float32, kc8, ld int, alpha float32)
//
// which pack rows r < rows (8 or 6) of src (row r at src+r*ld, contiguous
// along p) for p < 8*kc8 into dst[p*w+r] = alpha*src[r*ld+p] with 8×8
// transposes (w is 6 for packT6).
func packT(name string, rows int) {
	if rows == 8 {
		p("// func %s(dst, src *float32, kc8, ld, w int, alpha float32)", name)
		p("TEXT ·%s(SB), NOSPLIT, $0-44", name)
		p("\tMOVQ w+32(FP), R9")
		p("\tVBROADCASTSS alpha+40(FP), Y15")
	} else {
		p("// func %s(dst, src *float32, kc8, ld int, alpha float32)", name)
		p("TEXT ·%s(SB), NOSPLIT, $0-36", name)
		p("\tMOVQ $%d, R9", rows)
		p("\tVBROADCASTSS alpha+32(FP), Y15")
	}
	p("\tMOVQ dst+0(FP), DI")
	p("\tMOVQ src+8(FP), SI")
	p("\tMOVQ kc8+16(FP), CX")
	p("\tMOVQ ld+24(FP), R8")
	p("\tSHLQ $2, R8")
	p("\tSHLQ $2, R9")
	p("\tLEAQ (R8)(R8*2), R10") // 3 rows
	p("\tLEAQ (SI)(R8*4), R11") // row 4
	p("\tLEAQ (R9)(R9*2), R12") // 3 dst rows
	// Rows 6 and 7 stay zero for packT6 (the loop never writes Y6, Y7).
	p("\tVXORPS Y6, Y6, Y6")
	p("\tVXORPS Y7, Y7, Y7")
	p("\tTESTQ CX, CX")
	p("\tJZ %s_done", name)
	p("%s_loop:", name)
	p("\tVMOVUPS (SI), Y0")
	p("\tVMOVUPS (SI)(R8*1), Y1")
	p("\tVMOVUPS (SI)(R8*2), Y2")
	p("\tVMOVUPS (SI)(R10*1), Y3")
	p("\tVMOVUPS (R11), Y4")
	p("\tVMOVUPS (R11)(R8*1), Y5")
	if rows == 8 {
		p("\tVMOVUPS (R11)(R8*2), Y6")
		p("\tVMOVUPS (R11)(R10*1), Y7")
	}
	// t = unpack pairs of rows.
	p("\tVUNPCKLPS Y1, Y0, Y8")
	p("\tVUNPCKHPS Y1, Y0, Y9")
	p("\tVUNPCKLPS Y3, Y2, Y10")
	p("\tVUNPCKHPS Y3, Y2, Y11")
	p("\tVUNPCKLPS Y5, Y4, Y12")
	p("\tVUNPCKHPS Y5, Y4, Y13")
	p("\tVUNPCKLPS Y7, Y6, Y14")
	p("\tVUNPCKHPS Y7, Y6, Y0")
	// s = 4-row groups.
	p("\tVSHUFPS $0x44, Y10, Y8, Y1")  // a0b0c0d0 | a4..
	p("\tVSHUFPS $0xEE, Y10, Y8, Y2")  // a1..      | a5..
	p("\tVSHUFPS $0x44, Y11, Y9, Y3")  // a2..      | a6..
	p("\tVSHUFPS $0xEE, Y11, Y9, Y4")  // a3..      | a7..
	p("\tVSHUFPS $0x44, Y14, Y12, Y5") // e0f0g0h0 | e4..
	p("\tVSHUFPS $0xEE, Y14, Y12, Y8") // e1..
	p("\tVSHUFPS $0x44, Y0, Y13, Y9")  // e2..
	p("\tVSHUFPS $0xEE, Y0, Y13, Y10") // e3..
	// Columns p+0..p+7, in Y11 Y12 Y13 Y14 then Y0 Y1 Y2 Y3 after the
	// lane permutes.
	p("\tVPERM2F128 $0x20, Y5, Y1, Y11")
	p("\tVPERM2F128 $0x31, Y5, Y1, Y0")
	p("\tVPERM2F128 $0x20, Y8, Y2, Y12")
	p("\tVPERM2F128 $0x31, Y8, Y2, Y1")
	p("\tVPERM2F128 $0x20, Y9, Y3, Y13")
	p("\tVPERM2F128 $0x31, Y9, Y3, Y2")
	p("\tVPERM2F128 $0x20, Y10, Y4, Y14")
	p("\tVPERM2F128 $0x31, Y10, Y4, Y3")
	cols := []string{"Y11", "Y12", "Y13", "Y14", "Y0", "Y1", "Y2", "Y3"}
	for _, r := range cols {
		p("\tVMULPS %s, Y15, %s", r, r)
	}
	p("\tLEAQ (DI)(R9*4), BX")
	addr := []string{"(DI)", "(DI)(R9*1)", "(DI)(R9*2)", "(DI)(R12*1)", "(BX)", "(BX)(R9*1)", "(BX)(R9*2)", "(BX)(R12*1)"}
	for q, r := range cols {
		if rows == 8 {
			p("\tVMOVUPS %s, %s", r, addr[q])
			continue
		}
		// Six floats: the low four, then two from the high lane.
		x := "X" + r[1:]
		p("\tVMOVUPS %s, %s", x, addr[q])
		p("\tVEXTRACTF128 $1, %s, %s", r, x)
		p("\tVMOVQ %s, 16%s", x, addr[q])
	}
	p("\tLEAQ (BX)(R9*4), DI")
	p("\tADDQ $32, SI")
	p("\tADDQ $32, R11")
	p("\tDECQ CX")
	p("\tJNZ %s_loop", name)
	p("%s_done:", name)
	p("\tVZEROUPPER")
	p("\tRET")
	p("")
}

// peak writes loops of independent register-only FMAs: 12 accumulators so
// that latency is hidden, no memory traffic.
func peak(name, reg string) {
	p("// func %s(n int)", name)
	p("TEXT ·%s(SB), NOSPLIT, $0-8", name)
	p("\tMOVQ n+0(FP), CX")
	for i := 0; i < 14; i++ {
		p("\tVXORPS %s%d, %s%d, %s%d", reg, i, reg, i, reg, i)
	}
	p("\tTESTQ CX, CX")
	p("\tJZ %s_done", name)
	p("%s_loop:", name)
	for i := 0; i < 12; i++ {
		p("\tVFMADD231PS %s12, %s13, %s%d", reg, reg, reg, i)
	}
	p("\tDECQ CX")
	p("\tJNZ %s_loop", name)
	p("%s_done:", name)
	p("\tVZEROUPPER")
	p("\tRET")
	p("")
}

func main() {
	p("// Code generated by gen_asm.go; DO NOT EDIT.")
	p("")
	p("//go:build amd64")
	p("")
	p(`#include "textflag.h"`)
	p("")
	for _, k := range kernelsZ {
		kernZ(k.name, k.mr, k.nv, k.unroll, k.bcst, false)
		kernZ(k.name+"pf", k.mr, k.nv, k.unroll, k.bcst, true)
	}
	for _, k := range kernelsY {
		kernY(k.name, k.mr, k.nv, k.unroll, false)
		kernY(k.name+"pf", k.mr, k.nv, k.unroll, true)
	}
	packRows16()
	packT("packT8", 8)
	packT("packT6", 6)
	p("// func spinPause()")
	p("TEXT ·spinPause(SB), NOSPLIT, $0-0")
	p("\tPAUSE")
	p("\tRET")
	p("")
	peak("peakZ", "Z")
	peak("peakY", "Y")
	if err := os.WriteFile("gemm_amd64.s", w.Bytes(), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// kspec is one kernel to generate: mr rows by nv vectors, the k loop
// unrolled unroll times, A broadcast from memory by the FMA when bcst.
type kspec struct {
	name   string
	mr, nv int
	unroll int
	bcst   bool
}

// kernelsZ are the AVX-512 kernels. Measured on a Zen 4 core with panels in
// L1 (kc 256), 16×16, 24×16, 28×16, 14×32, 12×32, 8×32 and 6×64 tiles all
// ran at 105-111 GFLOP/s, within noise of each other and of the 114 GFLOP/s
// register-only FMA peak (Zen 4 runs a zmm FMA as two 256-bit halves, so a
// few accumulators hide the latency and loads are not the bottleneck).
// 16×16 is kept because the trainer's M and N (channels, channels·9,
// pixels) are multiples of 16, so it wastes no lanes or rows, and because
// the A values come from embedded broadcasts (one FMA per row, no shuffle).
var kernelsZ = []kspec{
	{"kernZ16x16", 16, 1, 4, true},
}

// kernelsY are the AVX2+FMA kernels: 6×16 uses 12 of the 16 ymm registers
// as accumulators, two for B and one for the broadcast A value.
var kernelsY = []kspec{
	{"kernY6x16", 6, 2, 4, false},
}
