package tuning

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// TPEConfig holds the options of TPE; the zero value of a field takes its
// default (DefaultTPEConfig).
type TPEConfig struct {
	// NStartup is how many trials with an objective must exist before TPE
	// models them; until then it suggests random search's points
	// (default 10; 2..MaxTrialsLimit).
	NStartup int `json:"n_startup,omitempty"`
	// NCandidates is how many candidates are drawn from l(x) per
	// suggestion (default 24; 1..MaxTPECandidates).
	NCandidates int `json:"n_candidates,omitempty"`
	// Gamma is the fraction of observations, best first, that form the
	// good density l(x) (default 0.25; in (0, 1)).
	Gamma float64 `json:"gamma,omitempty"`
}

// DefaultTPEConfig returns the defaults of TPEConfig.
func DefaultTPEConfig() TPEConfig {
	return TPEConfig{NStartup: 10, NCandidates: 24, Gamma: 0.25}
}

func (c TPEConfig) withDefaults() TPEConfig {
	d := DefaultTPEConfig()
	if c.NStartup == 0 {
		c.NStartup = d.NStartup
	}
	if c.NCandidates == 0 {
		c.NCandidates = d.NCandidates
	}
	if c.Gamma == 0 {
		c.Gamma = d.Gamma
	}
	return c
}

// Validate checks c after defaults.
func (c TPEConfig) Validate() error {
	if pr := c.problems(); len(pr) > 0 {
		return fmt.Errorf("tuning: tpe: %s %s", pr[0][0], pr[0][1])
	}
	return nil
}

// problems lists (option, message) pairs of what is wrong with c.
func (c TPEConfig) problems() [][2]string {
	c = c.withDefaults()
	var out [][2]string
	if c.NStartup < 2 || c.NStartup > MaxTrialsLimit {
		out = append(out, [2]string{"n_startup", fmt.Sprintf("must be in 2..%d, got %d", MaxTrialsLimit, c.NStartup)})
	}
	if c.NCandidates < 1 || c.NCandidates > MaxTPECandidates {
		out = append(out, [2]string{"n_candidates", fmt.Sprintf("must be in 1..%d, got %d", MaxTPECandidates, c.NCandidates)})
	}
	if !(c.Gamma > 0 && c.Gamma < 1) {
		out = append(out, [2]string{"gamma", fmt.Sprintf("must be in (0, 1), got %v", c.Gamma)})
	}
	return out
}

// TPE is the Tree-structured Parzen Estimator of Bergstra et al. (2011),
// in its multivariate form (as in Optuna's multivariate TPE):
//
//   - Until NStartup trials have an objective it returns Random's point for
//     trial n (same seed), so its start is random search.
//   - Then it sorts the trials with an objective, best first (ties by trial
//     number), and splits them: the first ceil(Gamma·N) are good, the rest
//     bad.
//   - Each group gets a Parzen estimator over the whole space: an equal
//     mixture of one kernel per trial plus a prior kernel. A kernel is a
//     product over parameters: for numeric parameters a Gaussian truncated
//     to the range, in log space for LogUniform and log Int, over
//     [Low−½, High+½] for Int (rounded after sampling), with the bandwidth
//     of Scott's rule 0.2·N^(−1/(d+4))·range (the prior kernel: centred,
//     bandwidth the range); for Choice a smoothed categorical, weight 1 on
//     the trial's value plus 1/K on every value (the prior: uniform).
//   - It draws NCandidates points jointly from the good mixture (a kernel,
//     then every parameter from it) and returns the one with the largest
//     log l(x) − log g(x), the first on ties.
//
// Trials without an objective are skipped; a NaN objective counts as the
// worst. All arithmetic runs in a fixed
// order from a per-trial stream seeded by (seed, n), so the result is a
// function of (space, seed, config, mode, n, history).
type TPE struct {
	space  Space
	seed   uint64
	mode   Mode
	cfg    TPEConfig
	random *Random
}

// NewTPE returns TPE over space, optimising towards mode.
func NewTPE(space Space, seed uint64, mode Mode, cfg TPEConfig) (*TPE, error) {
	if err := space.Validate(); err != nil {
		return nil, err
	}
	if mode != Minimize && mode != Maximize {
		return nil, fmt.Errorf("tuning: tpe: mode %q is not min or max", mode)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &TPE{space: space, seed: seed, mode: mode, cfg: cfg.withDefaults(),
		random: &Random{space: space, seed: seed}}, nil
}

// Suggest returns trial n's parameters given the earlier trials.
func (t *TPE) Suggest(n int, history []Observation) (Params, error) {
	if n < 0 {
		return nil, fmt.Errorf("tuning: trial number %d is negative", n)
	}
	var obs []Observation
	for _, o := range history {
		if !o.HasValue {
			continue
		}
		if err := t.space.check(o.Params); err != nil {
			return nil, fmt.Errorf("tuning: tpe: trial %d: %w", o.Trial, err)
		}
		obs = append(obs, o)
	}
	if len(obs) < t.cfg.NStartup {
		return t.random.Suggest(n, nil)
	}
	if len(obs) > MaxTPEWork/t.cfg.NCandidates {
		// Never for a sweep that passed validation: it has fewer trials.
		return nil, fmt.Errorf("tuning: tpe: %d trials × %d candidates is more work than %d per suggestion allows",
			len(obs), t.cfg.NCandidates, MaxTPEWork)
	}
	loss := func(o Observation) float64 {
		switch {
		case math.IsNaN(o.Value):
			return math.Inf(1) // a diverged trial is the worst
		case t.mode == Maximize:
			return -o.Value
		default:
			return o.Value
		}
	}
	slices.SortStableFunc(obs, func(a, b Observation) int {
		if c := cmp.Compare(loss(a), loss(b)); c != 0 {
			return c
		}
		return cmp.Compare(a.Trial, b.Trial)
	})
	nGood := int(math.Ceil(t.cfg.Gamma * float64(len(obs))))
	nGood = max(1, min(nGood, len(obs)-1))
	good := t.parzen(obs[:nGood])
	bad := t.parzen(obs[nGood:])

	r := rng(t.seed, n, saltTPE)
	x := make([]float64, len(t.space.Params))
	best := make([]float64, len(x))
	bestScore := math.Inf(-1)
	for c := 0; c < t.cfg.NCandidates; c++ {
		good.sample(r, x)
		s := good.logPDF(x) - bad.logPDF(x)
		if c == 0 || s > bestScore {
			bestScore = s
			copy(best, x)
		}
	}
	return t.decode(best), nil
}

// dim is one parameter in the internal coordinates of TPE: numeric ones
// on [lo, hi] (log space for log scales), choices as an index in 0..k-1.
type dim struct {
	numeric bool
	lo, hi  float64
	log     bool
	integer bool
	k       int
}

func (t *TPE) dims() []dim {
	ds := make([]dim, len(t.space.Params))
	for i, p := range t.space.Params {
		d := dim{numeric: p.Type != Choice, lo: p.Low, hi: p.High}
		switch p.Type {
		case Choice:
			d.k = len(p.Values)
		case LogUniform:
			d.log = true
		case Int:
			d.integer, d.log = true, p.Log
			d.lo, d.hi = p.Low-0.5, p.High+0.5
		}
		if d.log {
			d.lo, d.hi = math.Log(d.lo), math.Log(d.hi)
		}
		ds[i] = d
	}
	return ds
}

// encode maps a trial's params to internal coordinates.
func (t *TPE) encode(p Params) []float64 {
	x := make([]float64, len(t.space.Params))
	for i, sp := range t.space.Params {
		v := p[sp.Name]
		switch {
		case sp.Type == Choice:
			x[i] = float64(sp.choiceIndex(v))
		case sp.Type == LogUniform || sp.Log:
			x[i] = math.Log(v.Float())
		default:
			x[i] = v.Float()
		}
	}
	return x
}

// decode maps internal coordinates (as drawn: ints not yet rounded) to
// params.
func (t *TPE) decode(x []float64) Params {
	out := make(Params, len(x))
	for i, p := range t.space.Params {
		v := x[i]
		switch p.Type {
		case Choice:
			out[p.Name] = p.Values[int(v)]
		case Uniform:
			out[p.Name] = Float(clamp(v, p.Low, p.High))
		case LogUniform:
			out[p.Name] = Float(clamp(exp(v), p.Low, p.High))
		case Int:
			if p.Log {
				v = exp(v)
			}
			out[p.Name] = IntValue(int64(clamp(math.Round(v), p.Low, p.High)))
		}
	}
	return out
}

// parzenEst is an equal mixture of product kernels; kernel 0 is the prior.
type parzenEst struct {
	dims  []dim
	mus   [][]float64 // [kernel][dim]; kernel 0: the prior
	sigma []float64   // per dim, for the data kernels
	norm  [][]float64 // [kernel][dim]: log of the truncation mass
}

func (t *TPE) parzen(obs []Observation) *parzenEst {
	ds := t.dims()
	// Integer dims are scored at rounded points: snap the kernels' centres
	// the same way as encode does (encode of an int is already integral).
	pe := &parzenEst{dims: ds, sigma: make([]float64, len(ds))}
	prior := make([]float64, len(ds))
	for i, d := range ds {
		if d.numeric {
			prior[i] = 0.5 * (d.lo + d.hi)
		} else {
			prior[i] = -1 // the uniform prior
		}
	}
	pe.mus = append(pe.mus, prior)
	for _, o := range obs {
		pe.mus = append(pe.mus, t.encode(o.Params))
	}
	n := float64(len(obs))
	scott := 0.2 * exp(-math.Log(n)/(float64(len(ds))+4))
	for i, d := range ds {
		w := d.hi - d.lo
		if w <= 0 {
			w = 1 // a single-point range: any positive width will do
		}
		pe.sigma[i] = scott * w
	}
	for k, mu := range pe.mus {
		row := make([]float64, len(ds))
		for i, d := range ds {
			if !d.numeric {
				continue
			}
			s := pe.sigmaOf(k, i)
			row[i] = math.Log(max(phi((d.hi-mu[i])/s)-phi((d.lo-mu[i])/s), 1e-300))
		}
		pe.norm = append(pe.norm, row)
	}
	return pe
}

// sigmaOf is the bandwidth of kernel k in dim i.
func (pe *parzenEst) sigmaOf(k, i int) float64 {
	if k == 0 {
		w := pe.dims[i].hi - pe.dims[i].lo
		if w <= 0 {
			return 1
		}
		return w
	}
	return pe.sigma[i]
}

// sample draws x from the mixture: a kernel, then every dim from it.
func (pe *parzenEst) sample(r *rand.Rand, x []float64) {
	k := min(int(unit(r)*float64(len(pe.mus))), len(pe.mus)-1)
	mu := pe.mus[k]
	for i, d := range pe.dims {
		if !d.numeric {
			x[i] = float64(pe.sampleCat(r, k, i))
			continue
		}
		s := pe.sigmaOf(k, i)
		v := mu[i]
		ok := false
		for range 32 { // rejection sampling of the truncated normal
			v = mu[i] + s*normal(r)
			if v >= d.lo && v <= d.hi {
				ok = true
				break
			}
		}
		if !ok {
			v = clamp(v, d.lo, d.hi)
		}
		if d.integer {
			v = snapInt(d, v)
		}
		x[i] = v
	}
}

// snapInt rounds an internal int coordinate to the coordinate of the
// nearest integer value.
func snapInt(d dim, v float64) float64 {
	lo, hi := d.lo+0.5, d.hi-0.5
	if d.log {
		iv := clamp(math.Round(exp(v)), math.Round(exp(d.lo)+0.5), math.Round(exp(d.hi)-0.5))
		return math.Log(iv)
	}
	return clamp(math.Round(v), lo, hi)
}

// catProbs returns kernel k's probability of value c in choice dim i.
func (pe *parzenEst) catProb(k, i, c int) float64 {
	kk := float64(pe.dims[i].k)
	if k == 0 {
		return 1 / kk
	}
	p := 1 / kk
	if int(pe.mus[k][i]) == c {
		p++
	}
	return p / 2
}

func (pe *parzenEst) sampleCat(r *rand.Rand, k, i int) int {
	u := unit(r)
	acc := 0.0
	kk := pe.dims[i].k
	for c := range kk {
		acc += pe.catProb(k, i, c)
		if u < acc {
			return c
		}
	}
	return kk - 1
}

// logPDF is the log density of the mixture at x, summed in kernel order.
func (pe *parzenEst) logPDF(x []float64) float64 {
	logs := make([]float64, len(pe.mus))
	for k, mu := range pe.mus {
		var l float64
		for i, d := range pe.dims {
			if !d.numeric {
				l += math.Log(pe.catProb(k, i, int(x[i])))
				continue
			}
			s := pe.sigmaOf(k, i)
			z := (x[i] - mu[i]) / s
			l += -0.5*z*z - math.Log(s) - 0.5*math.Log(2*math.Pi) - pe.norm[k][i]
		}
		logs[k] = l
	}
	m := math.Inf(-1)
	for _, l := range logs {
		m = max(m, l)
	}
	var sum float64
	for _, l := range logs {
		sum += exp(l - m)
	}
	return m + math.Log(sum) - math.Log(float64(len(logs)))
}
