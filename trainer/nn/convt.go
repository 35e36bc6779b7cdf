package nn

// ConvT2x2Workspace is the column workspace, in floats, that
// ConvT2x2Forward and ConvT2x2Backward need to run at full speed for cout
// output channels and n inputs of h×w: the GEMM output of one chunk of input
// rows. A smaller workspace holding at least one row, cout·4·w floats,
// works, with more, smaller GEMMs.
func ConvT2x2Workspace(n, cout, h, w int) int { return cout * 4 * w * chunkRowsFor(w, n*h) }

// ConvT2x2Forward computes the transposed convolution with a 2×2 kernel and
// stride 2 (PyTorch ConvTranspose2d(cin, cout, 2, stride=2)): in is cin×n×h×w,
// out cout×n×2h×2w (CNHW), weight cin×cout×2×2 and bias cout. Each input pixel
// paints one 2×2 output block, so it is one GEMM, t = weightᵀ·in with t of
// shape (cout·4)×(n·h·w), then a scatter of t (plus bias) into the blocks.
func ConvT2x2Forward(c *Ctx, out, in, weight, bias []float32, n, cin, cout, h, w int) {
	p := n * h * w
	checkLen("convT in", in, cin*p)
	checkLen("convT out", out, cout*4*p)
	checkLen("convT weight", weight, cin*cout*4)
	checkLen("convT bias", bias, cout)
	step := chunkRows(c, cout*4*w, w, n*h, "convT forward")
	for r0 := 0; r0 < n*h; r0 += step {
		r1 := min(r0+step, n*h)
		cols := (r1 - r0) * w
		t := c.cols[:cout*4*cols]
		c.gemm.Sgemm(true, false, cout*4, cols, cin, 1, weight, cout*4, in[r0*w:], p, 0, t, cols)
		a := &c.up
		*a = upArgs{t: t, x: out, bias: bias, n: n, h: h, w: w, r0: r0, r1: r1}
		c.parallel(cout, 4*cols, a)
		*a = upArgs{}
	}
}

// ConvT2x2Backward computes the gradients of ConvT2x2Forward given dOut: it
// overwrites dWeight (in·dtᵀ), dBias and, unless dIn is nil, dIn (weight·dt),
// where dt is dOut gathered back from the 2×2 blocks.
func ConvT2x2Backward(c *Ctx, dIn, dWeight, dBias, dOut, in, weight []float32, n, cin, cout, h, w int) {
	p := n * h * w
	checkLen("convT in", in, cin*p)
	checkLen("convT dOut", dOut, cout*4*p)
	checkLen("convT weight", weight, cin*cout*4)
	checkLen("convT dWeight", dWeight, cin*cout*4)
	checkLen("convT dBias", dBias, cout)
	if dIn != nil {
		checkLen("convT dIn", dIn, cin*p)
	}
	biasGrad(c, dBias, dOut, cout, 4*p)
	step := chunkRows(c, cout*4*w, w, n*h, "convT backward")
	var beta float32
	for r0 := 0; r0 < n*h; r0 += step {
		r1 := min(r0+step, n*h)
		cols := (r1 - r0) * w
		t := c.cols[:cout*4*cols]
		a := &c.up
		*a = upArgs{t: t, x: dOut, n: n, h: h, w: w, r0: r0, r1: r1, gather: true}
		c.parallel(cout, 4*cols, a)
		*a = upArgs{}
		c.gemm.Sgemm(false, true, cin, cout*4, cols, 1, in[r0*w:], p, t, cols, beta, dWeight, cout*4)
		beta = 1
		if dIn != nil {
			c.gemm.Sgemm(false, false, cin, cols, cout*4, 1, weight, cout*4, t, cols, 0, dIn[r0*w:], p)
		}
	}
}

// upArgs moves between the GEMM layout t, (cout·4)×cols for input rows
// [r0, r1), and the 2×-upsampled tensor x, cout×n×2h×2w: scatter (adding
// bias) or, with gather, the reverse.
type upArgs struct {
	t, x, bias      []float32
	n, h, w, r0, r1 int
	gather          bool
}

func (a *upArgs) run(lo, hi int) {
	h, w := a.h, a.w
	cols := (a.r1 - a.r0) * w
	plane := a.n * 4 * h * w // one output channel
	for co := lo; co < hi; co++ {
		var b float32
		if !a.gather {
			b = a.bias[co]
		}
		x := a.x[co*plane : (co+1)*plane]
		t00 := a.t[(co*4+0)*cols : (co*4+1)*cols]
		t01 := a.t[(co*4+1)*cols : (co*4+2)*cols]
		t10 := a.t[(co*4+2)*cols : (co*4+3)*cols]
		t11 := a.t[(co*4+3)*cols : (co*4+4)*cols]
		for r := a.r0; r < a.r1; r++ {
			j := (r - a.r0) * w
			// Input row r (image r/h, row r%h) is output rows 2r and 2r+1
			// of the batch's stacked 2h-row images.
			top := x[2*r*2*w : (2*r+1)*2*w]
			bot := x[(2*r+1)*2*w : (2*r+2)*2*w]
			s00, s01, s10, s11 := t00[j:j+w], t01[j:j+w], t10[j:j+w], t11[j:j+w]
			if a.gather {
				for i := range w {
					s00[i], s01[i] = top[2*i], top[2*i+1]
					s10[i], s11[i] = bot[2*i], bot[2*i+1]
				}
			} else {
				for i := range w {
					top[2*i], top[2*i+1] = s00[i]+b, s01[i]+b
					bot[2*i], bot[2*i+1] = s10[i]+b, s11[i]+b
				}
			}
		}
	}
}
