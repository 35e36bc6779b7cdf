package unet_test

import (
	"fmt"

	"github.com/trainctl/trainctl/trainer/gemm"
	"github.com/trainctl/trainctl/trainer/unet"
)

// One training step of a small UNet: forward, loss and gradients, then a
// plain SGD update of the flat parameter buffer.
func Example() {
	cfg := unet.Config{InChannels: 3, Classes: 3, Height: 32, Width: 32, Widths: []int{8, 16}, Bottleneck: 32}
	m, err := unet.New(cfg, gemm.New(2), 4)
	if err != nil {
		panic(err)
	}
	defer m.Close()
	m.Init(1)

	const b = 2
	x := make([]float32, b*cfg.InChannels*cfg.Height*cfg.Width) // NCHW images
	labels := make([]uint8, b*cfg.Height*cfg.Width)             // class per pixel
	logits := m.Forward(x, b)
	loss := m.LossAndBackward(labels, b)
	for i, g := range m.Grads {
		m.Params[i] -= 0.01 * g
	}
	fmt.Println(m.NumParams(), len(logits), loss > 0)
	// Output: 29483 6144 true
}
