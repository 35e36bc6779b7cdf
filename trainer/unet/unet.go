package unet

import (
	"fmt"

	"github.com/trainctl/trainctl/trainer/nn"
)

// Forward runs the model on x, b images of InChannels×Height×Width (NCHW),
// and returns the logits, b×Classes×Height×Width (NCHW). The logits are a view
// into the model's workspace, valid until the next Forward. Forward keeps every
// activation LossAndBackward needs. It panics if b is not in [1, MaxBatch] or
// len(x) is not b·InChannels·Height·Width.
func (m *Model) Forward(x []float32, b int) []float32 {
	cfg := m.Config
	hw := cfg.Height * cfg.Width
	if b < 1 || b > m.maxBatch || len(x) != b*cfg.InChannels*hw {
		panic(fmt.Sprintf("unet: Forward of %d floats as batch %d (max %d) of %d×%d×%d", len(x), b, m.maxBatch, cfg.InChannels, cfg.Height, cfg.Width))
	}
	c := m.ctx
	m.batch = 0

	in, cin := m.x[:cfg.InChannels*b*hw], cfg.InChannels
	nn.NCHWToCNHW(in, x, b, cin, hw)

	// Encoder: two conv3×3+ReLU, the second into the skip half of the
	// level's concatenation buffer, then max pooling.
	for i := range m.levels {
		l := &m.levels[i]
		p := b * l.h * l.w
		a1, skip, pool := l.a1[:l.c*p], nn.Channels(l.cat[:2*l.c*p], l.c, 2*l.c, p), l.pool[:l.c*p/4]
		nn.Conv3x3Forward(c, a1, in, l.enc1.w, l.enc1.b, b, cin, l.c, l.h, l.w)
		nn.ReLUForward(c, a1)
		nn.Conv3x3Forward(c, skip, a1, l.enc2.w, l.enc2.b, b, l.c, l.c, l.h, l.w)
		nn.ReLUForward(c, skip)
		nn.MaxPool2x2Forward(c, pool, l.argmax, skip, l.c*b, l.h, l.w)
		in, cin = pool, l.c
	}

	// Bottleneck: two conv3×3+ReLU.
	mh, mw := cfg.Height>>len(m.levels), cfg.Width>>len(m.levels)
	m1, m2 := m.m1[:cfg.Bottleneck*b*mh*mw], m.m2[:cfg.Bottleneck*b*mh*mw]
	nn.Conv3x3Forward(c, m1, in, m.mid1.w, m.mid1.b, b, cin, cfg.Bottleneck, mh, mw)
	nn.ReLUForward(c, m1)
	nn.Conv3x3Forward(c, m2, m1, m.mid2.w, m.mid2.b, b, cfg.Bottleneck, cfg.Bottleneck, mh, mw)
	nn.ReLUForward(c, m2)
	in, cin = m2, cfg.Bottleneck

	// Decoder: transposed conv into the first half of the concatenation
	// buffer (whose second half is the skip), then two conv3×3+ReLU.
	for i := len(m.levels) - 1; i >= 0; i-- {
		l := &m.levels[i]
		p := b * l.h * l.w
		cat, d1, d2 := l.cat[:2*l.c*p], l.d1[:l.c*p], l.d2[:l.c*p]
		nn.ConvT2x2Forward(c, nn.Channels(cat, 0, l.c, p), in, l.up.w, l.up.b, b, cin, l.c, l.h/2, l.w/2)
		nn.Conv3x3Forward(c, d1, cat, l.dec1.w, l.dec1.b, b, 2*l.c, l.c, l.h, l.w)
		nn.ReLUForward(c, d1)
		nn.Conv3x3Forward(c, d2, d1, l.dec2.w, l.dec2.b, b, l.c, l.c, l.h, l.w)
		nn.ReLUForward(c, d2)
		in, cin = d2, l.c
	}

	// Head: conv1×1 to the class logits.
	logits := m.logits[:cfg.Classes*b*hw]
	nn.Conv1x1Forward(c, logits, in, m.head.w, m.head.b, b*hw, cin, cfg.Classes)
	out := m.out[:b*cfg.Classes*hw]
	nn.CNHWToNCHW(out, logits, cfg.Classes, b, hw)
	m.batch = b
	return out
}

// LossAndBackward returns the mean per-pixel softmax cross-entropy of the
// logits of the last Forward against labels (b×Height×Width, values in
// [0, Classes)) and overwrites Grads with its gradient. It panics if the last
// call was not a Forward of batch b, or if a label is out of range.
func (m *Model) LossAndBackward(labels []uint8, b int) float32 {
	cfg := m.Config
	hw := cfg.Height * cfg.Width
	if b != m.batch || len(labels) != b*hw {
		panic(fmt.Sprintf("unet: LossAndBackward of %d labels as batch %d after a Forward of batch %d", len(labels), b, m.batch))
	}
	c := m.ctx

	// Loss and head. g always holds the gradient of the activation the
	// walk has reached; gs is the spare.
	dLogits := m.dLogits[:cfg.Classes*b*hw]
	loss := nn.SoftmaxCrossEntropy(c, dLogits, m.logits[:cfg.Classes*b*hw], labels, cfg.Classes, b, hw)
	top := &m.levels[0]
	g := m.g[:top.c*b*hw]
	nn.Conv1x1Backward(c, g, m.head.dw, m.head.db, dLogits, top.d2[:top.c*b*hw], m.head.w, b*hw, top.c, cfg.Classes)

	// Decoder, from full resolution down. The gradient of the concatenation
	// is kept in dCat: its skip half is finished by the encoder's pooling.
	mh, mw := cfg.Height>>len(m.levels), cfg.Width>>len(m.levels)
	for i := range m.levels {
		l := &m.levels[i]
		p := b * l.h * l.w
		d1, d2, cat, dCat := l.d1[:l.c*p], l.d2[:l.c*p], l.cat[:2*l.c*p], l.dCat[:2*l.c*p]
		dD2, dD1 := m.g[:l.c*p], m.gs[:l.c*p]
		nn.ReLUBackward(c, dD2, d2)
		nn.Conv3x3Backward(c, dD1, l.dec2.dw, l.dec2.db, dD2, d1, l.dec2.w, b, l.c, l.c, l.h, l.w)
		nn.ReLUBackward(c, dD1, d1)
		nn.Conv3x3Backward(c, dCat, l.dec1.dw, l.dec1.db, dD1, cat, l.dec1.w, b, 2*l.c, l.c, l.h, l.w)
		below, cb := m.m2, cfg.Bottleneck // the transposed conv's input
		if i+1 < len(m.levels) {
			below, cb = m.levels[i+1].d2, m.levels[i+1].c
		}
		q := p / 4
		nn.ConvT2x2Backward(c, m.g[:cb*q], l.up.dw, l.up.db, nn.Channels(dCat, 0, l.c, p), below[:cb*q], l.up.w, b, cb, l.c, l.h/2, l.w/2)
	}

	// Bottleneck.
	q := b * mh * mw
	m1, m2 := m.m1[:cfg.Bottleneck*q], m.m2[:cfg.Bottleneck*q]
	dM2, dM1 := m.g[:cfg.Bottleneck*q], m.gs[:cfg.Bottleneck*q]
	nn.ReLUBackward(c, dM2, m2)
	nn.Conv3x3Backward(c, dM1, m.mid2.dw, m.mid2.db, dM2, m1, m.mid2.w, b, cfg.Bottleneck, cfg.Bottleneck, mh, mw)
	nn.ReLUBackward(c, dM1, m1)
	deep := &m.levels[len(m.levels)-1]
	nn.Conv3x3Backward(c, m.g[:deep.c*q], m.mid1.dw, m.mid1.db, dM1, deep.pool[:deep.c*q], m.mid1.w, b, deep.c, cfg.Bottleneck, mh, mw)

	// Encoder, from the deepest level up. g holds the gradient of the
	// level's pooled output.
	for i := len(m.levels) - 1; i >= 0; i-- {
		l := &m.levels[i]
		p := b * l.h * l.w
		a1, skip := l.a1[:l.c*p], nn.Channels(l.cat[:2*l.c*p], l.c, 2*l.c, p)
		dSkip, dA1 := nn.Channels(l.dCat[:2*l.c*p], l.c, 2*l.c, p), m.gs[:l.c*p]
		nn.MaxPool2x2Backward(c, dSkip, m.g[:l.c*p/4], l.argmax, l.c*b, l.h, l.w)
		nn.ReLUBackward(c, dSkip, skip)
		nn.Conv3x3Backward(c, dA1, l.enc2.dw, l.enc2.db, dSkip, a1, l.enc2.w, b, l.c, l.c, l.h, l.w)
		nn.ReLUBackward(c, dA1, a1)
		in, cin, dIn := m.x[:cfg.InChannels*p], cfg.InChannels, []float32(nil)
		if i > 0 {
			prev := &m.levels[i-1]
			in, cin, dIn = prev.pool[:prev.c*p], prev.c, m.g[:prev.c*p]
		}
		nn.Conv3x3Backward(c, dIn, l.enc1.dw, l.enc1.db, dA1, in, l.enc1.w, b, cin, l.c, l.h, l.w)
	}
	return loss
}
