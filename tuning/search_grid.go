package tuning

import (
	"fmt"
	"math"
)

// MaxGridSize bounds the number of points of a grid: the product over the
// parameters of their grid values. Grid search indexes the product lazily
// (it keeps each parameter's values, at most MaxGridPoints of them, and
// computes point n from n), so the bound is not about memory; it keeps the
// product far from overflowing an int and refuses grids that no sweep could
// finish, being ten times MaxTrialsLimit.
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
// It checks the grid's size before listing any parameter's values.
func NewGrid(space Space) (*Grid, error) {
	if err := space.Validate(); err != nil {
		return nil, err
	}
	size, err := GridSize(space)
	if err != nil {
		return nil, err
	}
	g := &Grid{space: space, size: 1}
	for _, p := range space.Params {
		vs, err := gridValues(p)
		if err != nil {
			return nil, err
		}
		g.size *= len(vs)
		g.values = append(g.values, vs)
	}
	if g.size != size {
		return nil, fmt.Errorf("tuning: grid of %d points, GridSize says %d", g.size, size)
	}
	return g, nil
}

// GridSize returns the number of points of grid search over the valid
// space, computed before any grid is built: from each parameter's count of
// grid values (listing at most MaxGridPoints values, for an int range with
// grid_points, whose points may round to the same integer). It errs,
// wrapping ErrInvalidSpace, when a parameter cannot be put on a grid or the
// product exceeds MaxGridSize.
func GridSize(space Space) (int, error) {
	size := 1
	for _, p := range space.Params {
		k, err := gridCount(p)
		if err != nil {
			return 0, err
		}
		if size > MaxGridSize/k {
			return 0, fmt.Errorf("%w: the grid has more than %d points (the product of every parameter's grid values); use fewer values or random search",
				ErrInvalidSpace, MaxGridSize)
		}
		size *= k
	}
	return size, nil
}

// gridCount is how many grid values p has, between 1 and MaxGridPoints
// (MaxChoices for a choice), or an error for a parameter that grid search
// cannot list.
func gridCount(p Param) (int, error) {
	switch {
	case p.Type == Choice:
		if len(p.Values) < 1 || len(p.Values) > MaxChoices {
			return 0, fmt.Errorf("%w: %s: choice has %d values, want 1..%d", ErrInvalidSpace, p.Name, len(p.Values), MaxChoices)
		}
		return len(p.Values), nil
	case p.GridPoints < 0 || p.GridPoints > MaxGridPoints:
		return 0, fmt.Errorf("%w: %s: grid_points must be in 0..%d, got %d", ErrInvalidSpace, p.Name, MaxGridPoints, p.GridPoints)
	case p.GridPoints > 0 && p.Type == Int:
		return len(rangeValues(p)), nil // rounding may merge points
	case p.GridPoints > 0:
		return p.GridPoints, nil
	case p.Type != Int:
		return 0, fmt.Errorf("%w: %s: grid search needs grid_points for a %s range", ErrInvalidSpace, p.Name, p.Type)
	case !(p.High-p.Low+1 <= MaxGridPoints): // NaN too
		return 0, fmt.Errorf("%w: %s: %.0f..%.0f has more than %d integers for a grid; set grid_points", ErrInvalidSpace, p.Name, p.Low, p.High, MaxGridPoints)
	case !(p.Low <= p.High):
		return 0, fmt.Errorf("%w: %s: low %v is above high %v", ErrInvalidSpace, p.Name, p.Low, p.High)
	}
	return int(p.High-p.Low) + 1, nil
}

// gridValues lists the gridCount(p) grid values of p, so never more than
// MaxGridPoints (MaxChoices for a choice).
func gridValues(p Param) ([]Value, error) {
	k, err := gridCount(p)
	if err != nil {
		return nil, err
	}
	if p.Type == Choice {
		return p.Values, nil
	}
	if p.GridPoints == 0 { // an int range, every integer
		out := make([]Value, k)
		for i := range out {
			out[i] = IntValue(int64(p.Low) + int64(i))
		}
		return out, nil
	}
	return rangeValues(p), nil
}

// rangeValues lists the p.GridPoints (1..MaxGridPoints) grid values of the
// numeric range p, fewer for an int range where rounding merges points.
func rangeValues(p Param) []Value {
	k := min(max(p.GridPoints, 1), MaxGridPoints)
	out := make([]Value, 0, k)
	lo, hi := p.Low, p.High
	logScale := p.Type == LogUniform || p.Log
	if logScale {
		lo, hi = math.Log(lo), math.Log(hi)
	}
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
	return out
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
