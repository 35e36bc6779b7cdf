package nn

import (
	"fmt"
	"math"
	"slices"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/trainctl/trainctl/trainer/gemm"
	"github.com/trainctl/trainctl/trainer/nn/nnref"
)

// Tolerances of the gradient checks, as the largest absolute difference over
// a tensor divided by the largest magnitude of the reference tensor. The
// references are float64; ours accumulate in float32 over at most a few
// hundred terms here, so 1e-5 leaves a margin of about 10×.
const (
	fwdTol = 1e-5 // our forward against the float64 reference
	fdTol  = 1e-4 // our gradients against float64 central differences
	gTol   = 1e-5 // our gradients against Gorgonia's symbolic gradients (float64)
	fdEps  = 1e-3 // central-difference step on the float64 reference
)

// layerCase is one layer on one shape, seen from outside: NCHW (PyTorch
// layout) inputs, an NCHW output (or a scalar loss), and our gradients of
// Σ out·dOut (or of the loss) with respect to every input.
type layerCase struct {
	name   string
	inputs []tensorIn
	outLen int  // floats of the output
	scalar bool // the output is a loss; dOut is ignored
	// work lists column workspaces to run with: the least, and larger
	// ones; weights is the weight workspace.
	work    []int
	weights int
	// run converts to CNHW, runs our forward and backward, and converts back.
	// A nil gradient means the layer does not compute it.
	run func(c *Ctx, in [][]float32, dOut []float32) (out []float32, grads [][]float32)
	// ref is the float64 reference forward.
	ref func(in [][]float64) []float64
	// graph builds the same layer in Gorgonia.
	graph func(g *G.ExprGraph, in []*G.Node) (*G.Node, error)
}

type tensorIn struct {
	name  string
	shape []int
	data  []float32
}

func layerCases() []layerCase {
	return []layerCase{
		convCase(2, 3, 4, 5, 6, 3, false),
		convCase(3, 5, 2, 4, 3, 3, true),
		convCase(1, 2, 3, 1, 1, 3, false),
		convCase(2, 16, 8, 4, 4, 3, false),
		convCase(2, 4, 3, 3, 5, 1, false),
		convCase(1, 7, 2, 2, 2, 1, true),
		convTCase(2, 3, 4, 3, 2),
		convTCase(1, 5, 2, 2, 3),
		poolCase(2, 3, 4, 6),
		poolCase(1, 2, 2, 2),
		reluCase(2, 3, 3, 3),
		concatCase(2, 2, 3, 3, 2),
		softmaxCase(2, 3, 3, 4, 1, 0),
		softmaxCase(1, 5, 2, 2, 100, 1e4),
	}
}

// TestLayers checks every case's forward against the float64 reference and
// its gradients against central differences of that reference, with the
// smallest and the largest workspace, and that two threads give
// bit-identical results to one.
func TestLayers(t *testing.T) {
	eng := gemm.New(1)
	for _, lc := range layerCases() {
		t.Run(lc.name, func(t *testing.T) {
			r := newRand(99)
			dOut := r.normal(lc.outLen, 1)
			in64 := make([][]float64, len(lc.inputs))
			in32 := make([][]float32, len(lc.inputs))
			for i, x := range lc.inputs {
				in32[i] = x.data
				in64[i] = to64(x.data)
			}
			wantOut := lc.ref(in64)
			fd := finiteDiff(lc, in64, dOut)
			for _, work := range lc.work {
				var first []float32
				for _, threads := range []int{1, 2} {
					c := NewCtx(eng, threads, work, lc.weights)
					if threads > 1 {
						c.grain = 1 // split even these tiny shapes
					}
					out, grads := lc.run(c, in32, dOut)
					c.Close()
					if e := relErr(out, wantOut); e > fwdTol {
						t.Errorf("work %d threads %d: forward differs from reference by %.3g", work, threads, e)
					}
					for i, gr := range grads {
						if gr == nil {
							continue
						}
						e := relErr(gr, fd[i])
						if e > fdTol {
							t.Errorf("work %d threads %d: d/d%s differs from finite differences by %.3g", work, threads, lc.inputs[i].name, e)
						}
						if threads == 1 && work == lc.work[0] {
							t.Logf("d/d%s: finite-difference error %.2g", lc.inputs[i].name, e)
						}
					}
					all := slices.Concat(append([][]float32{out}, grads...)...)
					if first == nil {
						first = all
					} else if !bitEqual(first, all) {
						t.Errorf("work %d: two threads differ from one", work)
					}
				}
			}
		})
	}
}

// TestLayersGorgonia checks our gradients against Gorgonia's symbolic
// gradients of the same layer built from its ops, in float64.
func TestLayersGorgonia(t *testing.T) {
	eng := gemm.New(1)
	for _, lc := range layerCases() {
		t.Run(lc.name, func(t *testing.T) {
			r := newRand(99)
			dOut := r.normal(lc.outLen, 1)
			in32 := make([][]float32, len(lc.inputs))
			for i, x := range lc.inputs {
				in32[i] = x.data
			}
			c := NewCtx(eng, 1, lc.work[len(lc.work)-1], lc.weights)
			defer c.Close()
			out, grads := lc.run(c, in32, dOut)

			g := G.NewGraph()
			nodes := make([]*G.Node, len(lc.inputs))
			for i, x := range lc.inputs {
				nodes[i] = G.NewTensor(g, tensor.Float64, len(x.shape), G.WithShape(x.shape...), G.WithName(x.name),
					G.WithValue(tensor.New(tensor.WithShape(x.shape...), tensor.WithBacking(to64(x.data)))))
			}
			y, err := lc.graph(g, nodes)
			if err != nil {
				t.Fatalf("building graph: %v", err)
			}
			cost := y
			if !lc.scalar {
				rn := G.NewTensor(g, tensor.Float64, len(y.Shape()), G.WithShape(y.Shape()...), G.WithName("dOut"),
					G.WithValue(tensor.New(tensor.WithShape(y.Shape()...), tensor.WithBacking(to64(dOut)))))
				cost = G.Must(G.Sum(G.Must(G.HadamardProd(y, rn))))
			}
			if _, err := G.Grad(cost, nodes...); err != nil {
				t.Fatalf("Grad: %v", err)
			}
			m := G.NewTapeMachine(g)
			defer m.Close()
			if err := m.RunAll(); err != nil {
				t.Fatalf("RunAll: %v", err)
			}
			if e := relErr(out, values(t, y.Value())); e > gTol {
				t.Errorf("forward differs from Gorgonia by %.3g", e)
			}
			for i, gr := range grads {
				if gr == nil {
					continue
				}
				gv, err := nodes[i].Grad()
				if err != nil {
					t.Fatalf("grad of %s: %v", lc.inputs[i].name, err)
				}
				e := relErr(gr, values(t, gv))
				if e > gTol {
					t.Errorf("d/d%s differs from Gorgonia by %.3g", lc.inputs[i].name, e)
				}
				t.Logf("d/d%s: Gorgonia error %.2g", lc.inputs[i].name, e)
			}
		})
	}
}

func convCase(n, cin, cout, h, w, k int, noDIn bool) layerCase {
	r := newRand(uint64(n*1000 + cin*100 + cout*10 + k))
	p := n * h * w
	lc := layerCase{
		name: fmt.Sprintf("conv%dx%d/n%d_c%d_%d_%dx%d", k, k, n, cin, cout, h, w),
		inputs: []tensorIn{
			{"x", []int{n, cin, h, w}, r.normal(p*cin, 1)},
			{"weight", []int{cout, cin, k, k}, r.normal(cout*cin*k*k, 0.3)},
			{"bias", []int{cout}, r.normal(cout, 0.5)},
		},
		outLen: p * cout,
	}
	if k == 3 {
		full, weights := Conv3x3Workspace(n, cin, cout, h, w)
		row := max(cin, cout) * 9 * w
		lc.work = []int{row, 3 * row, full} // 1 row, 3 rows, all rows per GEMM
		lc.weights = weights
	} else {
		lc.work = []int{0}
	}
	lc.run = func(c *Ctx, in [][]float32, dOut []float32) ([]float32, [][]float32) {
		x, o := toCNHW(in[0], n, cin, h*w), make([]float32, cout*p)
		if k == 3 {
			Conv3x3Forward(c, o, x, in[1], in[2], n, cin, cout, h, w)
		} else {
			Conv1x1Forward(c, o, x, in[1], in[2], p, cin, cout)
		}
		dx, dw, db := nanSlice(cin*p), nanSlice(len(in[1])), nanSlice(cout)
		if noDIn {
			dx = nil
		}
		d := toCNHW(dOut, n, cout, h*w)
		if k == 3 {
			Conv3x3Backward(c, dx, dw, db, d, x, in[1], n, cin, cout, h, w)
		} else {
			Conv1x1Backward(c, dx, dw, db, d, x, in[1], p, cin, cout)
		}
		if dx != nil {
			dx = toNCHW(dx, cin, n, h*w)
		}
		return toNCHW(o, cout, n, h*w), [][]float32{dx, dw, db}
	}
	lc.ref = func(in [][]float64) []float64 { return nnref.Conv(in[0], in[1], in[2], n, cin, cout, h, w, k) }
	lc.graph = func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) {
		y, err := G.Conv2d(in[0], in[1], tensor.Shape{k, k}, []int{k / 2, k / 2}, []int{1, 1}, []int{1, 1})
		if err != nil {
			return nil, err
		}
		return G.BroadcastAdd(y, in[2], nil, []byte{0, 2, 3})
	}
	return lc
}

func convTCase(n, cin, cout, h, w int) layerCase {
	r := newRand(uint64(7000 + n*1000 + cin*100 + cout*10))
	p := n * h * w
	lc := layerCase{
		name: fmt.Sprintf("convT2x2/n%d_c%d_%d_%dx%d", n, cin, cout, h, w),
		inputs: []tensorIn{
			{"x", []int{n, cin, h, w}, r.normal(p*cin, 1)},
			{"weight", []int{cin, cout, 2, 2}, r.normal(cout*cin*4, 0.3)},
			{"bias", []int{cout}, r.normal(cout, 0.5)},
		},
		outLen: 4 * p * cout,
		work:   []int{cout * 4 * w, cout * 4 * w * 3, ConvT2x2Workspace(n, cout, h, w)},
	}
	lc.run = func(c *Ctx, in [][]float32, dOut []float32) ([]float32, [][]float32) {
		x, o := toCNHW(in[0], n, cin, h*w), make([]float32, 4*cout*p)
		ConvT2x2Forward(c, o, x, in[1], in[2], n, cin, cout, h, w)
		dx, dw, db := nanSlice(cin*p), nanSlice(len(in[1])), nanSlice(cout)
		ConvT2x2Backward(c, dx, dw, db, toCNHW(dOut, n, cout, 4*h*w), x, in[1], n, cin, cout, h, w)
		return toNCHW(o, cout, n, 4*h*w), [][]float32{toNCHW(dx, cin, n, h*w), dw, db}
	}
	lc.ref = func(in [][]float64) []float64 { return nnref.ConvT2x2(in[0], in[1], in[2], n, cin, cout, h, w) }
	// In Gorgonia: every input pixel times the cin×(cout·2·2) weight matrix,
	// then the 2×2 blocks moved into place by reshapes and a transpose.
	lc.graph = func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) {
		x, err := G.Transpose(in[0], 0, 2, 3, 1) // n, h, w, cin
		if err != nil {
			return nil, err
		}
		if x, err = G.Reshape(x, tensor.Shape{p, cin}); err != nil {
			return nil, err
		}
		wm, err := G.Reshape(in[1], tensor.Shape{cin, cout * 4})
		if err != nil {
			return nil, err
		}
		y, err := G.Mul(x, wm) // p × (cout·2·2)
		if err != nil {
			return nil, err
		}
		if y, err = G.Reshape(y, tensor.Shape{n, h, w, cout, 2, 2}); err != nil {
			return nil, err
		}
		if y, err = G.Transpose(y, 0, 3, 1, 4, 2, 5); err != nil { // n, cout, h, 2, w, 2
			return nil, err
		}
		if y, err = G.Reshape(y, tensor.Shape{n, cout, 2 * h, 2 * w}); err != nil {
			return nil, err
		}
		return G.BroadcastAdd(y, in[2], nil, []byte{0, 2, 3})
	}
	return lc
}

func poolCase(n, ch, h, w int) layerCase {
	r := newRand(uint64(5000 + n*100 + ch))
	size := n * ch * h * w
	// Distinct values 0.01 apart, so no step of the finite differences
	// changes which input wins.
	x := make([]float32, size)
	for i, j := range r.perm(size) {
		x[i] = float32(j)*0.01 - float32(size)*0.005
	}
	lc := layerCase{
		name:   fmt.Sprintf("maxpool2x2/n%d_c%d_%dx%d", n, ch, h, w),
		inputs: []tensorIn{{"x", []int{n, ch, h, w}, x}},
		outLen: size / 4,
		work:   []int{0},
	}
	lc.run = func(c *Ctx, in [][]float32, dOut []float32) ([]float32, [][]float32) {
		xc, o, am := toCNHW(in[0], n, ch, h*w), make([]float32, size/4), make([]uint8, size/4)
		MaxPool2x2Forward(c, o, am, xc, ch*n, h, w)
		dx := make([]float32, size)
		MaxPool2x2Backward(c, dx, toCNHW(dOut, n, ch, h*w/4), am, ch*n, h, w)
		return toNCHW(o, ch, n, h*w/4), [][]float32{toNCHW(dx, ch, n, h*w)}
	}
	lc.ref = func(in [][]float64) []float64 { return nnref.MaxPool2x2(in[0], n*ch, h, w) }
	lc.graph = func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) {
		return G.MaxPool2D(in[0], tensor.Shape{2, 2}, []int{0, 0}, []int{2, 2})
	}
	return lc
}

func reluCase(n, ch, h, w int) layerCase {
	r := newRand(uint64(6000 + n*100 + ch))
	size := n * ch * h * w
	x := r.normal(size, 1)
	for i, v := range x { // keep away from the kink at 0
		if math.Abs(float64(v)) < 0.05 {
			x[i] = float32(math.Copysign(0.05, float64(v))) + v
		}
	}
	lc := layerCase{
		name:   fmt.Sprintf("relu/n%d_c%d_%dx%d", n, ch, h, w),
		inputs: []tensorIn{{"x", []int{n, ch, h, w}, x}},
		outLen: size,
		work:   []int{0},
	}
	lc.run = func(c *Ctx, in [][]float32, dOut []float32) ([]float32, [][]float32) {
		y := toCNHW(in[0], n, ch, h*w)
		ReLUForward(c, y)
		dx := toCNHW(dOut, n, ch, h*w)
		ReLUBackward(c, dx, y)
		return toNCHW(y, ch, n, h*w), [][]float32{toNCHW(dx, ch, n, h*w)}
	}
	lc.ref = func(in [][]float64) []float64 { return nnref.ReLU(in[0]) }
	lc.graph = func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) { return G.Rectify(in[0]) }
	return lc
}

// concatCase is two producers writing adjacent channel ranges of one buffer,
// and the gradient read back through the same views.
func concatCase(n, ca, cb, h, w int) layerCase {
	r := newRand(uint64(8000 + n*100 + ca*10 + cb))
	hw, p := h*w, n*h*w
	lc := layerCase{
		name: fmt.Sprintf("concat/n%d_c%d+%d_%dx%d", n, ca, cb, h, w),
		inputs: []tensorIn{
			{"a", []int{n, ca, h, w}, r.normal(ca*p, 1)},
			{"b", []int{n, cb, h, w}, r.normal(cb*p, 1)},
		},
		outLen: (ca + cb) * p,
		work:   []int{0},
	}
	lc.run = func(c *Ctx, in [][]float32, dOut []float32) ([]float32, [][]float32) {
		cat := make([]float32, (ca+cb)*p)
		NCHWToCNHW(Channels(cat, 0, ca, p), in[0], n, ca, hw)
		NCHWToCNHW(Channels(cat, ca, ca+cb, p), in[1], n, cb, hw)
		d := toCNHW(dOut, n, ca+cb, hw)
		return toNCHW(cat, ca+cb, n, hw), [][]float32{toNCHW(Channels(d, 0, ca, p), ca, n, hw), toNCHW(Channels(d, ca, ca+cb, p), cb, n, hw)}
	}
	lc.ref = func(in [][]float64) []float64 { return nnref.Concat(in[0], in[1], n, ca, cb, hw) }
	lc.graph = func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) { return G.Concat(1, in[0], in[1]) }
	return lc
}

// softmaxCase scales the logits by scale and shifts them by shift, to check
// the numerical stability of large logits.
func softmaxCase(n, k, h, w int, scale, shift float32) layerCase {
	r := newRand(uint64(9000 + n*100 + k))
	hw, p := h*w, n*h*w
	z := r.normal(k*p, scale)
	for i := range z {
		z[i] += shift
	}
	labels := make([]uint8, p)
	for i := range labels {
		labels[i] = uint8(r.next() % uint64(k))
	}
	lc := layerCase{
		name:   fmt.Sprintf("softmaxCE/n%d_k%d_%dx%d_scale%g_shift%g", n, k, h, w, scale, shift),
		inputs: []tensorIn{{"logits", []int{n, k, h, w}, z}},
		outLen: 1,
		scalar: true,
		work:   []int{0},
	}
	lc.run = func(c *Ctx, in [][]float32, _ []float32) ([]float32, [][]float32) {
		zc, d := toCNHW(in[0], n, k, hw), nanSlice(k*p)
		loss := SoftmaxCrossEntropy(c, d, zc, labels, k, n, hw)
		return []float32{loss}, [][]float32{toNCHW(d, k, n, hw)}
	}
	lc.ref = func(in [][]float64) []float64 {
		return []float64{nnref.SoftmaxCrossEntropy(in[0], labels, n, k, hw)}
	}
	// −mean(log_softmax(z)·onehot) over pixels, with the classes moved last.
	lc.graph = func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) {
		z, err := G.Transpose(in[0], 0, 2, 3, 1)
		if err != nil {
			return nil, err
		}
		if z, err = G.Reshape(z, tensor.Shape{p, k}); err != nil {
			return nil, err
		}
		ls, err := G.LogSoftMax(z, 1)
		if err != nil {
			return nil, err
		}
		oh := make([]float64, p*k)
		for i, l := range labels {
			oh[i*k+int(l)] = 1
		}
		ohn := G.NewTensor(g, tensor.Float64, 2, G.WithShape(p, k), G.WithName("onehot"),
			G.WithValue(tensor.New(tensor.WithShape(p, k), tensor.WithBacking(oh))))
		s, err := G.Sum(G.Must(G.HadamardProd(ls, ohn)))
		if err != nil {
			return nil, err
		}
		return G.Mul(s, G.NewConstant(-1/float64(p)))
	}
	return lc
}

// finiteDiff returns, for every input, the central differences of
// Σ ref(in)·dOut (or of the scalar ref) in float64.
func finiteDiff(lc layerCase, in [][]float64, dOut []float32) [][]float32 {
	f := func() float64 {
		out := lc.ref(in)
		if lc.scalar {
			return out[0]
		}
		var s float64
		for i, v := range out {
			s += v * float64(dOut[i])
		}
		return s
	}
	grads := make([][]float32, len(in))
	for i, x := range in {
		grads[i] = make([]float32, len(x))
		for j := range x {
			v := x[j]
			x[j] = v + fdEps
			fp := f()
			x[j] = v - fdEps
			fm := f()
			x[j] = v
			grads[i][j] = float32((fp - fm) / (2 * fdEps))
		}
	}
	return grads
}

// relErr is max|a−b| over the largest |b|.
func relErr[T float32 | float64](a []float32, b []T) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	var d, m float64
	for i := range a {
		d = max(d, math.Abs(float64(a[i])-float64(b[i])))
		m = max(m, math.Abs(float64(b[i])))
	}
	if m == 0 {
		return d
	}
	if math.IsNaN(d) {
		return math.Inf(1)
	}
	return d / m
}

func values(t *testing.T, v G.Value) []float64 {
	t.Helper()
	switch x := v.Data().(type) {
	case []float64:
		return x
	case float64:
		return []float64{x}
	}
	t.Fatalf("unexpected Gorgonia value %T", v.Data())
	return nil
}

func bitEqual(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

func toCNHW(x []float32, n, c, hw int) []float32 {
	y := make([]float32, n*c*hw)
	NCHWToCNHW(y, x, n, c, hw)
	return y
}

func toNCHW(x []float32, c, n, hw int) []float32 {
	y := make([]float32, n*c*hw)
	CNHWToNCHW(y, x, c, n, hw)
	return y
}

func to64(x []float32) []float64 {
	y := make([]float64, len(x))
	for i, v := range x {
		y[i] = float64(v)
	}
	return y
}

func nanSlice(n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(math.NaN())
	}
	return x
}

// rnd is SplitMix64 with a Box–Muller normal, for reproducible test data.
type rnd struct{ s uint64 }

func newRand(seed uint64) *rnd { return &rnd{seed} }

func (r *rnd) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	z := r.s
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

func (r *rnd) normal(n int, std float32) []float32 {
	x := make([]float32, n)
	for i := range x {
		u1 := (float64(r.next()>>11) + 0.5) / (1 << 53)
		u2 := float64(r.next()>>11) / (1 << 53)
		x[i] = std * float32(math.Sqrt(-2*math.Log(u1))*math.Cos(2*math.Pi*u2))
	}
	return x
}

func (r *rnd) perm(n int) []int {
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	for i := n - 1; i > 0; i-- {
		j := int(r.next() % uint64(i+1))
		p[i], p[j] = p[j], p[i]
	}
	return p
}
