package unet

import (
	"errors"
	"fmt"
	"math"
	"testing"

	"github.com/trainctl/trainctl/trainer/gemm"
	"github.com/trainctl/trainctl/trainer/nn/nnref"
)

// tinyConfig is the model of the whole-network checks: 16×16 input, widths
// 2/4/4/4, bottleneck 4.
func tinyConfig() Config {
	return Config{InChannels: 3, Classes: 3, Height: 16, Width: 16, Widths: []int{2, 4, 4, 4}, Bottleneck: 4}
}

func TestNumParams(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want int
	}{
		{"UNet-S", DefaultConfig(), 1_941_139},
		// enc 3→2→2, mid 2→3→3, up 3→2, dec 4→2→2, head 2→2 by hand:
		{"one level", Config{InChannels: 3, Classes: 2, Height: 2, Width: 2, Widths: []int{2}, Bottleneck: 3},
			(3*2*9 + 2) + (2*2*9 + 2) + (2*3*9 + 3) + (3*3*9 + 3) + (3*2*4 + 2) + (4*2*9 + 2) + (2*2*9 + 2) + (2*2 + 2)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := NumParams(tt.cfg); got != tt.want {
				t.Fatalf("NumParams = %d, want %d", got, tt.want)
			}
			m, err := New(tt.cfg, gemm.New(1), 1)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			if m.NumParams() != tt.want || len(m.Params) != tt.want || len(m.Grads) != tt.want {
				t.Fatalf("model has %d params (%d, %d), want %d", m.NumParams(), len(m.Params), len(m.Grads), tt.want)
			}
			off := 0
			names := map[string]bool{}
			for _, v := range m.ParamViews() {
				if v.Offset != off || names[v.Name] {
					t.Fatalf("view %s at %d (duplicate %v), want %d", v.Name, v.Offset, names[v.Name], off)
				}
				names[v.Name] = true
				off += v.Size()
			}
			if off != tt.want {
				t.Fatalf("views cover %d params, want %d", off, tt.want)
			}
		})
	}
}

func TestParamViewNames(t *testing.T) {
	vs := paramViews(DefaultConfig())
	want := map[int]string{0: "enc1.conv1.weight", 1: "enc1.conv1.bias", 16: "mid.conv1.weight", 20: "dec4.up.weight", len(vs) - 1: "head.bias"}
	for i, name := range want {
		if vs[i].Name != name {
			t.Errorf("view %d is %s, want %s", i, vs[i].Name, name)
		}
	}
	if s := vs[20].Shape; fmt.Sprint(s) != "[256 128 2 2]" {
		t.Errorf("dec4.up.weight shape %v, want [256 128 2 2]", s)
	}
}

func TestValidate(t *testing.T) {
	mod := func(f func(*Config)) Config { c := DefaultConfig(); f(&c); return c }
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"default", DefaultConfig(), true},
		{"tiny", tinyConfig(), true},
		{"rectangular", mod(func(c *Config) { c.Height, c.Width = 64, 256 }), true},
		{"no channels", mod(func(c *Config) { c.InChannels = 0 }), false},
		{"one class", mod(func(c *Config) { c.Classes = 1 }), false},
		{"257 classes", mod(func(c *Config) { c.Classes = 257 }), false},
		{"no levels", mod(func(c *Config) { c.Widths = nil }), false},
		{"zero width", mod(func(c *Config) { c.Widths = []int{16, 0, 64, 128} }), false},
		{"no bottleneck", mod(func(c *Config) { c.Bottleneck = 0 }), false},
		{"height not multiple of 16", mod(func(c *Config) { c.Height = 120 }), false},
		{"width too small", mod(func(c *Config) { c.Width = 8 }), false},
		{"huge", mod(func(c *Config) { c.Height = 1 << 20 }), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrConfig)) {
				t.Fatalf("Validate() = %v, want ok %v", err, tt.ok)
			}
			if _, err := New(tt.cfg, gemm.New(1), 0); err == nil {
				t.Fatal("New with maxBatch 0 succeeded")
			}
		})
	}
	if _, err := New(DefaultConfig(), nil, 1); !errors.Is(err, ErrConfig) {
		t.Fatalf("New with nil engine: %v", err)
	}
}

// TestGradients checks the tiny model's forward against a float64 NCHW
// re-implementation built from nnref, and every one of its parameter
// gradients against central differences of that re-implementation.
func TestGradients(t *testing.T) {
	cfg := tinyConfig()
	const b = 2
	m, err := New(cfg, gemm.New(2), b)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	m.Init(1)
	x, labels := batch(cfg, b, 2)
	logits := m.Forward(x, b)
	loss := m.LossAndBackward(labels, b)

	params := to64(m.Params)
	want := refForward(cfg, m.views, params, to64(x), b)
	if e := relErr(logits, want); e > 1e-5 {
		t.Errorf("logits differ from the float64 reference by %.3g", e)
	}
	wantLoss := nnref.SoftmaxCrossEntropy(want, labels, b, cfg.Classes, cfg.Height*cfg.Width)
	if math.Abs(float64(loss)-wantLoss) > 1e-6*wantLoss {
		t.Errorf("loss %v, reference %v", loss, wantLoss)
	}

	const eps = 1e-5
	f := func() float64 {
		return nnref.SoftmaxCrossEntropy(refForward(cfg, m.views, params, to64(x), b), labels, b, cfg.Classes, cfg.Height*cfg.Width)
	}
	// Every element of the small tensors, 24 spread over each larger one.
	worst, checked := 0.0, 0
	for _, v := range m.views {
		stride := max(1, v.Size()/24)
		var got []float32
		var fd []float64
		for i := 0; i < v.Size(); i += stride {
			j := v.Offset + i
			p := params[j]
			params[j] = p + eps
			fp := f()
			params[j] = p - eps
			fm := f()
			params[j] = p
			fd = append(fd, (fp-fm)/(2*eps))
			got = append(got, m.Grads[j])
		}
		checked += len(fd)
		e := relErr(got, fd)
		worst = max(worst, e)
		if e > 1e-4 {
			t.Errorf("%s: gradient differs from finite differences by %.3g", v.Name, e)
		}
	}
	t.Logf("%d of %d parameters checked, loss %.4f, worst finite-difference error %.2g", checked, m.NumParams(), loss, worst)
}

// TestOverfit trains a small model with Adam on one fixed batch of random
// inputs and random labels until it has memorised them. (The 2/4/4/4 model of
// TestGradients is too narrow at full resolution to memorise 512 labels; its
// loss stalls near 0.7.)
func TestOverfit(t *testing.T) {
	cfg := tinyConfig()
	cfg.Widths, cfg.Bottleneck = []int{8, 8, 8, 8}, 8
	const b, steps = 2, 300
	m, err := New(cfg, gemm.New(2), b)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	m.Init(3)
	x, labels := batch(cfg, b, 4)
	// Adam, lr 3e-3, the usual betas.
	mom, vel := make([]float64, m.NumParams()), make([]float64, m.NumParams())
	const lr, b1, b2 = 3e-3, 0.9, 0.999
	var first, loss float32
	for step := 1; step <= steps; step++ {
		m.Forward(x, b)
		loss = m.LossAndBackward(labels, b)
		if step == 1 {
			first = loss
		}
		c1, c2 := 1-math.Pow(b1, float64(step)), 1-math.Pow(b2, float64(step))
		for i, g := range m.Grads {
			mom[i] = b1*mom[i] + (1-b1)*float64(g)
			vel[i] = b2*vel[i] + (1-b2)*float64(g)*float64(g)
			m.Params[i] -= float32(lr * mom[i] / c1 / (math.Sqrt(vel[i]/c2) + 1e-8))
		}
	}
	t.Logf("loss %.4f at step 1, %.4f after %d steps", first, loss, steps)
	if first < 0.9 || loss > 0.05 {
		t.Fatalf("loss %.4f → %.4f, want from ≈1.1 to < 0.05", first, loss)
	}
}

// TestNoAllocs checks that a training step allocates nothing after the first.
func TestNoAllocs(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Height, cfg.Width = 32, 32
	const b = 2
	eng := gemm.New(2)
	m, err := New(cfg, eng, b)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	m.Init(1)
	x, labels := batch(cfg, b, 5)
	step := func() {
		m.Forward(x, b)
		m.LossAndBackward(labels, b)
	}
	step()
	if a := testing.AllocsPerRun(5, step); a != 0 {
		t.Fatalf("%v allocations per step", a)
	}
}

// TestDeterminism checks that the same seed and input give bit-identical
// logits, loss and gradients, run to run and for one or two threads.
func TestDeterminism(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Height, cfg.Width = 32, 48
	const b = 3
	x, labels := batch(cfg, b, 6)
	run := func(threads int) ([]float32, []float32, []float32, float32) {
		m, err := New(cfg, gemm.New(threads), b)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		m.Init(42)
		logits := append([]float32(nil), m.Forward(x, b)...)
		loss := m.LossAndBackward(labels, b)
		return append([]float32(nil), m.Params...), logits, append([]float32(nil), m.Grads...), loss
	}
	p1, l1, g1, loss1 := run(2)
	for _, threads := range []int{2, 1} {
		p, l, g, loss := run(threads)
		if !bitEqual(p, p1) || !bitEqual(l, l1) || !bitEqual(g, g1) || math.Float32bits(loss) != math.Float32bits(loss1) {
			t.Errorf("threads %d: results differ from the first run", threads)
		}
	}
}

// TestBatchIndependence checks that folding the batch into the GEMMs keeps
// images apart: each image's logits match a batch of one.
func TestBatchIndependence(t *testing.T) {
	cfg := tinyConfig()
	const b = 3
	m, err := New(cfg, gemm.New(1), b)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	m.Init(7)
	x, _ := batch(cfg, b, 8)
	all := append([]float32(nil), m.Forward(x, b)...)
	n, k := cfg.InChannels*cfg.Height*cfg.Width, cfg.Classes*cfg.Height*cfg.Width
	for i := range b {
		one := m.Forward(x[i*n:(i+1)*n], 1)
		if e := relErr(one, to64(all[i*k:(i+1)*k])); e > 1e-6 {
			t.Errorf("image %d: batch of one differs by %.3g", i, e)
		}
	}
}

func TestPanics(t *testing.T) {
	cfg := tinyConfig()
	m, err := New(cfg, gemm.New(1), 2)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	x, labels := batch(cfg, 2, 1)
	bad := labels[:len(labels):len(labels)]
	tests := []struct {
		name string
		f    func()
	}{
		{"batch too large", func() { m.Forward(append(x, x...), 4) }},
		{"wrong input length", func() { m.Forward(x[1:], 2) }},
		{"backward without forward", func() { m.LossAndBackward(labels, 2) }},
		{"backward of another batch", func() { m.Forward(x, 2); m.LossAndBackward(labels[:len(labels)/2], 1) }},
		{"label out of range", func() { m.Forward(x, 2); bad[5] = 3; m.LossAndBackward(bad, 2) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("no panic")
				}
			}()
			tt.f()
		})
	}
}

// refForward is the model in float64 and NCHW, from nnref: the logits,
// b×Classes×H×W.
func refForward(cfg Config, views []ParamView, params, x []float64, b int) []float64 {
	vi := 0
	next := func() ([]float64, []float64) {
		w, bs := views[vi], views[vi+1]
		vi += 2
		return params[w.Offset : w.Offset+w.Size()], params[bs.Offset : bs.Offset+bs.Size()]
	}
	h, w, cin := cfg.Height, cfg.Width, cfg.InChannels
	skips := make([][]float64, len(cfg.Widths))
	for i, c := range cfg.Widths {
		wt, bs := next()
		x = nnref.ReLU(nnref.Conv(x, wt, bs, b, cin, c, h, w, 3))
		wt, bs = next()
		x = nnref.ReLU(nnref.Conv(x, wt, bs, b, c, c, h, w, 3))
		skips[i] = x
		x = nnref.MaxPool2x2(x, b*c, h, w)
		h, w, cin = h/2, w/2, c
	}
	wt, bs := next()
	x = nnref.ReLU(nnref.Conv(x, wt, bs, b, cin, cfg.Bottleneck, h, w, 3))
	wt, bs = next()
	x = nnref.ReLU(nnref.Conv(x, wt, bs, b, cfg.Bottleneck, cfg.Bottleneck, h, w, 3))
	cin = cfg.Bottleneck
	for i := len(cfg.Widths) - 1; i >= 0; i-- {
		c := cfg.Widths[i]
		wt, bs := next()
		x = nnref.ConvT2x2(x, wt, bs, b, cin, c, h, w)
		h, w = 2*h, 2*w
		x = nnref.Concat(x, skips[i], b, c, c, h*w)
		wt, bs = next()
		x = nnref.ReLU(nnref.Conv(x, wt, bs, b, 2*c, c, h, w, 3))
		wt, bs = next()
		x = nnref.ReLU(nnref.Conv(x, wt, bs, b, c, c, h, w, 3))
		cin = c
	}
	wt, bs = next()
	return nnref.Conv(x, wt, bs, b, cin, cfg.Classes, h, w, 1)
}

// batch is a reproducible random input batch (NCHW, standard normal) and
// random labels.
func batch(cfg Config, b int, seed uint64) ([]float32, []uint8) {
	r := splitmix{seed}
	x := make([]float32, b*cfg.InChannels*cfg.Height*cfg.Width)
	for i := range x {
		x[i] = float32(r.norm())
	}
	labels := make([]uint8, b*cfg.Height*cfg.Width)
	for i := range labels {
		labels[i] = uint8(r.next() % uint64(cfg.Classes))
	}
	return x, labels
}

func to64(x []float32) []float64 {
	y := make([]float64, len(x))
	for i, v := range x {
		y[i] = float64(v)
	}
	return y
}

// relErr is max|a−b| over the largest |b|.
func relErr(a []float32, b []float64) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	var d, m float64
	for i := range a {
		d = max(d, math.Abs(float64(a[i])-b[i]))
		m = max(m, math.Abs(b[i]))
	}
	if math.IsNaN(d) {
		return math.Inf(1)
	}
	if m == 0 {
		return d
	}
	return d / m
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
