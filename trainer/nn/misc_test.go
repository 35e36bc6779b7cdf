package nn

import (
	"testing"

	"github.com/trainctl/trainctl/trainer/gemm"
)

// TestSoftmaxInPlace checks that dLogits may be the logits themselves.
func TestSoftmaxInPlace(t *testing.T) {
	c := NewCtx(gemm.New(1), 2, 0, 0)
	defer c.Close()
	c.grain = 1
	const k, n, hw = 4, 3, 7
	r := newRand(1)
	z := r.normal(k*n*hw, 3)
	labels := make([]uint8, n*hw)
	for i := range labels {
		labels[i] = uint8(r.next() % k)
	}
	d := make([]float32, len(z))
	want := SoftmaxCrossEntropy(c, d, z, labels, k, n, hw)
	got := SoftmaxCrossEntropy(c, z, z, labels, k, n, hw)
	if got != want || !bitEqual(z, d) {
		t.Fatalf("in place: loss %v, want %v; gradients equal %v", got, want, bitEqual(z, d))
	}
}

// TestMaxPoolBackwardAdds checks that the pooling gradient is added to what
// dIn holds (the skip connection's gradient in a UNet).
func TestMaxPoolBackwardAdds(t *testing.T) {
	c := NewCtx(gemm.New(1), 1, 0, 0)
	defer c.Close()
	in := []float32{1, 5, 2, 0, 3, 4, 8, 1} // one 2×4 plane
	out, am := make([]float32, 2), make([]uint8, 2)
	MaxPool2x2Forward(c, out, am, in, 1, 2, 4)
	if out[0] != 5 || out[1] != 8 {
		t.Fatalf("pooled %v, want [5 8]", out)
	}
	dIn := []float32{1, 1, 1, 1, 1, 1, 1, 1}
	MaxPool2x2Backward(c, dIn, []float32{10, 20}, am, 1, 2, 4)
	want := []float32{1, 11, 1, 1, 1, 1, 21, 1}
	if !bitEqual(dIn, want) {
		t.Fatalf("dIn %v, want %v", dIn, want)
	}
}

// TestWorkspaceTooSmall checks the panics that guard a model's sizing.
func TestWorkspaceTooSmall(t *testing.T) {
	_, weights := Conv3x3Workspace(1, 2, 2, 4, 4)
	row := 2 * 9 * 4
	x, w, b := make([]float32, 2*4*4), make([]float32, 36), make([]float32, 2)
	tests := []struct {
		name          string
		cols, weights int
		f             func(c *Ctx)
	}{
		{"forward columns", row - 1, weights, func(c *Ctx) { Conv3x3Forward(c, x, x, w, b, 1, 2, 2, 4, 4) }},
		{"backward weights", row, weights - 1, func(c *Ctx) { Conv3x3Backward(c, x, w, b, x, x, w, 1, 2, 2, 4, 4) }},
		{"convT columns", 2*4*2 - 1, 0, func(c *Ctx) { ConvT2x2Forward(c, x, x[:8], w[:16], b, 1, 2, 2, 2, 2) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewCtx(gemm.New(1), 1, tt.cols, tt.weights)
			defer c.Close()
			defer func() {
				if recover() == nil {
					t.Fatal("no panic")
				}
			}()
			tt.f(c)
		})
	}
}

func TestCloseTwice(t *testing.T) {
	c := NewCtx(gemm.New(1), 3, 0, 0)
	c.Close()
	c.Close()
}
