package unet

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/trainctl/trainctl/trainer/gemm"
	"github.com/trainctl/trainctl/trainer/nn"
)

// Model is a UNet with its parameters, gradients and every workspace of a
// training step for up to a fixed batch size.
//
// Params and Grads are allocated once, with the layout ParamViews describes;
// the model keeps views into them, so update them in place (copy into them to
// load a checkpoint) and never replace the slices.
type Model struct {
	Config Config    // the architecture; do not modify
	Params []float32 // all parameters, one buffer
	Grads  []float32 // gradients of the last LossAndBackward, same layout

	views    []ParamView
	maxBatch int
	batch    int // batch of the last Forward; 0 before the first
	ctx      *nn.Ctx

	levels []level
	mid1   conv
	mid2   conv
	head   conv

	x       []float32 // input, CNHW
	m1, m2  []float32 // bottleneck activations
	logits  []float32 // CNHW
	dLogits []float32 // CNHW
	out     []float32 // logits in NCHW, what Forward returns
	g, gs   []float32 // gradient scratch, used alternately along the main path
}

// conv is one layer's parameters and gradients, views into Params and Grads.
type conv struct {
	w, b, dw, db []float32
}

// level is one resolution of the UNet: its encoder and decoder layers, and
// the activations of both sized for the maximum batch (CNHW, C×B×h×w, so the
// first C·b·h·w floats hold a batch of b).
type level struct {
	c, h, w    int
	enc1, enc2 conv
	up         conv // transposed conv from the level below, into cat's first half
	dec1, dec2 conv

	a1     []float32 // enc1 output (c channels)
	cat    []float32 // [up | skip]: convT output, then enc2 output (2c channels)
	pool   []float32 // pooled skip (c channels, h/2×w/2)
	argmax []uint8
	d1, d2 []float32 // dec1, dec2 outputs (c channels)
	dCat   []float32 // gradient of cat, kept from decoder to encoder backward
}

// New builds a Model for cfg that runs its GEMMs on eng and takes batches of
// up to maxBatch images. It allocates every buffer of the training step here;
// the parameters are zero until Init (or a checkpoint) sets them. The helper
// goroutines of the element-wise kernels match eng's thread count; Close
// stops them.
func New(cfg Config, eng *gemm.Engine, maxBatch int) (*Model, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if eng == nil {
		return nil, fmt.Errorf("%w: nil GEMM engine", ErrConfig)
	}
	// The largest activation buffer, per image, bounds the batch so that no
	// buffer exceeds 2^31 floats.
	hw := cfg.Height * cfg.Width
	perImage := max(cfg.InChannels*hw, cfg.Classes*hw, cfg.Bottleneck*(hw>>(2*len(cfg.Widths))))
	for i, c := range cfg.Widths {
		perImage = max(perImage, 2*c*(hw>>(2*i)))
	}
	if maxBatch < 1 || maxBatch > math.MaxInt32/perImage {
		return nil, fmt.Errorf("%w: maxBatch %d out of range for %d×%d images", ErrConfig, maxBatch, cfg.Height, cfg.Width)
	}
	cfg.Widths = slices.Clone(cfg.Widths)
	m := &Model{Config: cfg, maxBatch: maxBatch, views: paramViews(cfg)}
	n := NumParams(cfg)
	m.Params = make([]float32, n)
	m.Grads = make([]float32, n)

	// Hand out the parameter views in the order paramViews laid them out.
	vi := 0
	next := func() conv {
		w, b := m.views[vi], m.views[vi+1]
		vi += 2
		return conv{
			w: m.Params[w.Offset : w.Offset+w.Size()], b: m.Params[b.Offset : b.Offset+b.Size()],
			dw: m.Grads[w.Offset : w.Offset+w.Size()], db: m.Grads[b.Offset : b.Offset+b.Size()],
		}
	}
	f := func(c, h, w int) []float32 { return make([]float32, c*maxBatch*h*w) }
	m.levels = make([]level, len(cfg.Widths))
	for i, c := range cfg.Widths {
		l := &m.levels[i]
		l.c, l.h, l.w = c, cfg.Height>>i, cfg.Width>>i
		l.enc1, l.enc2 = next(), next()
		l.a1, l.cat, l.pool = f(c, l.h, l.w), f(2*c, l.h, l.w), f(c, l.h/2, l.w/2)
		l.argmax = make([]uint8, c*maxBatch*l.h*l.w/4)
		l.d1, l.d2, l.dCat = f(c, l.h, l.w), f(c, l.h, l.w), f(2*c, l.h, l.w)
	}
	m.mid1, m.mid2 = next(), next()
	for i := len(m.levels) - 1; i >= 0; i-- {
		l := &m.levels[i]
		l.up, l.dec1, l.dec2 = next(), next(), next()
	}
	m.head = next()

	deep := len(cfg.Widths)
	mh, mw := cfg.Height>>deep, cfg.Width>>deep
	m.x = f(cfg.InChannels, cfg.Height, cfg.Width)
	m.m1, m.m2 = f(cfg.Bottleneck, mh, mw), f(cfg.Bottleneck, mh, mw)
	m.logits, m.dLogits, m.out = f(cfg.Classes, cfg.Height, cfg.Width), f(cfg.Classes, cfg.Height, cfg.Width), f(cfg.Classes, cfg.Height, cfg.Width)

	// The main-path gradient scratch holds any level's c×h×w gradient and
	// the bottleneck's; the kernels' workspaces are sized for the largest
	// layer at the largest batch.
	scratch := cfg.Bottleneck * mh * mw
	cols, weights := 0, 0
	conv3 := func(cin, cout, h, w int) {
		c, wt := nn.Conv3x3Workspace(maxBatch, cin, cout, h, w)
		cols, weights = max(cols, c), max(weights, wt)
	}
	cin := cfg.InChannels
	for _, l := range m.levels {
		scratch = max(scratch, l.c*l.h*l.w)
		conv3(cin, l.c, l.h, l.w)
		conv3(l.c, l.c, l.h, l.w)
		conv3(2*l.c, l.c, l.h, l.w)
		cols = max(cols, nn.ConvT2x2Workspace(maxBatch, l.c, l.h/2, l.w/2))
		cin = l.c
	}
	conv3(cin, cfg.Bottleneck, mh, mw)
	conv3(cfg.Bottleneck, cfg.Bottleneck, mh, mw)
	m.g, m.gs = make([]float32, scratch*maxBatch), make([]float32, scratch*maxBatch)
	m.ctx = nn.NewCtx(eng, eng.Threads(), cols, weights)
	return m, nil
}

// Close stops the helper goroutines of the model's kernels; the Model must not
// be used afterwards. It does not close the GEMM engine.
func (m *Model) Close() { m.ctx.Close() }

// NumParams is the number of parameters, len(m.Params).
func (m *Model) NumParams() int { return len(m.Params) }

// MaxBatch is the largest batch Forward accepts.
func (m *Model) MaxBatch() int { return m.maxBatch }

// ParamViews describes every parameter tensor in Params, in order: name,
// offset and shape. The returned slice is the caller's.
func (m *Model) ParamViews() []ParamView {
	vs := make([]ParamView, len(m.views))
	for i, v := range m.views {
		vs[i] = ParamView{Name: v.Name, Offset: v.Offset, Shape: slices.Clone(v.Shape)}
	}
	return vs
}

// Init sets the parameters from seed, deterministically: weights are normal
// with standard deviation sqrt(2/fanIn) (He/Kaiming, for the ReLUs that
// follow), where fanIn is Cin·k·k for convolutions and Cin for the 2×2
// stride-2 transposed convolutions (each output sees one tap of each input
// channel); the head, which no ReLU follows, uses sqrt(1/fanIn). Biases are 0.
// The gradients are zeroed.
func (m *Model) Init(seed uint64) {
	r := splitmix{seed}
	for _, v := range m.views {
		p := m.Params[v.Offset : v.Offset+v.Size()]
		if len(v.Shape) == 1 {
			clear(p)
			continue
		}
		fanIn := v.Shape[1] * v.Shape[2] * v.Shape[3]
		gain := 2.0
		switch {
		case strings.HasSuffix(v.Name, ".up.weight"):
			fanIn = v.Shape[0]
		case v.Name == "head.weight":
			gain = 1
		}
		std := math.Sqrt(gain / float64(fanIn))
		for i := range p {
			p[i] = float32(std * r.norm())
		}
	}
	clear(m.Grads)
}

// splitmix is the SplitMix64 generator: tiny, fast, and fully specified, so
// an initialisation is reproducible across Go versions.
type splitmix struct{ s uint64 }

func (r *splitmix) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	z := r.s
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// norm is a standard normal deviate (Box–Muller, one of the pair).
func (r *splitmix) norm() float64 {
	u1 := (float64(r.next()>>11) + 0.5) / (1 << 53) // in (0, 1)
	u2 := float64(r.next()>>11) / (1 << 53)
	return math.Sqrt(-2*math.Log(u1)) * math.Cos(2*math.Pi*u2)
}
