package nn

import (
	"fmt"
	"math"
)

// lossChunks is the fixed number of pixel ranges whose partial losses are
// summed in order: the loss does not depend on the number of threads.
const lossChunks = 64

// SoftmaxCrossEntropy computes the mean over all n·hw pixels of the softmax
// cross-entropy of logits (k×n×hw, CNHW) against labels (n×hw, image-major,
// each in [0, k)), and in the same pass writes its gradient, (softmax −
// one-hot)/(n·hw), into dLogits (same shape as logits; it may be logits
// itself). The softmax subtracts each pixel's maximum logit, and the loss
// is accumulated in float64. It panics if a label is ≥ k.
func SoftmaxCrossEntropy(c *Ctx, dLogits, logits []float32, labels []uint8, k, n, hw int) float32 {
	p := n * hw
	checkLen("softmax logits", logits, k*p)
	checkLen("softmax dLogits", dLogits, k*p)
	if len(labels) < p {
		panic(fmt.Sprintf("nn: softmax: %d labels, want %d", len(labels), p))
	}
	for i, l := range labels[:p] {
		if int(l) >= k {
			panic(fmt.Sprintf("nn: softmax: label %d at pixel %d is not below %d classes", l, i, k))
		}
	}
	a := &c.smax
	*a = softmaxArgs{d: dLogits, z: logits, labels: labels, k: k, p: p, partial: c.loss}
	c.parallel(lossChunks, p*k*8/lossChunks, a)
	*a = softmaxArgs{}
	var sum float64
	for _, s := range c.loss {
		sum += s
	}
	return float32(sum / float64(p))
}

type softmaxArgs struct {
	d, z    []float32
	labels  []uint8
	k, p    int
	partial []float64
}

// run handles pixel chunks [lo, hi) of lossChunks. The exponentials are
// kept in d between the sum and the normalisation.
func (a *softmaxArgs) run(lo, hi int) {
	k, p := a.k, a.p
	inv := 1 / float64(p)
	for ch := lo; ch < hi; ch++ {
		var sum float64
		for j := p * ch / lossChunks; j < p*(ch+1)/lossChunks; j++ {
			m := a.z[j]
			for c := 1; c < k; c++ {
				m = max(m, a.z[c*p+j])
			}
			l := int(a.labels[j])
			zl := a.z[l*p+j] - m // read before d (which may be z) is written
			var s float64
			for c := range k {
				e := math.Exp(float64(a.z[c*p+j] - m))
				a.d[c*p+j] = float32(e)
				s += e
			}
			sum += math.Log(s) - float64(zl)
			scale := float32(inv / s)
			for c := range k {
				a.d[c*p+j] *= scale
			}
			a.d[l*p+j] -= float32(inv)
		}
		a.partial[ch] = sum
	}
}
