package tuning

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
)

// ErrExhausted is returned by a Searcher that has no more suggestions
// (grid search past the last point of its grid).
var ErrExhausted = errors.New("tuning: search space exhausted")

// Mode is the direction of the objective.
type Mode string

// The objective directions.
const (
	Minimize Mode = "min"
	Maximize Mode = "max"
)

// Observation is what a searcher knows of one earlier trial: its
// parameters and, once it has reported, its objective.
type Observation struct {
	// Trial is the trial number (from 0).
	Trial int `json:"trial"`
	// Params are the values the trial ran with.
	Params Params `json:"params"`
	// Value is the trial's objective: its final value, or the latest one
	// of a trial still running or stopped early. Only meaningful with
	// HasValue.
	Value float64 `json:"value"`
	// HasValue is false for a trial that has not reported yet (or failed
	// without a result); searchers skip such trials.
	HasValue bool `json:"has_value"`
}

// Searcher suggests the parameters of trial n. It is a pure function of
// its construction (space, seed, options) and its arguments: the same n and
// history give the same Params, bit for bit, on the same GOARCH, whatever
// happened before, so a controller that records suggestions in its log can
// replay or recompute them after a failover. Trials are numbered from 0;
// history lists earlier trials in the order the controller records them.
// Implementations are safe for concurrent use.
type Searcher interface {
	Suggest(n int, history []Observation) (Params, error)
}

// rng returns the random stream of trial n of a searcher seeded with seed.
// The stream id is offset per searcher purpose (salt) so that, say, TPE's
// candidate draws do not replay its start-up random trials.
func rng(seed uint64, n int, salt uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed, uint64(n)^salt))
}

// unit draws a float in [0, 1) from the top 53 bits of r: fixed arithmetic,
// independent of math/rand's float helpers.
func unit(r *rand.Rand) float64 {
	return float64(r.Uint64()>>11) * 0x1p-53
}

// normal draws a standard normal value by Box–Muller.
func normal(r *rand.Rand) float64 {
	u1 := 1 - unit(r) // (0, 1]
	u2 := unit(r)
	return math.Sqrt(-2*math.Log(u1)) * math.Cos(2*math.Pi*u2)
}

// sampleUniform draws a value of every parameter of space independently
// and uniformly (log-uniformly where the parameter is on a log scale).
func sampleUniform(space Space, r *rand.Rand) Params {
	out := make(Params, len(space.Params))
	for _, p := range space.Params {
		u := unit(r)
		switch p.Type {
		case Uniform:
			out[p.Name] = Float(clamp(p.Low+u*(p.High-p.Low), p.Low, p.High))
		case LogUniform:
			lo, hi := math.Log(p.Low), math.Log(p.High)
			out[p.Name] = Float(clamp(exp(lo+u*(hi-lo)), p.Low, p.High))
		case Int:
			var v float64
			if p.Log {
				lo, hi := math.Log(p.Low), math.Log(p.High+1)
				v = math.Floor(exp(lo + u*(hi-lo)))
			} else {
				v = p.Low + math.Floor(u*(p.High-p.Low+1))
			}
			out[p.Name] = IntValue(int64(clamp(v, p.Low, p.High)))
		case Choice:
			i := int(u * float64(len(p.Values)))
			out[p.Name] = p.Values[min(i, len(p.Values)-1)]
		}
	}
	return out
}

func clamp(v, lo, hi float64) float64 { return math.Min(math.Max(v, lo), hi) }

// Random is random search: trial n's parameters are drawn from a stream
// seeded by (seed, n), so they do not depend on history or on the order
// in which suggestions are asked for.
type Random struct {
	space Space
	seed  uint64
}

// NewRandom returns random search over space.
func NewRandom(space Space, seed uint64) (*Random, error) {
	if err := space.Validate(); err != nil {
		return nil, err
	}
	return &Random{space: space, seed: seed}, nil
}

// Suggest draws trial n's parameters; history is ignored.
func (s *Random) Suggest(n int, _ []Observation) (Params, error) {
	if n < 0 {
		return nil, fmt.Errorf("tuning: trial number %d is negative", n)
	}
	return sampleUniform(s.space, rng(s.seed, n, saltRandom)), nil
}

// Stream salts of rng.
const (
	saltRandom = 0
	saltTPE    = 0x9e3779b97f4a7c15
)
