package unet

import (
	"errors"
	"fmt"
)

// ErrConfig is wrapped by every error Validate and New return for a bad
// configuration.
var ErrConfig = errors.New("unet: bad config")

// Config describes a UNet: the encoder has one level per entry of Widths (two
// 3×3 convolutions + ReLU, then 2×2 max pooling), the bottleneck two 3×3
// convolutions + ReLU to Bottleneck channels at 1/2^len(Widths) of the input
// size, and the decoder mirrors the encoder (2×2 stride-2 transposed
// convolution, concatenation with the encoder's output of the same level, two
// 3×3 convolutions + ReLU), followed by a 1×1 convolution to Classes logits.
type Config struct {
	InChannels int   // channels of the input image (3 for RGB)
	Classes    int   // output classes per pixel, 2..256 (labels are uint8)
	Height     int   // input height, a multiple of 2^len(Widths)
	Width      int   // input width, a multiple of 2^len(Widths)
	Widths     []int // channels of the encoder levels, full resolution first
	Bottleneck int   // channels of the bottleneck
}

// DefaultConfig is UNet-S of docs/architecture.md: 3×128×128 input, 3 classes, widths
// 16/32/64/128, bottleneck 256; 1,941,139 parameters.
func DefaultConfig() Config {
	return Config{InChannels: 3, Classes: 3, Height: 128, Width: 128, Widths: []int{16, 32, 64, 128}, Bottleneck: 256}
}

// maxDim bounds every size so that no buffer length can overflow.
const maxDim = 1 << 14

// Validate reports, wrapping ErrConfig, why c does not describe a UNet.
func (c Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(format, args...))
	}
	switch {
	case c.InChannels < 1 || c.InChannels > maxDim:
		return bad("InChannels %d not in [1, %d]", c.InChannels, maxDim)
	case c.Classes < 2 || c.Classes > 256:
		return bad("Classes %d not in [2, 256]", c.Classes)
	case len(c.Widths) < 1 || len(c.Widths) > 10:
		return bad("%d encoder levels, want 1 to 10", len(c.Widths))
	case c.Bottleneck < 1 || c.Bottleneck > maxDim:
		return bad("Bottleneck %d not in [1, %d]", c.Bottleneck, maxDim)
	}
	for i, w := range c.Widths {
		if w < 1 || w > maxDim {
			return bad("Widths[%d] = %d not in [1, %d]", i, w, maxDim)
		}
	}
	m := 1 << len(c.Widths)
	if c.Height < m || c.Height > maxDim || c.Height%m != 0 || c.Width < m || c.Width > maxDim || c.Width%m != 0 {
		return bad("size %d×%d is not a multiple of %d in [%d, %d]", c.Height, c.Width, m, m, maxDim)
	}
	return nil
}

// ParamView names one parameter tensor of a Model: Params[Offset :
// Offset+Size()] (and the same range of Grads) holds it, row-major in Shape.
type ParamView struct {
	Name   string // PyTorch-style, e.g. "enc1.conv1.weight"
	Offset int
	Shape  []int
}

// Size is the number of floats of the parameter, the product of Shape.
func (v ParamView) Size() int {
	n := 1
	for _, d := range v.Shape {
		n *= d
	}
	return n
}

// paramViews lays out the parameters of c in forward order.
func paramViews(c Config) []ParamView {
	var vs []ParamView
	off := 0
	add := func(name string, shape ...int) {
		v := ParamView{Name: name, Offset: off, Shape: shape}
		vs = append(vs, v)
		off += v.Size()
	}
	conv := func(prefix string, cin, cout, k int) {
		add(prefix+".weight", cout, cin, k, k)
		add(prefix+".bias", cout)
	}
	cin := c.InChannels
	for i, w := range c.Widths {
		conv(fmt.Sprintf("enc%d.conv1", i+1), cin, w, 3)
		conv(fmt.Sprintf("enc%d.conv2", i+1), w, w, 3)
		cin = w
	}
	conv("mid.conv1", cin, c.Bottleneck, 3)
	conv("mid.conv2", c.Bottleneck, c.Bottleneck, 3)
	cin = c.Bottleneck
	for i := len(c.Widths) - 1; i >= 0; i-- {
		w := c.Widths[i]
		add(fmt.Sprintf("dec%d.up.weight", i+1), cin, w, 2, 2)
		add(fmt.Sprintf("dec%d.up.bias", i+1), w)
		conv(fmt.Sprintf("dec%d.conv1", i+1), 2*w, w, 3)
		conv(fmt.Sprintf("dec%d.conv2", i+1), w, w, 3)
		cin = w
	}
	conv("head", cin, c.Classes, 1)
	return vs
}

// NumParams is the number of parameters of a Model with config c (which
// must be valid): 1,941,139 for DefaultConfig.
func NumParams(c Config) int {
	vs := paramViews(c)
	last := vs[len(vs)-1]
	return last.Offset + last.Size()
}
