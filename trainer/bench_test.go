package trainer

import (
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/trainctl/trainctl/trainer/gemm"
	"github.com/trainctl/trainctl/trainer/optim"
	"github.com/trainctl/trainctl/trainer/unet"
)

// The benchmarks of docs/architecture.md's reference model: UNet-S, 3×128×128 input,
// Adam lr 1e-3, random inputs and labels, all CPUs (GOMAXPROCS). They report
// images/s; trainer/bench runs the same steps beside the PyTorch reference.

func benchModel(b *testing.B, batch int) (*unet.Model, []float32, []uint8) {
	b.Helper()
	cfg := unet.DefaultConfig()
	m, err := unet.New(cfg, gemm.New(runtime.GOMAXPROCS(0)), batch)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(m.Close)
	m.Init(1)
	r := rand.New(rand.NewPCG(1, 2))
	hw := cfg.Height * cfg.Width
	x := make([]float32, batch*cfg.InChannels*hw)
	for i := range x {
		x[i] = r.Float32()
	}
	labels := make([]uint8, batch*hw)
	for i := range labels {
		labels[i] = uint8(r.IntN(cfg.Classes))
	}
	return m, x, labels
}

func benchTrain(b *testing.B, batch int) {
	m, x, labels := benchModel(b, batch)
	opt, err := optim.New(optim.DefaultConfig(), len(m.Params))
	if err != nil {
		b.Fatal(err)
	}
	step := func() {
		m.Forward(x, batch)
		m.LossAndBackward(labels, batch)
		opt.Step(m.Params, m.Grads)
	}
	step() // warm-up
	b.ResetTimer()
	for b.Loop() {
		step()
	}
	b.ReportMetric(float64(batch*b.N)/b.Elapsed().Seconds(), "images/s")
}

func benchInfer(b *testing.B, batch int) {
	m, x, _ := benchModel(b, batch)
	k := m.Config.Classes
	hw := m.Config.Height * m.Config.Width
	mask := make([]uint8, hw)
	infer := func() {
		logits := m.Forward(x, batch)
		for i := 0; i < batch; i++ {
			argmaxNCHW(mask, logits[i*k*hw:(i+1)*k*hw], k, hw)
		}
	}
	infer()
	b.ResetTimer()
	for b.Loop() {
		infer()
	}
	b.ReportMetric(float64(batch*b.N)/b.Elapsed().Seconds(), "images/s")
}

// BenchmarkTrainB8 is one UNet-S training step (forward, loss, backward,
// Adam) at batch 8.
func BenchmarkTrainB8(b *testing.B) { benchTrain(b, 8) }

// BenchmarkTrainB32 is one UNet-S training step at batch 32.
func BenchmarkTrainB32(b *testing.B) { benchTrain(b, 32) }

// BenchmarkInferB1 is UNet-S inference (forward and argmax) of one image.
func BenchmarkInferB1(b *testing.B) { benchInfer(b, 1) }

// BenchmarkInferB8 is UNet-S inference of a batch of 8.
func BenchmarkInferB8(b *testing.B) { benchInfer(b, 8) }
