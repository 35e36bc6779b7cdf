package nn

import "fmt"

// gemmColumns is how many pixels a convolution aims to cover per GEMM: enough
// for the GEMM to run near peak and split well across threads, few enough
// that the im2col buffer stays a few MiB. Chunks are whole image rows, at
// least one. (UNet-S training at batch 8 on the 2-core dev box: 2048–4096
// columns ran at 16.5–18 images/s; 512 KiB of columns per GEMM, which left
// the 8×8 and 16×16 layers with a few hundred columns, at 11.5.)
const gemmColumns = 4096

// chunkRowsFor is how many image rows of width w, out of total, one GEMM
// aims to cover.
func chunkRowsFor(w, total int) int { return min(total, max(1, (gemmColumns+w-1)/w)) }

// Conv3x3Workspace returns the Ctx workspaces, in floats, that Conv3x3Forward
// and Conv3x3Backward need to run at full speed on n images of h×w with cin
// input and cout output channels: cols, the im2col columns of one chunk of
// image rows, and weights, the transposed kernel of the backward pass. A
// column workspace smaller than cols (but holding at least one image row,
// max(cin, cout)·9·w floats) works, with more, smaller GEMMs.
func Conv3x3Workspace(n, cin, cout, h, w int) (cols, weights int) {
	return max(cin, cout) * 9 * w * chunkRowsFor(w, n*h), cin * cout * 9
}

// Conv3x3Forward computes out = conv(in, weight) + bias for a 3×3 kernel,
// padding 1, stride 1. in is cin×n×h×w and out is cout×n×h×w (CNHW); weight is
// cout×cin×3×3 and bias cout. The pixels of the whole batch are processed as
// the columns of GEMMs, out = weight·im2col(in), each covering a chunk of
// about 4096 pixels (whole image rows, across images).
func Conv3x3Forward(c *Ctx, out, in, weight, bias []float32, n, cin, cout, h, w int) {
	p := n * h * w
	checkLen("conv3x3 in", in, cin*p)
	checkLen("conv3x3 out", out, cout*p)
	checkLen("conv3x3 weight", weight, cout*cin*9)
	checkLen("conv3x3 bias", bias, cout)
	k := cin * 9
	step := chunkRows(c, k*w, w, n*h, "conv3x3 forward")
	for r0 := 0; r0 < n*h; r0 += step {
		r1 := min(r0+step, n*h)
		cols := (r1 - r0) * w
		col := c.cols[:k*cols]
		im2col3x3(c, col, in, cin, n, h, w, r0, r1)
		c.gemm.Sgemm(false, false, cout, cols, k, 1, weight, k, col, cols, 0, out[r0*w:], p)
		addBias(c, out[r0*w:], bias, cout, cols, p) // while the chunk is in cache
	}
}

// Conv3x3Backward computes the gradients of Conv3x3Forward given dOut, the
// gradient of its output: it overwrites dWeight and dBias and, unless dIn is
// nil (the first layer of a model), overwrites dIn. in and weight are the
// forward's. dIn is computed as a convolution of dOut with the flipped,
// transposed kernel (im2col of dOut and one GEMM), which needs only copies
// where the textbook col2im needs a scatter-add over every column element.
func Conv3x3Backward(c *Ctx, dIn, dWeight, dBias, dOut, in, weight []float32, n, cin, cout, h, w int) {
	p := n * h * w
	checkLen("conv3x3 in", in, cin*p)
	checkLen("conv3x3 dOut", dOut, cout*p)
	checkLen("conv3x3 weight", weight, cout*cin*9)
	checkLen("conv3x3 dWeight", dWeight, cout*cin*9)
	checkLen("conv3x3 dBias", dBias, cout)
	biasGrad(c, dBias, dOut, cout, p)

	k := cin * 9
	var wt []float32
	rowCost := k * w
	if dIn != nil {
		checkLen("conv3x3 dIn", dIn, cin*p)
		// wt[ci][co][8-t] = weight[co][ci][t]: the kernel of the data gradient.
		if len(c.wt) < cin*cout*9 {
			panic(fmt.Sprintf("nn: conv3x3 backward: weight workspace of %d floats, need %d", len(c.wt), cin*cout*9))
		}
		wt = c.wt[:cin*cout*9]
		for co := 0; co < cout; co++ {
			for ci := 0; ci < cin; ci++ {
				src := weight[(co*cin+ci)*9 : (co*cin+ci)*9+9]
				dst := wt[(ci*cout+co)*9 : (ci*cout+co)*9+9]
				for t := range 9 {
					dst[8-t] = src[t]
				}
			}
		}
		rowCost = max(cin, cout) * 9 * w
	}
	step := chunkRows(c, rowCost, w, n*h, "conv3x3 backward")
	var beta float32
	for r0 := 0; r0 < n*h; r0 += step {
		r1 := min(r0+step, n*h)
		cols := (r1 - r0) * w
		col := c.cols[:k*cols]
		im2col3x3(c, col, in, cin, n, h, w, r0, r1)
		c.gemm.Sgemm(false, true, cout, k, cols, 1, dOut[r0*w:], p, col, cols, beta, dWeight, k)
		beta = 1
		if dIn != nil {
			col = c.cols[:cout*9*cols]
			im2col3x3(c, col, dOut, cout, n, h, w, r0, r1)
			c.gemm.Sgemm(false, false, cin, cols, cout*9, 1, wt, cout*9, col, cols, 0, dIn[r0*w:], p)
		}
	}
}

// Conv1x1Forward computes out = weight·in + bias, a 1×1 convolution: in is
// cin×p and out cout×p (p = n·h·w pixels, CNHW), weight cout×cin, bias cout.
// It needs no workspace.
func Conv1x1Forward(c *Ctx, out, in, weight, bias []float32, p, cin, cout int) {
	checkLen("conv1x1 in", in, cin*p)
	checkLen("conv1x1 out", out, cout*p)
	checkLen("conv1x1 weight", weight, cout*cin)
	checkLen("conv1x1 bias", bias, cout)
	c.gemm.Sgemm(false, false, cout, p, cin, 1, weight, cin, in, p, 0, out, p)
	addBias(c, out, bias, cout, p, p)
}

// Conv1x1Backward computes the gradients of Conv1x1Forward: it overwrites
// dWeight (dOut·inᵀ), dBias and, unless dIn is nil, dIn (weightᵀ·dOut).
func Conv1x1Backward(c *Ctx, dIn, dWeight, dBias, dOut, in, weight []float32, p, cin, cout int) {
	checkLen("conv1x1 in", in, cin*p)
	checkLen("conv1x1 dOut", dOut, cout*p)
	checkLen("conv1x1 weight", weight, cout*cin)
	checkLen("conv1x1 dWeight", dWeight, cout*cin)
	checkLen("conv1x1 dBias", dBias, cout)
	biasGrad(c, dBias, dOut, cout, p)
	c.gemm.Sgemm(false, true, cout, cin, p, 1, dOut, p, in, p, 0, dWeight, cin)
	if dIn != nil {
		checkLen("conv1x1 dIn", dIn, cin*p)
		c.gemm.Sgemm(true, false, cin, p, cout, 1, weight, cin, dOut, p, 0, dIn, p)
	}
}

// chunkRows is how many image rows of width w, out of total, one GEMM
// covers when each row needs rowCost floats of the column workspace: those
// of chunkRowsFor, or fewer if the workspace is smaller.
func chunkRows(c *Ctx, rowCost, w, total int, what string) int {
	rows := len(c.cols) / rowCost
	if rows < 1 {
		panic(fmt.Sprintf("nn: %s: column workspace of %d floats, need %d", what, len(c.cols), rowCost))
	}
	return min(rows, chunkRowsFor(w, total))
}

// im2col3x3 writes the 3×3, pad 1 columns of image rows [r0, r1) of the
// cin×n×h×w tensor in (rows counted over the batch, n·h of them) into col,
// a (cin·9)×((r1-r0)·w) matrix whose row ci·9+ky·3+kx holds, for each pixel,
// the input pixel shifted by (ky-1, kx-1), or 0 outside the image.
func im2col3x3(c *Ctx, col, in []float32, cin, n, h, w, r0, r1 int) {
	a := &c.im2col
	*a = im2colArgs{col: col, in: in, n: n, h: h, w: w, r0: r0, r1: r1}
	c.parallel(cin*9, (r1-r0)*w, a)
	*a = im2colArgs{}
}

type im2colArgs struct {
	col, in         []float32
	n, h, w, r0, r1 int
}

func (a *im2colArgs) run(lo, hi int) {
	h, w, plane := a.h, a.w, a.n*a.h*a.w
	cols := (a.r1 - a.r0) * w
	for item := lo; item < hi; item++ {
		ci, t := item/9, item%9
		dy, dx := t/3-1, t%3-1
		src := a.in[ci*plane : (ci+1)*plane]
		dst := a.col[item*cols : (item+1)*cols]
		// Per image, the rows whose shifted source row lies inside the
		// image are one block copy, shifted by dx along the flattened rows
		// with the column that wrapped around zeroed; the rest are zeros.
		for img := a.r0 / h; img*h < a.r1; img++ {
			ya, yb := max(a.r0-img*h, 0), min(a.r1-img*h, h) // rows of this image in the chunk
			v0, v1 := max(ya, -dy), min(yb, h-dy)            // rows with a source row
			base := (img*h - a.r0) * w                       // dst offset of row 0 of img
			if v0 >= v1 {
				clear(dst[base+ya*w : base+yb*w])
				continue
			}
			clear(dst[base+ya*w : base+v0*w])
			clear(dst[base+v1*w : base+yb*w])
			d := dst[base+v0*w : base+v1*w]
			s := src[(img*h+v0+dy)*w : (img*h+v1+dy)*w]
			switch dx {
			case -1:
				copy(d[1:], s)
				for j := 0; j < len(d); j += w {
					d[j] = 0
				}
			case 0:
				copy(d, s)
			default:
				copy(d, s[1:])
				for j := w - 1; j < len(d); j += w {
					d[j] = 0
				}
			}
		}
	}
}

// addBias adds bias[ch] to the first cols elements of each row ch of x, a
// matrix of ch rows with stride ld.
func addBias(c *Ctx, x, bias []float32, ch, cols, ld int) {
	a := &c.bias
	*a = biasArgs{x: x, bias: bias, cols: cols, ld: ld}
	c.parallel(ch, cols, a)
	*a = biasArgs{}
}

type biasArgs struct {
	x, bias  []float32
	cols, ld int
}

func (a *biasArgs) run(lo, hi int) {
	for ch := lo; ch < hi; ch++ {
		b := a.bias[ch]
		row := a.x[ch*a.ld : ch*a.ld+a.cols]
		for i := range row {
			row[i] += b
		}
	}
}

// biasGrad sets dBias[ch] to the sum of channel ch of the ch×p tensor dOut,
// summed in float64 in a fixed order.
func biasGrad(c *Ctx, dBias, dOut []float32, ch, p int) {
	a := &c.biasBwd
	*a = biasBwdArgs{dBias: dBias, dOut: dOut, p: p}
	c.parallel(ch, p, a)
	*a = biasBwdArgs{}
}

type biasBwdArgs struct {
	dBias, dOut []float32
	p           int
}

func (a *biasBwdArgs) run(lo, hi int) {
	for ch := lo; ch < hi; ch++ {
		row := a.dOut[ch*a.p : (ch+1)*a.p]
		var s0, s1, s2, s3 float64
		i := 0
		for ; i+4 <= len(row); i += 4 {
			r := row[i : i+4 : i+4]
			s0 += float64(r[0])
			s1 += float64(r[1])
			s2 += float64(r[2])
			s3 += float64(r[3])
		}
		for ; i < len(row); i++ {
			s0 += float64(row[i])
		}
		a.dBias[ch] = float32((s0 + s1) + (s2 + s3))
	}
}

// checkLen panics unless x holds at least want floats.
func checkLen(what string, x []float32, want int) {
	if len(x) < want {
		panic(fmt.Sprintf("nn: %s has %d floats, want %d", what, len(x), want))
	}
}
