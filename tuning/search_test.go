package tuning

import (
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"testing"
)

func mustSpace(t *testing.T, ps ...Param) Space {
	t.Helper()
	s, err := NewSpace(ps...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// mixedSpace has one parameter of every kind.
func mixedSpace(t *testing.T) Space {
	return mustSpace(t,
		Param{Name: "lr", Type: LogUniform, Low: 1e-5, High: 1e-1},
		Param{Name: "momentum", Type: Uniform, Low: 0.5, High: 0.99},
		Param{Name: "batch", Type: Int, Low: 2, High: 128, Log: true},
		Param{Name: "epochs", Type: Int, Low: 1, High: 4},
		Param{Name: "optimizer", Type: Choice, Values: []Value{String("adam"), String("sgd")}},
		Param{Name: "weight_decay", Type: Choice, Values: []Value{IntValue(0), Float(1e-4), Float(1e-3)}},
	)
}

// inSpace fails unless p is a valid point of s.
func inSpace(t *testing.T, s Space, p Params) {
	t.Helper()
	if err := s.check(p); err != nil {
		t.Fatal(err)
	}
	for _, sp := range s.Params {
		if sp.Type == Choice {
			continue
		}
		if v := p[sp.Name].Float(); v < sp.Low || v > sp.High {
			t.Fatalf("%s = %v outside [%v, %v]", sp.Name, v, sp.Low, sp.High)
		}
	}
}

func TestGridOrder(t *testing.T) {
	s := mustSpace(t,
		Param{Name: "opt", Type: Choice, Values: []Value{String("adam"), String("sgd")}},
		Param{Name: "b", Type: Int, Low: 1, High: 3},
		Param{Name: "lr", Type: LogUniform, Low: 1e-3, High: 1e-1, GridPoints: 3},
	)
	g, err := NewGrid(s)
	if err != nil {
		t.Fatal(err)
	}
	if g.Size() != 18 {
		t.Fatalf("size %d, want 18", g.Size())
	}
	// Names in order b, lr, opt; the last (opt) varies fastest.
	var want []Params
	for _, b := range []int64{1, 2, 3} {
		for _, lr := range []float64{1e-3, exp((math.Log(1e-3) + math.Log(1e-1)) / 2), 1e-1} {
			for _, o := range []string{"adam", "sgd"} {
				want = append(want, Params{"b": IntValue(b), "lr": Float(lr), "opt": String(o)})
			}
		}
	}
	for n, w := range want {
		got, err := g.Suggest(n, nil)
		if err != nil {
			t.Fatal(n, err)
		}
		if !reflect.DeepEqual(got, w) {
			t.Fatalf("point %d = %s, want %s", n, got, w)
		}
	}
	for _, n := range []int{18, 19, 1000} {
		if _, err := g.Suggest(n, nil); !errors.Is(err, ErrExhausted) {
			t.Fatalf("Suggest(%d) err = %v, want ErrExhausted", n, err)
		}
	}
	// Int grid points, in log space, deduplicated.
	g2, err := NewGrid(mustSpace(t, Param{Name: "b", Type: Int, Low: 1, High: 4, Log: true, GridPoints: 5}))
	if err != nil {
		t.Fatal(err)
	}
	var got []int64
	for n := 0; n < g2.Size(); n++ {
		p, _ := g2.Suggest(n, nil)
		got = append(got, p["b"].Int())
	}
	if !reflect.DeepEqual(got, []int64{1, 2, 3, 4}) {
		t.Fatalf("int log grid %v", got)
	}
	if _, err := NewGrid(mustSpace(t, Param{Name: "x", Type: Uniform, High: 1})); err == nil {
		t.Fatal("uniform without grid_points accepted")
	}
}

func TestRandomDeterministicAndBounded(t *testing.T) {
	s := mixedSpace(t)
	a, _ := NewRandom(s, 42)
	b, _ := NewRandom(s, 42)
	c, _ := NewRandom(s, 43)
	same := 0
	for n := 199; n >= 0; n-- { // order must not matter
		pa, err := a.Suggest(n, nil)
		if err != nil {
			t.Fatal(err)
		}
		pb, _ := b.Suggest(n, []Observation{{Trial: 0, Params: pa, Value: 1, HasValue: true}})
		pc, _ := c.Suggest(n, nil)
		if !reflect.DeepEqual(pa, pb) {
			t.Fatalf("trial %d: %s != %s", n, pa, pb)
		}
		if reflect.DeepEqual(pa, pc) {
			same++
		}
		inSpace(t, s, pa)
	}
	if same > 0 {
		t.Fatalf("seeds 42 and 43 agree on %d trials", same)
	}
}

func TestRandomDistribution(t *testing.T) {
	s := mustSpace(t,
		Param{Name: "lr", Type: LogUniform, Low: 1e-4, High: 1},
		Param{Name: "b", Type: Int, Low: 1, High: 4},
		Param{Name: "u", Type: Uniform, Low: 0, High: 10},
	)
	r, _ := NewRandom(s, 1)
	const n = 4000
	var decades [4]int
	var ints [4]int
	var sum float64
	for i := range n {
		p, _ := r.Suggest(i, nil)
		d := int(math.Floor(-math.Log10(p["lr"].Float())))
		decades[min(d, 3)]++
		ints[p["b"].Int()-1]++
		sum += p["u"].Float()
	}
	// Log-uniform: each decade holds about a quarter of the draws.
	for i, c := range append(decades[:], ints[:]...) {
		if c < n/4-150 || c > n/4+150 {
			t.Fatalf("bucket %d has %d of %d draws (decades %v, ints %v)", i, c, n, decades, ints)
		}
	}
	if mean := sum / n; math.Abs(mean-5) > 0.2 {
		t.Fatalf("uniform mean %v", mean)
	}
}

// quadratic is a 2-D bowl with its minimum 0 at (0.7, 1e-2) on an
// (uniform, loguniform) space.
func quadratic(p Params) float64 {
	x := p["x"].Float() - 0.7
	y := math.Log10(p["y"].Float()) + 2
	return x*x + 0.5*y*y
}

func runSearch(t *testing.T, s Searcher, trials int, f func(Params) float64) (best float64, hist []Observation) {
	t.Helper()
	best = math.Inf(1)
	for n := range trials {
		p, err := s.Suggest(n, hist)
		if err != nil {
			t.Fatal(err)
		}
		v := f(p)
		best = math.Min(best, v)
		hist = append(hist, Observation{Trial: n, Params: p, Value: v, HasValue: true})
	}
	return best, hist
}

func TestTPEBeatsRandom(t *testing.T) {
	s := mustSpace(t,
		Param{Name: "x", Type: Uniform, Low: -5, High: 5},
		Param{Name: "y", Type: LogUniform, Low: 1e-6, High: 1},
	)
	const seeds, trials = 10, 40
	var sumTPE, sumRandom float64
	for seed := range uint64(seeds) {
		tpe, err := NewTPE(s, seed, Minimize, TPEConfig{})
		if err != nil {
			t.Fatal(err)
		}
		rnd, _ := NewRandom(s, seed)
		bt, _ := runSearch(t, tpe, trials, quadratic)
		br, _ := runSearch(t, rnd, trials, quadratic)
		sumTPE += bt
		sumRandom += br
	}
	t.Logf("mean best over %d seeds, %d trials: tpe %.5f, random %.5f", seeds, trials, sumTPE/seeds, sumRandom/seeds)
	if sumTPE >= sumRandom {
		t.Fatalf("TPE mean best %.5f is not better than random's %.5f", sumTPE/seeds, sumRandom/seeds)
	}
}

func TestTPEDeterministicMixed(t *testing.T) {
	s := mixedSpace(t)
	// A maximised objective that likes sgd, weight_decay 1e-4, large batch.
	f := func(p Params) float64 {
		v := -math.Abs(math.Log10(p["lr"].Float())+2) - math.Abs(p["momentum"].Float()-0.9)
		if p["optimizer"].Str() == "sgd" {
			v++
		}
		if p["weight_decay"] == Float(1e-4) {
			v++
		}
		return v + math.Log2(float64(p["batch"].Int()))/7 - float64(p["epochs"].Int())/10
	}
	a, _ := NewTPE(s, 5, Maximize, TPEConfig{NStartup: 5})
	b, _ := NewTPE(s, 5, Maximize, TPEConfig{NStartup: 5})
	_, hist := runSearch(t, a, 30, f)
	for _, o := range hist {
		inSpace(t, s, o.Params)
	}
	// Same seed and history give the same suggestion, whatever came
	// before; pending trials are skipped.
	for _, n := range []int{29, 10, 20} {
		pa, _ := a.Suggest(n, hist[:n])
		pb, _ := b.Suggest(n, append(hist[:n:n], Observation{Trial: 99, Params: hist[0].Params}))
		if !reflect.DeepEqual(pa, pb) || !reflect.DeepEqual(pa, hist[n].Params) {
			t.Fatalf("trial %d: %s, %s, recorded %s", n, pa, pb, hist[n].Params)
		}
	}
	// After start-up, TPE favours the good choices (over a few seeds: a
	// single run may be unlucky).
	sgd, wd, total := 0, 0, 0
	for seed := range uint64(4) {
		tpe, _ := NewTPE(s, seed, Maximize, TPEConfig{NStartup: 5})
		_, h := runSearch(t, tpe, 40, f)
		for _, o := range h[20:] {
			total++
			if o.Params["optimizer"].Str() == "sgd" {
				sgd++
			}
			if o.Params["weight_decay"] == Float(1e-4) {
				wd++
			}
		}
	}
	if sgd*10 < total*7 || wd*10 < total*6 {
		t.Fatalf("late trials: sgd in %d, weight_decay 1e-4 in %d, of %d", sgd, wd, total)
	}
	// Start-up trials are random search's.
	r, _ := NewRandom(s, 5)
	for n := range 5 {
		p, _ := r.Suggest(n, nil)
		if !reflect.DeepEqual(p, hist[n].Params) {
			t.Fatalf("start-up trial %d: %s, random %s", n, hist[n].Params, p)
		}
	}
	// A history that does not fit the space is an error.
	bad := append(hist[:10:10], Observation{Trial: 10, Params: Params{"lr": Float(1)}, HasValue: true})
	if _, err := a.Suggest(11, bad); err == nil {
		t.Fatal("foreign params accepted")
	}
}

func TestTPEConfigValidate(t *testing.T) {
	s := mustSpace(t, Param{Name: "x", Type: Uniform, High: 1})
	for _, c := range []TPEConfig{{NStartup: 1}, {Gamma: 1}, {NCandidates: -1}} {
		if _, err := NewTPE(s, 1, Minimize, c); err == nil {
			t.Fatalf("%+v accepted", c)
		}
	}
	if _, err := NewTPE(s, 1, "up", TPEConfig{}); err == nil {
		t.Fatal("mode up accepted")
	}
}

func TestPortableMath(t *testing.T) {
	for _, x := range []float64{-745, -700, -20, -1, -0.5, -1e-9, 0, 1e-9, 0.3, 1, 2.5, 10, 100, 709} {
		got, want := exp(x), math.Exp(x)
		if math.Abs(got-want) > 2e-16*want {
			t.Errorf("exp(%v) = %v, math.Exp %v", x, got, want)
		}
	}
	if exp(1000) != math.Inf(1) || exp(-1000) != 0 || !math.IsNaN(exp(math.NaN())) {
		t.Error("exp limits")
	}
	for z := -6.0; z <= 6; z += 0.25 {
		want := 0.5 * (1 + math.Erf(z/math.Sqrt2))
		if math.Abs(phi(z)-want) > 1e-7 {
			t.Errorf("phi(%v) = %v, want %v", z, phi(z), want)
		}
	}
}

func TestTPENaNIsWorst(t *testing.T) {
	s := mustSpace(t, Param{Name: "x", Type: Uniform, High: 1})
	tpe, _ := NewTPE(s, 3, Maximize, TPEConfig{NStartup: 2})
	_, hist := runSearch(t, tpe, 6, func(p Params) float64 { return math.NaN() })
	if _, err := tpe.Suggest(6, hist); err != nil {
		t.Fatal(err)
	}
}

// TestGolden pins exact suggestions: a change here changes what a replay
// of an existing sweep log would recompute, so it must be deliberate.
func TestGolden(t *testing.T) {
	s := mustSpace(t,
		Param{Name: "x", Type: Uniform, Low: -5, High: 5},
		Param{Name: "y", Type: LogUniform, Low: 1e-6, High: 1},
	)
	tpe, _ := NewTPE(s, 1, Minimize, TPEConfig{})
	_, hist := runSearch(t, tpe, 16, quadratic)
	r, _ := NewRandom(mixedSpace(t), 9)
	p, _ := r.Suggest(3, nil)
	for _, tt := range []struct {
		name string
		p    Params
		want string
	}{
		{"tpe", hist[15].Params, `{"x":0.3951562018723678,"y":0.024816591143070395}`},
		{"random", p, `{"batch":3,"epochs":4,"lr":0.0008336328252557853,"momentum":0.558235847462224,"optimizer":"adam","weight_decay":0.001}`},
	} {
		b, err := json.Marshal(tt.p)
		if err != nil || string(b) != tt.want {
			t.Errorf("%s: %s (%v), want %s", tt.name, b, err, tt.want)
		}
	}
}
