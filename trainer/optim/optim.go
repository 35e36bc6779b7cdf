// Package optim holds the optimizers of the trainer engine: Adam and SGD with
// momentum, each updating one flat parameter buffer from one flat gradient
// buffer of the same length (the model's Params and Grads, as in llm.c).
//
// An Optimizer's whole state (its moment buffers and step count) is one flat
// []float32 plus a counter, so a checkpoint saves it with MarshalBinary and
// restores it bit for bit with UnmarshalBinary; a restored optimizer then takes
// exactly the steps the original would have. Updates are element-wise, in
// float32, with per-step scalars computed in float64 once per step; the loop
// allocates nothing and is the same on every platform Go targets, so training
// is deterministic.
package optim

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// Kind names an optimizer algorithm.
type Kind string

// The optimizers this package implements.
const (
	Adam Kind = "adam"
	SGD  Kind = "sgd"
)

// Config describes an optimizer and its hyperparameters. The zero values of
// Beta1, Beta2 and Eps mean the usual defaults (see DefaultConfig).
type Config struct {
	// Kind is Adam or SGD.
	Kind Kind `json:"kind"`
	// LR is the learning rate; it must be positive.
	LR float64 `json:"lr"`
	// Beta1 and Beta2 are Adam's moment decay rates (default 0.9, 0.999).
	Beta1 float64 `json:"beta1,omitempty"`
	Beta2 float64 `json:"beta2,omitempty"`
	// Eps is Adam's denominator guard (default 1e-8).
	Eps float64 `json:"eps,omitempty"`
	// Momentum is SGD's momentum coefficient in [0, 1); 0 is plain SGD.
	Momentum float64 `json:"momentum,omitempty"`
	// WeightDecay, when positive, shrinks the weights every step. For Adam it
	// is decoupled (AdamW: p -= lr*wd*p before the Adam update, so it is not
	// scaled by the adaptive denominator); for SGD it is the classic L2 term
	// added to the gradient before momentum (as PyTorch's SGD does).
	WeightDecay float64 `json:"weight_decay,omitempty"`
}

// DefaultConfig returns Adam with lr 1e-3, β1 0.9, β2 0.999 and eps 1e-8, the
// reference configuration of docs/architecture.md.
func DefaultConfig() Config {
	return Config{Kind: Adam, LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8}
}

// withDefaults fills unset Adam constants.
func (c Config) withDefaults() Config {
	if c.Kind == Adam {
		if c.Beta1 == 0 {
			c.Beta1 = 0.9
		}
		if c.Beta2 == 0 {
			c.Beta2 = 0.999
		}
		if c.Eps == 0 {
			c.Eps = 1e-8
		}
	}
	return c
}

// ErrConfig is returned (wrapped) for an invalid optimizer configuration.
var ErrConfig = errors.New("invalid optimizer config")

// ErrState is returned (wrapped) by UnmarshalBinary for state that does not
// belong to this optimizer (another kind or size) or is malformed.
var ErrState = errors.New("invalid optimizer state")

// Validate reports whether c describes a usable optimizer.
func (c Config) Validate() error {
	c = c.withDefaults()
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(format, args...))
	}
	finite := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
	switch {
	case c.Kind != Adam && c.Kind != SGD:
		return bad("kind %q (want %q or %q)", c.Kind, Adam, SGD)
	case !(c.LR > 0) || !finite(c.LR):
		return bad("learning rate %g must be positive", c.LR)
	case c.WeightDecay < 0 || !finite(c.WeightDecay):
		return bad("weight decay %g must be >= 0", c.WeightDecay)
	}
	if c.Kind == Adam {
		switch {
		case !(c.Beta1 >= 0 && c.Beta1 < 1):
			return bad("beta1 %g must be in [0, 1)", c.Beta1)
		case !(c.Beta2 >= 0 && c.Beta2 < 1):
			return bad("beta2 %g must be in [0, 1)", c.Beta2)
		case !(c.Eps > 0) || !finite(c.Eps):
			return bad("eps %g must be positive", c.Eps)
		}
	} else if !(c.Momentum >= 0 && c.Momentum < 1) {
		return bad("momentum %g must be in [0, 1)", c.Momentum)
	}
	return nil
}

// Optimizer updates a flat parameter buffer of a fixed length from gradients.
// It is not safe for concurrent use.
type Optimizer struct {
	cfg   Config
	n     int
	step  uint64
	state []float32 // Adam: m[0:n] then v[n:2n]; SGD with momentum: velocity[0:n]
}

// New returns an optimizer for n parameters with zeroed state.
func New(cfg Config, n int) (*Optimizer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if n < 0 {
		return nil, fmt.Errorf("%w: %d parameters", ErrConfig, n)
	}
	cfg = cfg.withDefaults()
	o := &Optimizer{cfg: cfg, n: n}
	if k := stateLen(cfg, n); k > 0 {
		o.state = make([]float32, k)
	}
	return o, nil
}

// stateLen is the number of state values an optimizer with config cfg
// (defaults filled in) keeps for n parameters.
func stateLen(cfg Config, n int) int {
	switch {
	case cfg.Kind == Adam:
		return 2 * n
	case cfg.Momentum > 0:
		return n
	}
	return 0
}

// Config returns the configuration in force, defaults filled in.
func (o *Optimizer) Config() Config { return o.cfg }

// Len is the number of parameters the optimizer updates.
func (o *Optimizer) Len() int { return o.n }

// Steps is the number of updates taken so far (Adam's t).
func (o *Optimizer) Steps() uint64 { return o.step }

// SetLR changes the learning rate for later steps (for schedules). The
// learning rate is not part of the saved state; a checkpoint records the
// configuration separately.
func (o *Optimizer) SetLR(lr float64) { o.cfg.LR = lr }

// State returns the moment buffers, aliased: Adam's first moments then its
// second moments (2×Len values), SGD's velocity (Len values, or none without
// momentum).
func (o *Optimizer) State() []float32 { return o.state }

// Step applies one update to params from grads. Both must have Len elements;
// Step panics otherwise, as a slice index out of range would.
func (o *Optimizer) Step(params, grads []float32) {
	if len(params) != o.n || len(grads) != o.n {
		panic(fmt.Sprintf("optim: Step with %d params and %d grads, optimizer has %d", len(params), len(grads), o.n))
	}
	o.step++
	switch o.cfg.Kind {
	case Adam:
		o.adam(params, grads)
	default:
		o.sgd(params, grads)
	}
}

// adam is PyTorch's Adam (and AdamW with decoupled decay):
//
//	m = β1 m + (1-β1) g;  v = β2 v + (1-β2) g²
//	p -= (lr / (1-β1^t)) · m / (sqrt(v)/sqrt(1-β2^t) + eps)
func (o *Optimizer) adam(params, grads []float32) {
	c := o.cfg
	t := float64(o.step)
	bc1 := 1 - math.Pow(c.Beta1, t)
	bc2 := 1 - math.Pow(c.Beta2, t)
	var (
		b1, b2   = float32(c.Beta1), float32(c.Beta2)
		a1, a2   = float32(1 - c.Beta1), float32(1 - c.Beta2)
		stepSize = float32(c.LR / bc1)
		invSqBc2 = float32(1 / math.Sqrt(bc2))
		eps      = float32(c.Eps)
		decay    = float32(1 - c.LR*c.WeightDecay)
	)
	n := o.n
	m := o.state[:n:n]
	v := o.state[n : 2*n : 2*n]
	p := params[:n:n]
	g := grads[:n:n]
	wd := c.WeightDecay > 0
	for i := range p {
		gi := g[i]
		mi := b1*m[i] + a1*gi
		vi := b2*v[i] + a2*gi*gi
		m[i], v[i] = mi, vi
		pi := p[i]
		if wd {
			pi *= decay
		}
		p[i] = pi - stepSize*mi/(float32(math.Sqrt(float64(vi)))*invSqBc2+eps)
	}
}

// sgd is PyTorch's SGD with momentum (dampening 0, not Nesterov):
//
//	g += wd·p;  b = μ b + g (b = g on the first step);  p -= lr · b
func (o *Optimizer) sgd(params, grads []float32) {
	c := o.cfg
	lr := float32(c.LR)
	wd := float32(c.WeightDecay)
	mu := float32(c.Momentum)
	n := o.n
	p := params[:n:n]
	g := grads[:n:n]
	if c.Momentum == 0 {
		for i := range p {
			p[i] -= lr * (g[i] + wd*p[i])
		}
		return
	}
	b := o.state[:n:n]
	first := o.step == 1
	for i := range p {
		gi := g[i] + wd*p[i]
		bi := gi
		if !first {
			bi = mu*b[i] + gi
		}
		b[i] = bi
		p[i] -= lr * bi
	}
}

// stateMagic starts the binary form of an optimizer's state.
const stateMagic = "OPTS"

// stateHeader is magic, kind byte, 3 pad bytes, step (u64), n (u64), state length (u64).
const stateHeader = 4 + 4 + 8 + 8 + 8

// StateHeaderSize is the length of the fixed header that starts the binary
// form of an optimizer's state (MarshalBinary): all CheckState reads.
const StateHeaderSize = stateHeader

func kindByte(k Kind) byte {
	if k == Adam {
		return 1
	}
	return 2
}

// MarshalBinary encodes the optimizer's state (kind, parameter count, step
// count and moment buffers, little-endian) for a checkpoint. The
// hyperparameters are not included; the checkpoint stores Config beside it.
func (o *Optimizer) MarshalBinary() ([]byte, error) {
	return o.AppendBinary(make([]byte, 0, stateHeader+4*len(o.state)))
}

// AppendBinary appends the encoding MarshalBinary returns to b.
func (o *Optimizer) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, stateMagic...)
	b = append(b, kindByte(o.cfg.Kind), 0, 0, 0)
	b = binary.LittleEndian.AppendUint64(b, o.step)
	b = binary.LittleEndian.AppendUint64(b, uint64(o.n))
	b = binary.LittleEndian.AppendUint64(b, uint64(len(o.state)))
	for _, v := range o.state {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
	}
	return b, nil
}

// CheckState reports whether an encoded state of size bytes whose first
// StateHeaderSize bytes (or all of them, if fewer) are head is one that
// UnmarshalBinary accepts into the optimizer New(cfg, n) builds: the magic,
// the kind, the parameter count, the state length for cfg's kind and
// momentum, and size. It reads only head and allocates nothing, so a
// checkpoint verifier can check a state it has not loaded. Errors wrap
// ErrConfig for a bad cfg or n, else ErrState.
func CheckState(cfg Config, n int, head []byte, size int64) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if n < 0 {
		return fmt.Errorf("%w: %d parameters", ErrConfig, n)
	}
	cfg = cfg.withDefaults()
	return checkState(cfg.Kind, n, stateLen(cfg, n), head, size)
}

// checkState checks the header head of an encoded state of size bytes
// against an optimizer of kind over n parameters keeping sl state values.
func checkState(kind Kind, n, sl int, head []byte, size int64) error {
	if len(head) < stateHeader || size < stateHeader || string(head[:4]) != stateMagic {
		return fmt.Errorf("%w: missing header", ErrState)
	}
	if head[4] != kindByte(kind) {
		return fmt.Errorf("%w: saved by another optimizer kind (code %d), this one is %s", ErrState, head[4], kind)
	}
	if got := binary.LittleEndian.Uint64(head[16:]); got != uint64(n) {
		return fmt.Errorf("%w: saved for %d parameters, this optimizer has %d", ErrState, got, n)
	}
	if got := binary.LittleEndian.Uint64(head[24:]); got != uint64(sl) {
		return fmt.Errorf("%w: %d state values, this optimizer keeps %d (momentum setting differs?)", ErrState, got, sl)
	}
	// sl is at most 2n, so 4*sl cannot overflow for any n a caller holds.
	if rest := uint64(size - stateHeader); rest != 4*uint64(sl) {
		return fmt.Errorf("%w: %d bytes of state, want %d", ErrState, rest, 4*uint64(sl))
	}
	return nil
}

// UnmarshalBinary restores state written by MarshalBinary into o, which must
// have the same kind, momentum setting and parameter count. On error o is
// unchanged; errors wrap ErrState.
func (o *Optimizer) UnmarshalBinary(data []byte) error {
	if err := checkState(o.cfg.Kind, o.n, len(o.state), data, int64(len(data))); err != nil {
		return err
	}
	body := data[stateHeader:]
	for i := range o.state {
		o.state[i] = math.Float32frombits(binary.LittleEndian.Uint32(body[4*i:]))
	}
	o.step = binary.LittleEndian.Uint64(data[8:])
	return nil
}
