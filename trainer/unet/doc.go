// Package unet is the reference segmentation model UNet-S of docs/architecture.md, written
// in the llm.c style: one flat parameter buffer, one flat gradient buffer, and a
// forward and backward pass that read top to bottom in unet.go, built from the
// layer kernels of trainer/nn and the GEMM of trainer/gemm.
//
// # API summary (stable; the training loop, checkpoints and serving use it)
//
//	cfg := unet.DefaultConfig()          // 3×128×128 in, 3 classes, widths 16/32/64/128, bottleneck 256
//	err := cfg.Validate()                // New validates too; errors wrap unet.ErrConfig
//	m, err := unet.New(cfg, eng, maxBatch) // eng *gemm.Engine; sizes every workspace once
//	defer m.Close()                      // stops the model's helper goroutines (not the engine)
//	m.Init(seed)                         // He init, deterministic in seed; biases 0
//	logits := m.Forward(x, b)            // x: b×C×H×W float32 (NCHW); logits: b×K×H×W, a view
//	                                     // valid until the next Forward
//	loss := m.LossAndBackward(labels, b) // labels: b×H×W uint8 in [0,K); mean softmax CE;
//	                                     // overwrites m.Grads completely
//	// m.Params, m.Grads: []float32 of length m.NumParams(), same layout;
//	// the optimizer updates m.Params in place, all-reduce works on m.Grads.
//	for _, v := range m.ParamViews() { _ = m.Params[v.Offset : v.Offset+v.Size()] } // name, shape
//
// NumParams(cfg) gives the parameter count without building a model
// (1,941,139 for DefaultConfig); m.MaxBatch() is the maxBatch of New. Params
// and Grads are allocated once and the model holds views into them: update
// them in place (copy a checkpoint into m.Params), never replace the slices. Parameter names follow PyTorch: "enc1.conv1.weight"
// (shape Cout×Cin×3×3), "enc1.conv1.bias", …, "mid.conv2.bias", "dec4.up.weight"
// (ConvTranspose2d layout Cin×Cout×2×2), "dec4.conv1.weight", …, "head.weight"
// (K×C×1×1), "head.bias". Level 1 is the full resolution, level 4 the deepest.
//
// A Model is not safe for concurrent use; give each goroutine its own. After
// New, Forward and LossAndBackward do not allocate. Results are bit-identical
// for the same parameters and inputs, whatever the number of threads (every
// reduction has a fixed order, and the GEMM splits C, never the sum). Forward panics if b is outside [1, maxBatch] or x has the
// wrong length; LossAndBackward panics if it is not preceded by a Forward of the
// same b, or if a label is ≥ Classes (the data pipeline maps labels to 0..K-1).
//
// # Layout
//
// Inside the model, activations are stored channel-major with the batch folded
// in (C×B×H×W, "CNHW"): every convolution is then a GEMM over the B·H·W
// pixels of the batch, cut into chunks of about 4096 pixels that may span
// images (so the deep 8×8 and 16×16 layers still get wide GEMMs while the
// im2col buffer stays a few MiB), the 1×1 head is a GEMM on the activation
// itself, and the
// decoder's concatenation is free: the transposed convolution and the encoder's
// skip convolution write adjacent channel ranges of one buffer. The NCHW input
// and logits are converted at the edges (3 channels each, negligible).
package unet
