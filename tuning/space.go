package tuning

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/trainctl/trainctl/internal/strictyaml"
)

// ErrInvalidSpace is wrapped by every error Space.Validate returns.
var ErrInvalidSpace = errors.New("invalid search space")

// Limits on a search space that Validate enforces, so that no searcher
// walks, samples or enumerates more than a small, fixed amount per
// suggestion whatever a spec asks for. Every one is far above what a
// sweep has use for: the space has eight hyperparameters to tune, and
// each trial is a training job that takes minutes.
const (
	// MaxParams bounds the parameters of a space. Only the eight
	// hyperparameters of HyperparameterNames can be tuned today; the
	// margin leaves room for more, while TPE's cost per suggestion stays
	// proportional to a small number of dimensions.
	MaxParams = 64
	// MaxGridPoints bounds a parameter's grid_points, and the integers of
	// an int range that grid search takes whole (no grid_points): the
	// values of one parameter that grid search lists in memory. Ten
	// thousand values of one hyperparameter are more trials than a sweep
	// runs (see MaxTrialsLimit for the whole grid).
	MaxGridPoints = 10_000
	// MaxChoices bounds the values of a choice parameter. Choices are
	// written by hand (optimizers, batch sizes); TPE scans them once per
	// candidate, so the bound keeps a suggestion's cost small.
	MaxChoices = 1_000
	// MaxValueLen bounds the bytes of a string choice. Every trial's
	// parameters are recorded in the Raft log with the trial, so a long
	// string would be copied into the log once per trial; the longest
	// string a hyperparameter takes (an optimizer name) is a few bytes.
	MaxValueLen = 128
)

// ParamType is the distribution of one search-space parameter.
type ParamType string

// The parameter types of a search space.
const (
	// Uniform draws a float uniformly from [Low, High].
	Uniform ParamType = "uniform"
	// LogUniform draws a float whose logarithm is uniform on
	// [log Low, log High]; Low must be positive.
	LogUniform ParamType = "loguniform"
	// Int draws an integer from Low..High inclusive; with Log, its
	// logarithm is (roughly) uniform and Low must be at least 1.
	Int ParamType = "int"
	// Choice draws one of Values (numbers, strings or booleans, all of one
	// kind).
	Choice ParamType = "choice"
)

// Kind is the type of a Value.
type Kind uint8

// The kinds of Value.
const (
	KindFloat Kind = iota
	KindInt
	KindString
	KindBool
)

// String returns the kind's name.
func (k Kind) String() string {
	switch k {
	case KindFloat:
		return "float"
	case KindInt:
		return "int"
	case KindString:
		return "string"
	case KindBool:
		return "bool"
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Value is one parameter value: a float, an integer, a string or a
// boolean. The zero Value is the float 0. Values are comparable with ==.
//
// In JSON a float is always written with a decimal point or an exponent
// (1.0, 1e-05) and an integer never is, so a Value survives a JSON round
// trip with its kind and its exact bits.
type Value struct {
	kind Kind
	f    float64
	i    int64
	s    string
	b    bool
}

// Float returns a float Value.
func Float(v float64) Value { return Value{kind: KindFloat, f: v} }

// IntValue returns an integer Value.
func IntValue(v int64) Value { return Value{kind: KindInt, i: v} }

// String returns a string Value.
func String(v string) Value { return Value{kind: KindString, s: v} }

// Bool returns a boolean Value.
func Bool(v bool) Value { return Value{kind: KindBool, b: v} }

// Kind returns the kind of v.
func (v Value) Kind() Kind { return v.kind }

// Float returns v as a float64: the float, or the integer converted; 0
// for strings and booleans.
func (v Value) Float() float64 {
	if v.kind == KindInt {
		return float64(v.i)
	}
	return v.f
}

// Int returns the integer of an integer Value (0 otherwise).
func (v Value) Int() int64 { return v.i }

// Str returns the string of a string Value ("" otherwise).
func (v Value) Str() string { return v.s }

// Bool returns the boolean of a boolean Value (false otherwise).
func (v Value) Bool() bool { return v.b }

// IsNumber reports whether v is a float or an integer.
func (v Value) IsNumber() bool { return v.kind == KindFloat || v.kind == KindInt }

// String formats v as it would appear in YAML: 0.001, 32, adam, true.
func (v Value) String() string {
	switch v.kind {
	case KindInt:
		return strconv.FormatInt(v.i, 10)
	case KindString:
		return v.s
	case KindBool:
		return strconv.FormatBool(v.b)
	}
	return strconv.FormatFloat(v.f, 'g', -1, 64)
}

// MarshalJSON writes v as a JSON number, string or boolean.
func (v Value) MarshalJSON() ([]byte, error) {
	switch v.kind {
	case KindInt:
		return []byte(strconv.FormatInt(v.i, 10)), nil
	case KindString:
		return json.Marshal(v.s)
	case KindBool:
		return []byte(strconv.FormatBool(v.b)), nil
	}
	if math.IsNaN(v.f) || math.IsInf(v.f, 0) {
		return nil, fmt.Errorf("tuning: value %v is not a JSON number", v.f)
	}
	s := strconv.FormatFloat(v.f, 'g', -1, 64)
	if !strings.ContainsAny(s, ".e") {
		s += ".0"
	}
	return []byte(s), nil
}

// UnmarshalJSON reads a JSON number (an integer when it has no decimal
// point or exponent), string or boolean.
func (v *Value) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case len(b) == 0:
		return errors.New("tuning: empty value")
	case b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return fmt.Errorf("tuning: value: %w", err)
		}
		*v = String(s)
	case string(b) == "true" || string(b) == "false":
		*v = Bool(string(b) == "true")
	case bytes.ContainsAny(b, ".eE"):
		f, err := strconv.ParseFloat(string(b), 64)
		if err != nil {
			return fmt.Errorf("tuning: value %s is not a number", b)
		}
		*v = Float(f)
	default:
		i, err := strconv.ParseInt(string(b), 10, 64)
		if err != nil {
			return fmt.Errorf("tuning: value %s is not a number, string or boolean", b)
		}
		*v = IntValue(i)
	}
	return nil
}

// Params are the values of one trial, by parameter name. They marshal to
// a JSON object with sorted keys; iterate in Names order for determinism.
type Params map[string]Value

// Names returns the parameter names, sorted.
func (p Params) Names() []string {
	names := make([]string, 0, len(p))
	for n := range p {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// String formats p as "name=value name=value" in name order.
func (p Params) String() string {
	var b strings.Builder
	for i, n := range p.Names() {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(n + "=" + p[n].String())
	}
	return b.String()
}

// Param is one dimension of a search space.
type Param struct {
	// Name is the hyperparameter it sets (see Space).
	Name string `json:"name"`
	// Type is the distribution.
	Type ParamType `json:"type"`
	// Low and High bound Uniform, LogUniform and Int (inclusive).
	Low  float64 `json:"low,omitempty"`
	High float64 `json:"high,omitempty"`
	// Log samples an Int on a log scale.
	Log bool `json:"log,omitempty"`
	// Values are the choices of a Choice, in the order grid search lists
	// them.
	Values []Value `json:"values,omitempty"`
	// GridPoints is how many evenly spaced values (on a log scale for
	// LogUniform and log Int) grid search takes from a numeric range,
	// endpoints included; 0 for an Int means every integer.
	GridPoints int `json:"grid_points,omitempty"`
}

// Space is a search space: its parameters sorted by name (NewSpace sorts
// them). Every searcher walks the parameters in this order.
type Space struct {
	Params []Param `json:"params"`
}

// NewSpace returns the space of params, sorted by name, after Validate.
func NewSpace(params ...Param) (Space, error) {
	s := Space{Params: slices.Clone(params)}
	slices.SortStableFunc(s.Params, func(a, b Param) int { return strings.Compare(a.Name, b.Name) })
	if err := s.Validate(); err != nil {
		return Space{}, err
	}
	return s, nil
}

// Names returns the parameter names in order.
func (s Space) Names() []string {
	names := make([]string, len(s.Params))
	for i, p := range s.Params {
		names[i] = p.Name
	}
	return names
}

// Validate checks the space: one to MaxParams parameters, names unique
// and sorted, and every parameter valid (Param.Validate). The error joins
// every problem, each naming its parameter, and wraps ErrInvalidSpace.
func (s Space) Validate() error {
	if len(s.Params) == 0 {
		return fmt.Errorf("%w: no parameters", ErrInvalidSpace)
	}
	if len(s.Params) > MaxParams {
		return fmt.Errorf("%w: %d parameters, the limit is %d", ErrInvalidSpace, len(s.Params), MaxParams)
	}
	var errs []error
	for i, p := range s.Params {
		if i > 0 && s.Params[i-1].Name >= p.Name {
			if s.Params[i-1].Name == p.Name {
				errs = append(errs, fmt.Errorf("%w: %s: duplicate parameter", ErrInvalidSpace, p.Name))
			} else {
				errs = append(errs, fmt.Errorf("%w: parameters not sorted by name (%s after %s)", ErrInvalidSpace, p.Name, s.Params[i-1].Name))
			}
		}
		for _, msg := range p.problems() {
			errs = append(errs, fmt.Errorf("%w: %s: %s", ErrInvalidSpace, p.Name, msg))
		}
	}
	return errors.Join(errs...)
}

// Validate checks one parameter; the error names it and wraps
// ErrInvalidSpace.
func (p Param) Validate() error {
	var errs []error
	for _, msg := range p.problems() {
		errs = append(errs, fmt.Errorf("%w: %s: %s", ErrInvalidSpace, p.Name, msg))
	}
	return errors.Join(errs...)
}

// problems lists what is wrong with p, as messages without its name.
func (p Param) problems() []string {
	var out []string
	bad := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	finite := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
	if p.Name == "" {
		bad("empty parameter name")
	}
	if p.GridPoints < 0 || p.GridPoints > MaxGridPoints {
		bad("grid_points must be in 0..%d, got %d", MaxGridPoints, p.GridPoints)
	}
	switch p.Type {
	case Uniform, LogUniform, Int:
		if len(p.Values) > 0 {
			bad("values apply to type choice only")
		}
		if !finite(p.Low) || !finite(p.High) {
			bad("low and high must be finite numbers, got %v and %v", p.Low, p.High)
			return out
		}
		if p.Low > p.High {
			bad("low %v is above high %v", p.Low, p.High)
		} else if math.IsInf(p.High-p.Low, 0) {
			bad("high - low must be a finite number, got %v - %v", p.High, p.Low)
		}
		if p.Log && p.Type != Int {
			bad("log applies to type int only (use loguniform)")
		}
		if p.Type == LogUniform && p.Low <= 0 {
			bad("loguniform needs low > 0, got %v", p.Low)
		}
		if p.Type == Int {
			if p.Low != math.Trunc(p.Low) || p.High != math.Trunc(p.High) {
				bad("int bounds must be integers, got %v and %v", p.Low, p.High)
			}
			if math.Abs(p.Low) > 1<<53 || math.Abs(p.High) > 1<<53 {
				bad("int bounds must be within ±2^53")
			}
			if p.Log && p.Low < 1 {
				bad("int with log needs low >= 1, got %v", p.Low)
			}
		}
	case Choice:
		if p.Low != 0 || p.High != 0 || p.Log {
			bad("low, high and log do not apply to type choice")
		}
		if p.GridPoints != 0 {
			bad("grid_points does not apply to type choice")
		}
		if len(p.Values) == 0 {
			bad("choice needs at least one value")
			return out
		}
		if len(p.Values) > MaxChoices {
			bad("choice has %d values, the limit is %d", len(p.Values), MaxChoices)
			return out
		}
		num := p.Values[0].IsNumber()
		// Values seen, as their number when numeric (1 and 1.0 are one
		// value), so that a long list is checked in linear time and each
		// repeated value is named once.
		seen := make(map[any]int, len(p.Values))
		for i, v := range p.Values {
			if v.IsNumber() != num || (!num && v.kind != p.Values[0].kind) {
				bad("values must be all numbers, all strings or all booleans (value %d is %s, value 1 is %s)", i+1, v.kind, p.Values[0].kind)
				break
			}
			if v.kind == KindFloat && !finite(v.f) {
				bad("value %d is not a finite number", i+1)
			}
			if v.kind == KindString && len(v.s) > MaxValueLen {
				bad("value %d is %d bytes, the limit is %d", i+1, len(v.s), MaxValueLen)
				continue
			}
			var key any = v
			if num {
				key = v.Float()
			}
			if seen[key]++; seen[key] == 2 {
				bad("value %s is listed twice", v)
			}
		}
	case "":
		bad("type is required (uniform, loguniform, int or choice)")
	default:
		bad("type %s is not one of uniform, loguniform, int, choice", strictyaml.Quote(string(p.Type)))
	}
	return out
}

// check verifies that params hold exactly the space's parameters with
// values of their type, for searchers reading history.
func (s Space) check(params Params) error {
	if len(params) != len(s.Params) {
		return fmt.Errorf("tuning: params %s do not match the space %v", params, s.Names())
	}
	for _, p := range s.Params {
		v, ok := params[p.Name]
		if !ok {
			return fmt.Errorf("tuning: params %s lack %s", params, p.Name)
		}
		switch p.Type {
		case Uniform, LogUniform:
			if v.kind != KindFloat {
				return fmt.Errorf("tuning: %s: %s is not a float", p.Name, v)
			}
		case Int:
			if v.kind != KindInt {
				return fmt.Errorf("tuning: %s: %s is not an integer", p.Name, v)
			}
		case Choice:
			if p.choiceIndex(v) < 0 {
				return fmt.Errorf("tuning: %s: %s is not one of the choices", p.Name, v)
			}
		}
	}
	return nil
}

// choiceIndex is the index of v among p.Values, or -1.
func (p Param) choiceIndex(v Value) int {
	for i, c := range p.Values {
		if c == v {
			return i
		}
	}
	return -1
}
