package nn

import (
	"runtime"
	"sync"

	"github.com/trainctl/trainctl/trainer/gemm"
)

// Ctx is what every layer kernel runs with: the GEMM engine, a fixed set of
// helper goroutines for the element-wise kernels, and the workspaces: im2col
// columns, transposed weights, loss partial sums. A Ctx is not safe for
// concurrent use, and one kernel runs at a time.
type Ctx struct {
	gemm    *gemm.Engine
	threads int
	grain   int       // least work per part; minGrain except in tests
	cols    []float32 // im2col columns and transposed-conv GEMM outputs
	wt      []float32 // transposed 3×3 kernels of Conv3x3Backward
	loss    []float64

	helpers *helpers

	// Argument blocks of the parallel kernels, kept here so that handing
	// them to the helpers does not allocate.
	im2col  im2colArgs
	relu    reluArgs
	reluBwd reluBwdArgs
	pool    poolArgs
	poolBwd poolBwdArgs
	up      upArgs
	bias    biasArgs
	biasBwd biasBwdArgs
	smax    softmaxArgs
}

// helpers are the goroutines a Ctx hands parts of a loop to. They do not
// reference the Ctx, so a Ctx dropped without Close is still collected, and
// its helpers then stopped.
type helpers struct {
	jobs []chan job // one per helper
	wg   sync.WaitGroup
	once sync.Once
}

func (h *helpers) stop() {
	h.once.Do(func() {
		for _, ch := range h.jobs {
			close(ch)
		}
	})
}

// job is one part of a parallel loop handed to a helper goroutine.
type job struct {
	body   ranger
	lo, hi int
}

// ranger is the body of a parallel loop: run processes items [lo, hi).
type ranger interface {
	run(lo, hi int)
}

// NewCtx returns a Ctx that runs GEMMs on eng, splits element-wise kernels
// across threads goroutines (the caller's plus threads-1 helpers; threads < 1
// means 1), and owns workspaces of colFloats floats for im2col columns and
// weightFloats for transposed weights. Size them with Conv3x3Workspace and
// ConvT2x2Workspace for the largest layer: the column workspace must hold one
// image row of every layer, and a larger one lets a GEMM cover more rows.
// Close stops the helpers.
func NewCtx(eng *gemm.Engine, threads, colFloats, weightFloats int) *Ctx {
	if threads < 1 {
		threads = 1
	}
	c := &Ctx{gemm: eng, threads: threads, grain: minGrain, cols: make([]float32, colFloats), wt: make([]float32, weightFloats), loss: make([]float64, lossChunks)}
	h := &helpers{jobs: make([]chan job, threads-1)}
	c.helpers = h
	for i := range h.jobs {
		ch := make(chan job)
		h.jobs[i] = ch
		go func() {
			for j := range ch {
				j.body.run(j.lo, j.hi)
				h.wg.Done()
			}
		}()
	}
	if threads > 1 {
		runtime.AddCleanup(c, (*helpers).stop, h)
	}
	return c
}

// Close stops the helper goroutines; it is idempotent. The Ctx must not be
// used afterwards.
func (c *Ctx) Close() { c.helpers.stop() }

// Threads is the number of goroutines the element-wise kernels split across.
func (c *Ctx) Threads() int { return c.threads }

// ColFloats is the size of the column workspace in floats.
func (c *Ctx) ColFloats() int { return len(c.cols) }

// minGrain is the least work (in elements touched) worth handing to a helper:
// below it the hand-off (a few microseconds) costs more than it saves.
const minGrain = 1 << 15

// parallel runs body over items [0, n) split into contiguous parts, one per
// thread, where each item costs about cost elements of work. It runs inline
// when the total is small. Parts never change the result: bodies write
// disjoint outputs.
func (c *Ctx) parallel(n, cost int, body ranger) {
	parts := c.threads
	if p := n * cost / c.grain; p < parts {
		parts = p
	}
	if parts > n {
		parts = n
	}
	if parts <= 1 {
		body.run(0, n)
		return
	}
	h := c.helpers
	h.wg.Add(parts - 1)
	for i := 1; i < parts; i++ {
		h.jobs[i-1] <- job{body: body, lo: n * i / parts, hi: n * (i + 1) / parts}
	}
	body.run(0, n/parts)
	h.wg.Wait()
}
