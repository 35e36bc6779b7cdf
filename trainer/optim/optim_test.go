package optim

import (
	"bytes"
	"errors"
	"math"
	"testing"
)

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol*math.Max(1, math.Abs(b)) }

// TestAdamHandComputed checks two Adam steps against values worked out by
// hand from the update rule (PyTorch's Adam):
//
// step 1, g=0.5: m=0.05, v=0.00025, m̂=0.5, v̂=0.25, p -= 0.1*0.5/(0.5+1e-8) ≈ 0.1
// step 2, g=-1:  m=0.045-0.1=-0.055, v=0.00024975+0.001=0.00124975,
//
//	m̂=-0.055/0.19=-0.289474, v̂=0.00124975/0.001999=0.625188,
//	p -= 0.1*(-0.289474)/(0.790688) → p += 0.036610
func TestAdamHandComputed(t *testing.T) {
	o, err := New(Config{Kind: Adam, LR: 0.1}, 3)
	if err != nil {
		t.Fatal(err)
	}
	p := []float32{1, -2, 0}
	o.Step(p, []float32{0.5, 0.5, 0})
	want1 := []float64{0.9, -2.1, 0}
	for i := range p {
		if !near(float64(p[i]), want1[i], 1e-6) {
			t.Errorf("step 1: p[%d] = %v, want %v", i, p[i], want1[i])
		}
	}
	o.Step(p, []float32{-1, -1, 0})
	want2 := []float64{0.9 + 0.0366101, -2.1 + 0.0366101, 0}
	for i := range p {
		if !near(float64(p[i]), want2[i], 1e-5) {
			t.Errorf("step 2: p[%d] = %v, want %v", i, p[i], want2[i])
		}
	}
	if o.Steps() != 2 {
		t.Errorf("Steps = %d, want 2", o.Steps())
	}
	// m and v of element 0 after two steps.
	st := o.State()
	if !near(float64(st[0]), -0.055, 1e-6) || !near(float64(st[3]), 0.00124975, 1e-6) {
		t.Errorf("moments = %v, %v; want -0.055, 0.00124975", st[0], st[3])
	}
}

// TestSGDHandComputed checks SGD with and without momentum and L2 decay.
func TestSGDHandComputed(t *testing.T) {
	tests := []struct {
		name  string
		cfg   Config
		grads [][]float32
		want  []float64
	}{
		{
			// p = 1 - 0.1*2 = 0.8; p = 0.8 - 0.1*(-1) = 0.9
			name:  "plain",
			cfg:   Config{Kind: SGD, LR: 0.1},
			grads: [][]float32{{2}, {-1}},
			want:  []float64{0.8, 0.9},
		},
		{
			// b=2, p=0.8; b=0.9*2-1=0.8, p=0.8-0.08=0.72
			name:  "momentum",
			cfg:   Config{Kind: SGD, LR: 0.1, Momentum: 0.9},
			grads: [][]float32{{2}, {-1}},
			want:  []float64{0.8, 0.72},
		},
		{
			// g=2+0.5*1=2.5, b=2.5, p=0.75; g=-1+0.5*0.75=-0.625, b=2.25-0.625=1.625, p=0.75-0.1625=0.5875
			name:  "momentum+decay",
			cfg:   Config{Kind: SGD, LR: 0.1, Momentum: 0.9, WeightDecay: 0.5},
			grads: [][]float32{{2}, {-1}},
			want:  []float64{0.75, 0.5875},
		},
		{
			// AdamW: p = 1*(1-0.1*0.5) - 0.1*sign(g) = 0.95-0.1
			name:  "adamw",
			cfg:   Config{Kind: Adam, LR: 0.1, WeightDecay: 0.5},
			grads: [][]float32{{3}},
			want:  []float64{0.85},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := New(tt.cfg, 1)
			if err != nil {
				t.Fatal(err)
			}
			p := []float32{1}
			for i, g := range tt.grads {
				o.Step(p, g)
				if !near(float64(p[0]), tt.want[i], 1e-6) {
					t.Errorf("step %d: p = %v, want %v", i+1, p[0], tt.want[i])
				}
			}
		})
	}
}

// adamRef is Adam in float64, the oracle for the float32 loop.
func adamRef(p, g [][]float64, lr, b1, b2, eps float64) []float64 {
	n := len(p[0])
	x := append([]float64(nil), p[0]...)
	m := make([]float64, n)
	v := make([]float64, n)
	for t := 1; t <= len(g); t++ {
		for i := range x {
			m[i] = b1*m[i] + (1-b1)*g[t-1][i]
			v[i] = b2*v[i] + (1-b2)*g[t-1][i]*g[t-1][i]
			mh := m[i] / (1 - math.Pow(b1, float64(t)))
			vh := v[i] / (1 - math.Pow(b2, float64(t)))
			x[i] -= lr * mh / (math.Sqrt(vh) + eps)
		}
	}
	return x
}

func TestAdamMatchesFloat64Reference(t *testing.T) {
	const n, steps = 17, 25
	p32 := make([]float32, n)
	p64 := make([]float64, n)
	for i := range p32 {
		p32[i] = float32(i-8) / 4
		p64[i] = float64(p32[i])
	}
	var gs [][]float64
	o, _ := New(DefaultConfig(), n)
	g32 := make([]float32, n)
	for s := 0; s < steps; s++ {
		g := make([]float64, n)
		for i := range g {
			g32[i] = float32(math.Sin(float64(s*n+i))) * 0.3
			g[i] = float64(g32[i])
		}
		gs = append(gs, g)
		o.Step(p32, g32)
	}
	want := adamRef([][]float64{p64}, gs, 1e-3, 0.9, 0.999, 1e-8)
	for i := range want {
		if !near(float64(p32[i]), want[i], 1e-5) {
			t.Errorf("p[%d] = %v, want %v", i, p32[i], want[i])
		}
	}
}

// TestStateRoundTrip checks that an optimizer restored from MarshalBinary
// mid-run continues bit-identically to one that never stopped.
func TestStateRoundTrip(t *testing.T) {
	for _, cfg := range []Config{DefaultConfig(), {Kind: SGD, LR: 0.01, Momentum: 0.9, WeightDecay: 1e-4}, {Kind: SGD, LR: 0.01}} {
		t.Run(string(cfg.Kind), func(t *testing.T) {
			const n = 33
			grad := func(s int) []float32 {
				g := make([]float32, n)
				for i := range g {
					g[i] = float32(math.Cos(float64(7*s+i))) * 0.1
				}
				return g
			}
			a, _ := New(cfg, n)
			pa := make([]float32, n)
			for i := range pa {
				pa[i] = float32(i) * 0.01
			}
			for s := 0; s < 5; s++ {
				a.Step(pa, grad(s))
			}
			saved, err := a.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			pb := append([]float32(nil), pa...)
			b, _ := New(cfg, n)
			if err := b.UnmarshalBinary(saved); err != nil {
				t.Fatal(err)
			}
			if b.Steps() != 5 {
				t.Fatalf("restored Steps = %d, want 5", b.Steps())
			}
			again, _ := b.MarshalBinary()
			if !bytes.Equal(saved, again) {
				t.Fatal("re-marshalled state differs")
			}
			for s := 5; s < 10; s++ {
				a.Step(pa, grad(s))
				b.Step(pb, grad(s))
			}
			for i := range pa {
				if math.Float32bits(pa[i]) != math.Float32bits(pb[i]) {
					t.Fatalf("p[%d]: uninterrupted %v, resumed %v", i, pa[i], pb[i])
				}
			}
		})
	}
}

func TestUnmarshalRejects(t *testing.T) {
	adam, _ := New(DefaultConfig(), 4)
	good, _ := adam.MarshalBinary()
	sgd, _ := New(Config{Kind: SGD, LR: 0.1, Momentum: 0.5}, 4)
	sgdState, _ := sgd.MarshalBinary()
	other, _ := New(DefaultConfig(), 5)
	otherState, _ := other.MarshalBinary()
	tests := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"bad magic", append([]byte("XXXX"), good[4:]...)},
		{"truncated", good[:len(good)-1]},
		{"extra", append(append([]byte(nil), good...), 0)},
		{"other kind", sgdState},
		{"other size", otherState},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, _ := New(DefaultConfig(), 4)
			o.State()[0] = 42
			if err := o.UnmarshalBinary(tt.data); !errors.Is(err, ErrState) {
				t.Fatalf("err = %v, want ErrState", err)
			}
			if o.State()[0] != 42 || o.Steps() != 0 {
				t.Fatal("failed UnmarshalBinary changed the optimizer")
			}
		})
	}
}

// TestCheckState: CheckState, reading only the header, accepts exactly the
// states UnmarshalBinary accepts, for each kind of optimizer.
func TestCheckState(t *testing.T) {
	marshal := func(cfg Config, n int) []byte {
		o, err := New(cfg, n)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := o.MarshalBinary()
		return b
	}
	adam, sgd, momentum := DefaultConfig(), Config{Kind: SGD, LR: 0.1}, Config{Kind: SGD, LR: 0.1, Momentum: 0.5}
	good := marshal(adam, 4)
	tests := []struct {
		name    string
		cfg     Config
		n       int
		data    []byte
		wantErr error // nil: accepted
	}{
		{"adam", adam, 4, good, nil},
		{"adam, no parameters", adam, 0, marshal(adam, 0), nil},
		{"sgd", sgd, 3, marshal(sgd, 3), nil},
		{"sgd with momentum", momentum, 3, marshal(momentum, 3), nil},
		{"empty", adam, 4, nil, ErrState},
		{"short header", adam, 4, good[:StateHeaderSize-1], ErrState},
		{"bad magic", adam, 4, append([]byte("XXXX"), good[4:]...), ErrState},
		{"truncated", adam, 4, good[:len(good)-1], ErrState},
		{"extra", adam, 4, append(append([]byte(nil), good...), 0), ErrState},
		{"other kind", adam, 3, marshal(momentum, 3), ErrState},
		{"momentum differs", momentum, 3, marshal(sgd, 3), ErrState},
		{"other size", adam, 4, marshal(adam, 5), ErrState},
		{"bad config", Config{Kind: Adam}, 4, good, ErrConfig},
		{"negative count", adam, -1, good, ErrConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			head := tt.data[:min(len(tt.data), StateHeaderSize)]
			err := CheckState(tt.cfg, tt.n, head, int64(len(tt.data)))
			if tt.wantErr == nil && err != nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("CheckState = %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr == ErrConfig {
				return
			}
			o, err2 := New(tt.cfg, tt.n)
			if err2 != nil {
				t.Fatal(err2)
			}
			if uerr := o.UnmarshalBinary(tt.data); (uerr == nil) != (err == nil) {
				t.Fatalf("CheckState = %v but UnmarshalBinary = %v", err, uerr)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	bad := []Config{
		{Kind: "rmsprop", LR: 1},
		{Kind: Adam, LR: 0},
		{Kind: Adam, LR: math.NaN()},
		{Kind: Adam, LR: 1, Beta1: 1},
		{Kind: Adam, LR: 1, Eps: -1},
		{Kind: SGD, LR: 1, Momentum: 1},
		{Kind: SGD, LR: 1, WeightDecay: -1},
	}
	for _, c := range bad {
		if _, err := New(c, 1); !errors.Is(err, ErrConfig) {
			t.Errorf("New(%+v) err = %v, want ErrConfig", c, err)
		}
	}
}

func TestStepDoesNotAllocate(t *testing.T) {
	const n = 1000
	for _, cfg := range []Config{DefaultConfig(), {Kind: SGD, LR: 0.1, Momentum: 0.9}} {
		o, _ := New(cfg, n)
		p := make([]float32, n)
		g := make([]float32, n)
		if a := testing.AllocsPerRun(10, func() { o.Step(p, g) }); a != 0 {
			t.Errorf("%s: %v allocations per Step", cfg.Kind, a)
		}
	}
}

func BenchmarkAdamUNetS(b *testing.B) {
	const n = 1941139
	o, _ := New(DefaultConfig(), n)
	p := make([]float32, n)
	g := make([]float32, n)
	for i := range g {
		g[i] = float32(i%7) * 1e-3
	}
	b.SetBytes(4 * 4 * n)
	for b.Loop() {
		o.Step(p, g)
	}
}
