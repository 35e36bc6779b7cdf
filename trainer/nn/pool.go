package nn

import "math"

// MaxPool2x2Forward computes the 2×2, stride 2 max pooling of in, planes
// planes of h×w (h and w even; planes = channels·images), into out, planes of
// (h/2)×(w/2), and records in argmax which of the four inputs won (0 top left,
// 1 top right, 2 bottom left, 3 bottom right; the first on ties).
func MaxPool2x2Forward(c *Ctx, out []float32, argmax []uint8, in []float32, planes, h, w int) {
	checkLen("maxpool in", in, planes*h*w)
	checkLen("maxpool out", out, planes*h*w/4)
	if len(argmax) < planes*h*w/4 || h%2 != 0 || w%2 != 0 {
		panic("nn: maxpool: bad argmax length or odd size")
	}
	a := &c.pool
	*a = poolArgs{out: out, in: in, argmax: argmax, w: w}
	c.parallel(planes*h/2, 2*w, a)
	*a = poolArgs{}
}

type poolArgs struct {
	out, in []float32
	argmax  []uint8
	w       int
}

// run pools output rows [lo, hi), counted over all planes.
func (a *poolArgs) run(lo, hi int) {
	w, ow := a.w, a.w/2
	for r := lo; r < hi; r++ {
		top := a.in[2*r*w : (2*r+1)*w]
		bot := a.in[(2*r+1)*w : (2*r+2)*w]
		out := a.out[r*ow : (r+1)*ow]
		am := a.argmax[r*ow : (r+1)*ow]
		for i := range out {
			m, k := top[2*i], uint8(0)
			if v := top[2*i+1]; v > m {
				m, k = v, 1
			}
			if v := bot[2*i]; v > m {
				m, k = v, 2
			}
			if v := bot[2*i+1]; v > m {
				m, k = v, 3
			}
			out[i], am[i] = m, k
		}
	}
}

// MaxPool2x2Backward adds dOut into dIn at the positions argmax recorded, so
// dIn must already hold any other gradient of the pooled tensor (in a UNet,
// the skip connection's) or zeros. Shapes as in MaxPool2x2Forward.
func MaxPool2x2Backward(c *Ctx, dIn, dOut []float32, argmax []uint8, planes, h, w int) {
	checkLen("maxpool dIn", dIn, planes*h*w)
	checkLen("maxpool dOut", dOut, planes*h*w/4)
	if len(argmax) < planes*h*w/4 || h%2 != 0 || w%2 != 0 {
		panic("nn: maxpool: bad argmax length or odd size")
	}
	a := &c.poolBwd
	*a = poolBwdArgs{out: dOut, in: dIn, argmax: argmax, w: w}
	c.parallel(planes*h/2, 2*w, a)
	*a = poolBwdArgs{}
}

type poolBwdArgs poolArgs

func (a *poolBwdArgs) run(lo, hi int) {
	w, ow := a.w, a.w/2
	for r := lo; r < hi; r++ {
		top := a.in[2*r*w : (2*r+1)*w]
		bot := a.in[(2*r+1)*w : (2*r+2)*w]
		d := a.out[r*ow : (r+1)*ow]
		am := a.argmax[r*ow : (r+1)*ow]
		for i, g := range d {
			switch am[i] {
			case 0:
				top[2*i] += g
			case 1:
				top[2*i+1] += g
			case 2:
				bot[2*i] += g
			default:
				bot[2*i+1] += g
			}
		}
	}
}

// ReLUForward sets x = max(x, 0) in place.
func ReLUForward(c *Ctx, x []float32) {
	a := &c.relu
	*a = reluArgs{x: x}
	c.parallel(len(x), 1, a)
	*a = reluArgs{}
}

type reluArgs struct{ x, y []float32 }

// run clears negative values branch-free (the signs of activations are
// unpredictable): a set sign bit makes the mask all ones. -0 becomes +0.
func (a *reluArgs) run(lo, hi int) {
	x := a.x[lo:hi]
	for i, v := range x {
		b := math.Float32bits(v)
		x[i] = math.Float32frombits(b &^ uint32(int32(b)>>31))
	}
}

// ReLUBackward turns dx, the gradient of ReLUForward's output y, into the
// gradient of its input in place: dx = 0 wherever y ≤ 0. y is the output
// (ReLU's input was overwritten); dx and y have the same length.
func ReLUBackward(c *Ctx, dx, y []float32) {
	checkLen("relu y", y, len(dx))
	a := &c.reluBwd
	*a = reluBwdArgs{x: dx, y: y}
	c.parallel(len(dx), 2, a)
	*a = reluBwdArgs{}
}

type reluBwdArgs reluArgs

// run keeps dx where y > 0, branch-free: the mask is all ones exactly when
// y's bits, as a signed integer, are positive (+0, -0 and negatives clear).
func (a *reluBwdArgs) run(lo, hi int) {
	dx, y := a.x[lo:hi], a.y[lo:hi]
	y = y[:len(dx)]
	for i, yv := range y {
		keep := uint32(-int64(int32(math.Float32bits(yv))) >> 63)
		dx[i] = math.Float32frombits(math.Float32bits(dx[i]) & keep)
	}
}
