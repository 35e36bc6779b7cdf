package trainer

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math"
	"math/bits"
	"sync"

	"github.com/trainctl/trainctl/trainer/collective"
	"github.com/trainctl/trainctl/trainer/unet"
)

// The exact gradient of a step (docs/architecture.md, "Data-parallel
// training"): every example's gradient is computed on its own (the model
// runs one example at a time), quantised per parameter tensor to int64
// fixed point and summed. Integer addition is associative, so the sum is
// the same however the step's examples are split across ranks and in
// whatever order the ring adds them: N ranks end with the weights of one,
// bit for bit.

const (
	// headroomBits is how far below the overflow bound the largest
	// per-example gradient of the previous step is placed.
	headroomBits = 16
	// lossFracBits is the fixed-point scale of the per-example losses.
	lossFracBits = 40
	// bucketElems is the all-reduce unit of the gradient (2 MiB of int64).
	bucketElems = 256 << 10
	// defaultScale is the scale of a tensor whose gradient has never been
	// anything but zero.
	defaultScale = 30
)

// Extra slots after the gradient in exactGrads.acc.
const (
	slotLoss      = iota // sum of the per-example losses, lossFracBits
	slotSaturated        // values that hit the bound: recompute the step
	slotNonFinite        // NaN or infinite gradients or losses: diverged
	numSlots
)

// exactGrads holds the fixed-point accumulator of a step and the scales.
type exactGrads struct {
	views   []unet.ParamView
	parts   [][2]int // tensor ranges [lo, hi) handled by one goroutine each
	scale   []int    // per tensor: q = trunc(g · 2^scale)
	ready   bool     // scale holds a previous step's (else calibrate)
	acc     []int64  // gradient sums, then the slots
	maxBits []int64  // per tensor: max |g| as float32 bits (this rank, then all)
	limit   float64  // |q| bound: 2^(62 - ceil(log2 batch))
	lb      int
	layout  uint64
}

// newExactGrads sizes the accumulator for views and a global batch of at
// most batch examples, split across threads goroutines.
func newExactGrads(views []unet.ParamView, batch, threads int) *exactGrads {
	p := 0
	if n := len(views); n > 0 {
		p = views[n-1].Offset + views[n-1].Size()
	}
	lb := bits.Len(uint(batch - 1)) // ceil(log2 batch)
	e := &exactGrads{
		views: views, scale: make([]int, len(views)), acc: make([]int64, p+numSlots),
		maxBits: make([]int64, len(views)), limit: math.Ldexp(1, 62-lb), lb: lb,
	}
	for i := range e.scale {
		e.scale[i] = defaultScale
	}
	e.parts = splitTensors(views, p, threads)
	h := fnv.New64a()
	var b [8]byte
	for _, v := range views {
		binary.LittleEndian.PutUint64(b[:], uint64(v.Size()))
		h.Write(b[:])
	}
	binary.LittleEndian.PutUint64(b[:], uint64(batch))
	h.Write(b[:])
	e.layout = h.Sum64()
	return e
}

// splitTensors groups consecutive tensors into about threads parts of
// similar size.
func splitTensors(views []unet.ParamView, total, threads int) [][2]int {
	threads = max(threads, 1)
	var parts [][2]int
	lo, size := 0, 0
	for i, v := range views {
		size += v.Size()
		if size*threads >= total*(len(parts)+1) || i == len(views)-1 {
			parts = append(parts, [2]int{lo, i + 1})
			lo = i + 1
		}
	}
	return parts
}

// reset empties the accumulator for a step.
func (e *exactGrads) reset() {
	clear(e.acc)
	clear(e.maxBits)
}

// add accumulates one example's gradient and loss; calibrating only
// records the maxima.
func (e *exactGrads) add(grads []float32, loss float64, calibrating bool) {
	p := len(e.acc) - numSlots
	if math.IsNaN(loss) || math.IsInf(loss, 0) {
		e.acc[p+slotNonFinite]++
	} else {
		e.acc[p+slotLoss] += int64(loss * (1 << lossFracBits))
	}
	if len(e.parts) == 1 { // a replica's own accumulator: no hand-off
		sat, nonf := e.addTensors(grads, e.parts[0][0], e.parts[0][1], calibrating)
		e.acc[p+slotSaturated] += sat
		e.acc[p+slotNonFinite] += nonf
		return
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		sat  int64
		nonf int64
	)
	for _, part := range e.parts {
		wg.Go(func() {
			s, n := e.addTensors(grads, part[0], part[1], calibrating)
			mu.Lock()
			sat, nonf = sat+s, nonf+n
			mu.Unlock()
		})
	}
	wg.Wait()
	e.acc[p+slotSaturated] += sat
	e.acc[p+slotNonFinite] += nonf
}

// addTensors quantises tensors [lo, hi) of grads into the accumulator and
// returns the saturated and non-finite counts.
func (e *exactGrads) addTensors(grads []float32, lo, hi int, calibrating bool) (sat, nonFinite int64) {
	for t := lo; t < hi; t++ {
		v := e.views[t]
		gs := grads[v.Offset : v.Offset+v.Size()]
		acc := e.acc[v.Offset : v.Offset+v.Size()]
		m := math.Ldexp(1, e.scale[t])
		mx := uint32(e.maxBits[t])
		for i, g := range gs {
			b := math.Float32bits(g) & 0x7fffffff
			if b >= 0x7f800000 {
				nonFinite++
				continue
			}
			mx = max(mx, b)
			if calibrating {
				continue
			}
			x := float64(g) * m
			if x > e.limit || x < -e.limit {
				sat++
				x = math.Copysign(e.limit, x)
			}
			acc[i] += int64(x)
		}
		e.maxBits[t] = int64(mx)
	}
	return sat, nonFinite
}

// reduce sums the accumulator (in buckets) and takes the maxima across
// the ranks; calibrating exchanges the maxima only. With no collective it
// does nothing: the one rank holds the whole sum.
func (e *exactGrads) reduce(ctx context.Context, c Collective, step int64, calibrating bool) error {
	if c == nil || c.Size() == 1 {
		return nil
	}
	if !calibrating {
		for i, lo := 0, 0; lo < len(e.acc); i, lo = i+1, lo+bucketElems {
			hi := min(lo+bucketElems, len(e.acc))
			if err := c.AllReduceInt64(ctx, collective.Tag{Step: step, Bucket: i, Layout: e.layout}, e.acc[lo:hi], collective.Sum); err != nil {
				return fmt.Errorf("all-reduce bucket %d: %w", i, err)
			}
		}
	}
	if err := c.AllReduceInt64(ctx, collective.Tag{Step: step, Bucket: -1, Layout: e.layout}, e.maxBits, collective.Max); err != nil {
		return fmt.Errorf("all-reduce gradient maxima: %w", err)
	}
	return nil
}

// slot returns one of the accumulator's extra slots.
func (e *exactGrads) slot(i int) int64 { return e.acc[len(e.acc)-numSlots+i] }

// rescale sets every tensor's scale from the maxima just reduced, so that
// the largest per-example value sits headroomBits below the bound.
func (e *exactGrads) rescale() {
	for t, b := range e.maxBits {
		mx := float64(math.Float32frombits(uint32(b)))
		if mx == 0 {
			continue
		}
		_, exp := math.Frexp(mx) // mx < 2^exp
		e.scale[t] = 62 - e.lb - headroomBits - exp
	}
	e.ready = true
}

// gradients writes the mean gradient over the step's n examples into dst
// and returns the mean loss.
func (e *exactGrads) gradients(dst []float32, n int) float64 {
	for t, v := range e.views {
		f := math.Ldexp(1, -e.scale[t]) / float64(n)
		acc := e.acc[v.Offset : v.Offset+v.Size()]
		out := dst[v.Offset : v.Offset+v.Size()]
		for i, q := range acc {
			out[i] = float32(float64(q) * f)
		}
	}
	return float64(e.slot(slotLoss)) / (1 << lossFracBits) / float64(n)
}

// restore takes a checkpoint's scales (none: calibrate on the first step).
func (e *exactGrads) restore(scales []int) error {
	if len(scales) == 0 {
		return nil
	}
	if len(scales) != len(e.scale) {
		return fmt.Errorf("%w: the checkpoint has %d gradient scales, the model %d tensors", ErrResume, len(scales), len(e.scale))
	}
	for _, s := range scales {
		if s < -1100 || s > 1100 {
			return fmt.Errorf("%w: gradient scale %d out of range", ErrResume, s)
		}
	}
	copy(e.scale, scales)
	e.ready = true
	return nil
}

// scales returns the scales to save, nil before the first step.
func (e *exactGrads) scales() []int {
	if !e.ready {
		return nil
	}
	return append([]int(nil), e.scale...)
}
