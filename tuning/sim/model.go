package sim

import (
	"math"
	"math/rand/v2"

	"github.com/trainctl/trainctl/tuning"
)

// Model is a parametric learning-curve benchmark: validation error
// (minimize) of a configuration of Space() after t epochs,
//
//	err(x, t) = a(x) + b(x) · t^(−c(x)) + ε_trial + ε_t
//
// with, writing e = lr/(1−momentum) for the effective learning rate,
// e* = 0.01·sqrt(batch/64) for its optimum (the linear-scaling heuristic's
// square-root form) and q = log10(e/e*) for the distance from it in decades:
//
//	a = 0.05 + 0.08·q² (capped at 0.85)  asymptotic error, best at q = 0
//	      + 0.20·(dropout − 0.2)²        dropout has an optimum at 0.2
//	      + 0.02·log2(batch/64)²/4       large and small batches generalise a bit worse
//	b = 0.4 + 0.3·(1 − σ(2q))            initial gap: larger steps start lower
//	c = 0.25 + 0.75·σ(2(q+1))             larger steps also converge faster, so
//	                                      a too-large lr looks good early and
//	                                      curves cross (what makes early
//	                                      stopping fallible)
//	(a + b is capped at 0.9, chance-ish; σ is the logistic function)
//	ε_trial ~ N(0, 0.005²)  per trial (seed luck), ε_t ~ N(0, 0.003²) per epoch
//
// and the epoch takes 60 s · (64/batch)^0.5 · (1 + momentum·0.05) · u, u ~
// U(0.9, 1.1) per trial, in simulated time. The noise is drawn from a stream
// seeded by (Seed, trial), so a trial's curve is a function of (Seed, trial,
// params). Its noise-free minimum over the space is 0.05 (q = 0, dropout 0.2,
// batch 64), reached at MaxBudget→∞; Optimum gives the value at a budget.
type Model struct {
	Seed uint64
	// Noise multiplies both noise terms (0 means 1). The benchmark uses
	// it to check how the comparison holds up when early results rank
	// configurations less reliably than the default model does.
	Noise float64
}

// Space returns the search space the model is defined on: lr loguniform
// [1e-5, 1], momentum uniform [0, 0.99], batch log-int [16, 512], dropout
// uniform [0, 0.6].
func Space() tuning.Space {
	s, err := tuning.NewSpace(
		tuning.Param{Name: "lr", Type: tuning.LogUniform, Low: 1e-5, High: 1},
		tuning.Param{Name: "momentum", Type: tuning.Uniform, Low: 0, High: 0.99},
		tuning.Param{Name: "batch", Type: tuning.Int, Low: 16, High: 512, Log: true},
		tuning.Param{Name: "dropout", Type: tuning.Uniform, Low: 0, High: 0.6},
	)
	if err != nil {
		panic(err) // a constant space; cannot fail
	}
	return s
}

// curve holds the model's coefficients for one trial.
type curve struct {
	a, b, c    float64
	offset     float64 // ε_trial
	epochSecs  float64
	noise      *rand.Rand
	noiseScale float64
}

func coefficients(p tuning.Params) (a, b, c, secs float64) {
	lr, mom := p["lr"].Float(), p["momentum"].Float()
	batch, drop := p["batch"].Float(), p["dropout"].Float()
	e := lr / (1 - mom)
	eStar := 0.01 * math.Sqrt(batch/64)
	q := math.Log10(e / eStar)
	lb := math.Log2(batch / 64)
	a = 0.05 + math.Min(0.08*q*q, 0.85) + 0.20*(drop-0.2)*(drop-0.2) + 0.02*lb*lb/4
	a = math.Min(a, 0.89)
	b = math.Min(0.4+0.3*(1-sigmoid(2*q)), 0.9-a)
	c = 0.25 + 0.75*sigmoid(2*(q+1))
	secs = 60 * math.Sqrt(64/batch) * (1 + 0.05*mom)
	return a, b, c, secs
}

func (m Model) newCurve(trial int, p tuning.Params) *curve {
	a, b, c, secs := coefficients(p)
	r := rand.New(rand.NewPCG(m.Seed, uint64(trial)+0x5eed))
	k := m.Noise
	if k == 0 {
		k = 1
	}
	cv := &curve{a: a, b: b, c: c, noise: r, noiseScale: 0.003 * k}
	cv.offset = 0.005 * k * r.NormFloat64()
	cv.epochSecs = secs * (0.9 + 0.2*r.Float64())
	return cv
}

// clean returns the noise-free error after t epochs.
func (cv *curve) clean(t int) float64 { return cv.a + cv.b*math.Pow(float64(t), -cv.c) }

// observe returns the reported (noisy) error after epoch t; epochs must be
// observed in order 1, 2, … for the noise stream to be reproducible.
func (cv *curve) observe(t int) float64 {
	return cv.clean(t) + cv.offset + cv.noiseScale*cv.noise.NormFloat64()
}

// Clean returns the noise-free error of params after t epochs.
func Clean(p tuning.Params, t int) float64 {
	a, b, c, _ := coefficients(p)
	return a + b*math.Pow(float64(t), -c)
}

// Optimum returns the model's noise-free minimum error at budget t: batch
// 64 and dropout 0.2 are optimal at every t; the learning rate is found by
// scanning q over [−2, 2] in steps of 0.001 (at a finite t a slightly
// larger step than e* can win, because it converges faster).
func Optimum(t int) float64 {
	best := math.Inf(1)
	for i := -2000; i <= 2000; i++ {
		lr := 0.01 * math.Pow(10, float64(i)/1000)
		v := Clean(tuning.Params{
			"lr": tuning.Float(lr), "momentum": tuning.Float(0),
			"batch": tuning.IntValue(64), "dropout": tuning.Float(0.2),
		}, t)
		best = math.Min(best, v)
	}
	return best
}

func sigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }
