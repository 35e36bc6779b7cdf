package gemm

import (
	"sync"
	"sync/atomic"
	"time"
)

// parallelFlops is the work (2·m·n·k) below which a multiply runs on the
// calling goroutine alone: about 20µs of one core, several times what
// handing blocks to a spinning worker and collecting them costs.
const parallelFlops = 1 << 21

// wakeFlops is the work above which a multiply wakes parked workers. A
// parked worker starts late and slowly (and on a virtual machine its wake-up
// can land on the caller's own vCPU for a while), so a smaller multiply is
// shared only with workers still spinning after the previous one.
const wakeFlops = 1 << 24

// maxThreads caps an Engine's threads (the block counter has 16 bits).
const maxThreads = 1024

// Over-decomposition: when C is large enough, it is cut into up to
// blocksPerThread blocks per thread, taken dynamically, so that a thread
// delayed by the OS (or by another process on its core) is covered by the
// others. A block keeps at least minBlockCols columns or minBlockRows rows
// (the packing it repeats stays a few percent of its work).
const (
	blocksPerThread = 3
	minBlockCols    = 256
	minBlockRows    = 128
)

// packCost weighs one packed element against one FLOP when choosing how to
// split C between threads (a packed element costs a load, a store and
// usually a shuffle, a few FLOP-times at peak).
const packCost = 8

// engine is the state behind an Engine; worker goroutines reference it, not
// the Engine, so a forgotten Engine can still be collected.
type engine struct {
	threads int
	kern    kernelSpec
	minPar  float64       // parallelFlops; tests lower it
	minCols int           // minBlockCols; tests lower it
	minRows int           // minBlockRows; tests lower it
	spin    time.Duration // spinWait; benchmarks vary it
	ws      []workspace   // one per thread
	workers []worker      // threads 1.. (the caller is thread 0)
	seq     atomic.Uint64 // jobs handed to the workers so far
	claim   atomic.Uint64 // seq<<32 | blocks<<16 | next block to take
	doneN   atomic.Int32  // blocks of the current job finished
	done    chan struct{} // capacity 1: whoever finishes the last block says so
	stopped sync.Once
	closed  atomic.Bool // set by stop: multiply on the calling goroutine only
	job     job         // the multiply in progress; written before seq moves
}

// job is one Sgemm call, split into a tm×tn grid of C blocks that the
// threads take in turn.
type job struct {
	transA, transB bool
	m, n, k        int
	alpha, beta    float32
	a, b, c        []float32
	lda, ldb, ldc  int
	tm, tn         int
}

// workspace is one thread's packing buffers and edge tile.
type workspace struct {
	a, b []float32 // packed A block (mc×kc), packed B block (kc×nc)
	tile []float32 // mr×nr scratch for tiles that overhang C
}

func newInner(threads int, k kernelSpec) *engine {
	in := &engine{
		threads: threads, kern: k, ws: make([]workspace, threads),
		minPar: parallelFlops, minCols: minBlockCols, minRows: minBlockRows, spin: spinWait,
	}
	for t := range in.ws {
		in.ws[t].tile = alignedFloats(k.mr * k.nr)
	}
	if threads > 1 {
		in.done = make(chan struct{}, 1)
		in.workers = make([]worker, threads-1)
		for t := 1; t < threads; t++ {
			w := &in.workers[t-1]
			w.wake = make(chan struct{}, 1)
			go in.work(t, w)
		}
	}
	return in
}

func (in *engine) sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	j := &in.job
	j.transA, j.transB, j.m, j.n, j.k, j.alpha, j.beta = transA, transB, m, n, k, alpha, beta
	j.a, j.b, j.c, j.lda, j.ldb, j.ldc = a, b, c, lda, ldb, ldc
	j.tm, j.tn = 1, 1
	flops := 2 * float64(m) * float64(n) * float64(k)
	if in.threads > 1 && flops >= in.minPar && !in.closed.Load() {
		j.tm, j.tn = in.grid(m, n, k)
	}
	blocks := j.tm * j.tn
	nt := 1
	if blocks > 1 {
		nt = in.threads
	}
	// Size every workspace for the largest block plan (blocks differ by at
	// most one panel per side, which can change the plan).
	var aFloats, bFloats int
	for blk := 0; blk < blocks; blk++ {
		m0, m1, n0, n1 := in.part(blk)
		pl := in.plan(m1-m0, n1-n0, k)
		aFloats, bFloats = max(aFloats, pl.aFloats), max(bFloats, pl.bFloats)
	}
	for t := 0; t < nt; t++ {
		in.ws[t].ensure(aFloats, bFloats)
	}
	if nt == 1 {
		in.block(&in.ws[0], 0)
	} else {
		seq := in.dispatch(blocks, flops >= wakeFlops)
		in.run(0, seq, false)
		in.wait()
	}
	// Drop the references to the caller's matrices.
	j.a, j.b, j.c = nil, nil, nil
}

// grid picks how many blocks to cut the rows (tm) and columns (tn) of C
// into. It first takes the split into at most threads blocks that minimises
// the largest block's work: its FLOPs plus its packing (each block packs
// its own A rows and B columns). Then, where blocks stay large, it cuts the
// columns further (each cut repacks A) or else the rows (each cut repacks
// B), up to blocksPerThread blocks per thread.
func (in *engine) grid(m, n, k int) (tm, tn int) {
	tm, tn = in.staticGrid(m, n, k)
	ks := &in.kern
	mp, np := ceilDiv(m, ks.mr), ceilDiv(n, ks.nr)
	for f := blocksPerThread; f > 1; f-- {
		if tn*f <= np && ceilDiv(np, tn*f)*ks.nr >= in.minCols {
			return tm, tn * f
		}
		if tm*f <= mp && ceilDiv(mp, tm*f)*ks.mr >= in.minRows {
			return tm * f, tn
		}
	}
	return tm, tn
}

// staticGrid is the best split of C into at most threads blocks.
func (in *engine) staticGrid(m, n, k int) (tm, tn int) {
	ks := &in.kern
	mp, np := ceilDiv(m, ks.mr), ceilDiv(n, ks.nr)
	best := -1.0
	tm, tn = 1, 1
	for bm := 1; bm <= in.threads && bm <= mp; bm++ {
		for bn := 1; bm*bn <= in.threads && bn <= np; bn++ {
			rows := float64(ceilDiv(mp, bm) * ks.mr)
			cols := float64(ceilDiv(np, bn) * ks.nr)
			nBlocks := float64(ceilDiv(ceilDiv(np, bn)*ks.nr, ks.nc))
			cost := 2*rows*cols*float64(k) + packCost*float64(k)*(rows*nBlocks+cols)
			if best < 0 || cost < best {
				best, tm, tn = cost, bm, bn
			}
		}
	}
	return tm, tn
}

// part returns the rows [m0, m1) and columns [n0, n1) of C in block blk of
// the current job: whole MR×NR panels, split evenly.
func (in *engine) part(blk int) (m0, m1, n0, n1 int) {
	j := &in.job
	ks := &in.kern
	mp, np := ceilDiv(j.m, ks.mr), ceilDiv(j.n, ks.nr)
	ti, tj := blk/j.tn, blk%j.tn
	m0 = ti * mp / j.tm * ks.mr
	m1 = min((ti+1)*mp/j.tm*ks.mr, j.m)
	n0 = tj * np / j.tn * ks.nr
	n1 = min((tj+1)*np/j.tn*ks.nr, j.n)
	return m0, m1, n0, n1
}

// plan is how one thread blocks its part of a job.
type plan struct {
	// aResident: all of the thread's rows of op(A), every depth, are packed
	// once up front (they fit one A block and a few hundred KiB), so B can
	// be cut into small, L2-sized blocks without repacking A for each one.
	aResident bool
	nc        int // columns per packed B block
	aFloats   int // packed A buffer
	bFloats   int // packed B buffer
}

// plan returns the blocking for a thread computing rows×cols of C at depth k.
func (in *engine) plan(rows, cols, k int) plan {
	ks := &in.kern
	kc := min(ks.kc, k)
	rowsUp := roundUp(rows, ks.mr)
	p := plan{nc: ks.nc, aFloats: roundUp(min(ks.mc, rows), ks.mr) * kc}
	if rows <= ks.mc && rowsUp*k <= ks.aResFloats {
		// A packed B block is then used by one A block only: keep it in L2.
		p.aResident = true
		p.aFloats = rowsUp * k
		p.nc = min(ks.nc, max(ks.nr, ks.l2Floats/kc/ks.nr*ks.nr))
	}
	p.bFloats = kc * roundUp(min(p.nc, cols), ks.nr)
	return p
}

// run is thread t's share of job seq: it takes blocks of C until none is
// left. It reads nothing of the job before it holds a block, so a worker
// that comes late (the others took every block, the caller may have moved
// on to the next job) leaves it alone.
//
// A worker that was parked (cold) first takes a block only while at least
// two are left: it woke late, and the caller finishing the last block
// itself beats waiting for a slow start.
func (in *engine) run(t int, seq uint64, cold bool) {
	for {
		w := in.claim.Load()
		blk, blocks := int(w&0xffff), int(w>>16&0xffff)
		if w>>32 != seq&0xffffffff || blk >= blocks || cold && blocks-blk < 2 {
			return
		}
		if !in.claim.CompareAndSwap(w, w+1) {
			continue
		}
		cold = false
		in.block(&in.ws[t], blk)
		if int(in.doneN.Add(1)) == blocks {
			in.done <- struct{}{}
		}
	}
}

// block computes block blk of C with the Goto loop nest: columns in
// blocks of nc, depth in blocks of kc (B packed once per block), rows in
// blocks of mc (A packed once per block, or once for all when resident),
// then the macro-kernel.
func (in *engine) block(ws *workspace, blk int) {
	j := &in.job
	ks := &in.kern
	m0, m1, n0, n1 := in.part(blk)
	pl := in.plan(m1-m0, n1-n0, j.k)
	rowsUp := roundUp(m1-m0, ks.mr)
	if pl.aResident {
		for pc := 0; pc < j.k; pc += ks.kc {
			kc := min(ks.kc, j.k-pc)
			in.packA(ws.a[rowsUp*pc:], m0, m1-m0, pc, kc)
		}
	}
	for jc := n0; jc < n1; jc += pl.nc {
		nc := min(pl.nc, n1-jc)
		for pc := 0; pc < j.k; pc += ks.kc {
			kc := min(ks.kc, j.k-pc)
			if j.transB {
				packPanels(ws.b, j.b, jc*j.ldb+pc, j.ldb, false, nc, kc, ks.nr, 1, ks.asmPack)
			} else {
				packPanels(ws.b, j.b, pc*j.ldb+jc, j.ldb, true, nc, kc, ks.nr, 1, ks.asmPack)
			}
			beta := j.beta
			if pc > 0 {
				beta = 1
			}
			// The B block packed next: fetched into L2 while the last A
			// block of this one is multiplied, if it fits there.
			var nb nextBlock
			if pc+kc < j.k {
				nb = nextBlock{jc: jc, pc: pc + kc, nc: nc, kc: min(ks.kc, j.k-pc-kc)}
			} else if jc+nc < n1 {
				nb = nextBlock{jc: jc + nc, nc: min(pl.nc, n1-jc-nc), kc: min(ks.kc, j.k)}
			}
			nb.ok = ks.prefetch && nb.nc > 0 && nb.kc*nb.nc <= ks.l2Floats
			if pl.aResident {
				in.macro(ws, ws.a[rowsUp*pc:], m1-m0, nc, kc, m0*j.ldc+jc, beta, nb)
				continue
			}
			for ic := m0; ic < m1; ic += ks.mc {
				mc := min(ks.mc, m1-ic)
				in.packA(ws.a, ic, mc, pc, kc)
				next := nextBlock{}
				if ic+mc >= m1 {
					next = nb
				}
				in.macro(ws, ws.a, mc, nc, kc, ic*j.ldc+jc, beta, next)
			}
		}
	}
}

// nextBlock is the B block a thread packs after the current one, to
// prefetch: columns [jc, jc+nc), depths [pc, pc+kc) of op(B).
type nextBlock struct {
	ok             bool
	jc, pc, nc, kc int
}

// prefetchPattern returns where the lines of panel jr of block nb start in B
// and how they are laid out (row bytes, row stride in bytes), as the
// prefetching kernels take them.
func (in *engine) prefetchPattern(nb nextBlock, jr int) (off, rowBytes, ld int) {
	j := &in.job
	if j.transB {
		// nr rows of B, each kc contiguous depths.
		return (nb.jc+jr)*j.ldb + nb.pc, roundUp(4*nb.kc, 64), 4 * j.ldb
	}
	// kc rows of B, each nr contiguous columns (one cache line for nr 16).
	return nb.pc*j.ldb + nb.jc + jr, 64, 4 * j.ldb
}

// packA packs rows [i0, i0+rows) and depths [p0, p0+kc) of alpha·op(A).
func (in *engine) packA(dst []float32, i0, rows, p0, kc int) {
	j := &in.job
	ks := &in.kern
	if j.transA {
		packPanels(dst, j.a, p0*j.lda+i0, j.lda, true, rows, kc, ks.mr, j.alpha, ks.asmPack)
	} else {
		packPanels(dst, j.a, i0*j.lda+p0, j.lda, false, rows, kc, ks.mr, j.alpha, ks.asmPack)
	}
}

// macro multiplies the packed mc×kc block of A (at a) by the packed kc×nc
// block of B into C at offset coff. The B panel (kc×nr) stays in L1 while
// the A panels stream from L2.
//
// When nb.ok, the calls for the first A panel also prefetch the next B
// block, panel by panel, so that its packing finds it in L2.
func (in *engine) macro(ws *workspace, a []float32, mc, nc, kc, coff int, beta float32, nb nextBlock) {
	ks := &in.kern
	mr, nr := ks.mr, ks.nr
	c, ldc := in.job.c, in.job.ldc
	for jr := 0; jr < nc; jr += nr {
		nrr := min(nr, nc-jr)
		bp := ws.b[jr*kc : jr*kc+nr*kc]
		for ir := 0; ir < mc; ir += mr {
			mrr := min(mr, mc-ir)
			ap := a[ir*kc : ir*kc+mr*kc]
			off := coff + ir*ldc + jr
			if mrr == mr && nrr == nr {
				if ir == 0 && nb.ok && jr < nb.nc {
					pfOff, pfRow, pfLd := in.prefetchPattern(nb, jr)
					callKernelPf(ks.id, kc, ap, bp, c[off:], ldc, beta, in.job.b[pfOff:], pfRow, pfLd)
					continue
				}
				callKernel(ks.id, kc, ap, bp, c[off:], ldc, beta)
				continue
			}
			// Overhanging tile: compute all of it into the scratch tile, then
			// merge the part that lies inside C.
			callKernel(ks.id, kc, ap, bp, ws.tile, nr, 0)
			for i := 0; i < mrr; i++ {
				src := ws.tile[i*nr : i*nr+nrr]
				dst := c[off+i*ldc : off+i*ldc+nrr]
				if beta == 0 {
					copy(dst, src)
					continue
				}
				for jj, v := range src {
					dst[jj] = v + beta*dst[jj]
				}
			}
		}
	}
}

// ensure grows the packing buffers to hold na and nb floats.
func (ws *workspace) ensure(na, nb int) {
	if len(ws.a) < na {
		ws.a = alignedFloats(na)
	}
	if len(ws.b) < nb {
		ws.b = alignedFloats(nb)
	}
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

func roundUp(a, b int) int { return ceilDiv(a, b) * b }
