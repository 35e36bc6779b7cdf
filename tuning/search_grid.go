package tuning

import (
	"fmt"
	"math"
)

// MaxGridSize bounds the number of points of a grid.
const MaxGridSize = 1 << 20

// Grid is grid search: the cartesian product of every parameter's grid
// values. Parameters are taken in the space's (name) order and the last
// one varies fastest, like nested loops with the first name outermost:
// trial n is point n of that list, and Suggest returns ErrExhausted from
// n = Size() on. History is ignored.
//
// A parameter's grid values are: for Choice its Values in order; for
// Uniform GridPoints evenly spaced values from Low to High (one point:
// Low); for LogUniform the same evenly spaced in log space; for Int every
// integer from Low to High when GridPoints is 0, else GridPoints evenly
// spaced values (in log space with Log) rounded to integers, duplicates
// dropped.
type Grid struct {
	space  Space
	values [][]Value
	size   int
}

// NewGrid returns grid search over space. Every Uniform and LogUniform
// parameter needs GridPoints; the grid may have at most MaxGridSize points.
func NewGrid(space Space) (*Grid, error) {
	if err := space.Validate(); err != nil {
		return nil, err
	}
	g := &Grid{space: space, size: 1}
	for _, p := range space.Params {
		vs, err := gridValues(p)
		if err != nil {
			return nil, err
		}
		if g.size > MaxGridSize/len(vs) {
			return nil, fmt.Errorf("%w: the grid has more than %d points", ErrInvalidSpace, MaxGridSize)
		}
		g.size *= len(vs)
		g.values = append(g.values, vs)
	}
	return g, nil
}

// gridValues lists the grid values of p.
func gridValues(p Param) ([]Value, error) {
	if p.Type == Choice {
		return p.Values, nil
	}
	k := p.GridPoints
	if k == 0 {
		if p.Type != Int {
			return nil, fmt.Errorf("%w: %s: grid search needs grid_points for a %s range", ErrInvalidSpace, p.Name, p.Type)
		}
		if p.High-p.Low+1 > MaxGridSize {
			return nil, fmt.Errorf("%w: %s: %.0f..%.0f has too many integers for a grid; set grid_points", ErrInvalidSpace, p.Name, p.Low, p.High)
		}
		var out []Value
		for v := p.Low; v <= p.High; v++ {
			out = append(out, IntValue(int64(v)))
		}
		return out, nil
	}
	lo, hi := p.Low, p.High
	logScale := p.Type == LogUniform || p.Log
	if logScale {
		lo, hi = math.Log(lo), math.Log(hi)
	}
	var out []Value
	for i := range k {
		x := lo
		if k > 1 {
			x = lo + (hi-lo)*float64(i)/float64(k-1)
		}
		if logScale {
			x = exp(x)
		}
		if i == k-1 && k > 1 {
			x = p.High // exact endpoint, no rounding drift
		} else if i == 0 {
			x = p.Low
		}
		x = clamp(x, p.Low, p.High)
		if p.Type == Int {
			v := IntValue(int64(math.Round(x)))
			if len(out) == 0 || out[len(out)-1] != v {
				out = append(out, v)
			}
			continue
		}
		out = append(out, Float(x))
	}
	return out, nil
}

// Size is the number of points of the grid.
func (g *Grid) Size() int { return g.size }

// Suggest returns point n of the grid, or ErrExhausted.
func (g *Grid) Suggest(n int, _ []Observation) (Params, error) {
	if n < 0 {
		return nil, fmt.Errorf("tuning: trial number %d is negative", n)
	}
	if n >= g.size {
		return nil, ErrExhausted
	}
	out := make(Params, len(g.values))
	for i := len(g.values) - 1; i >= 0; i-- {
		vs := g.values[i]
		out[g.space.Params[i].Name] = vs[n%len(vs)]
		n /= len(vs)
	}
	return out, nil
}
