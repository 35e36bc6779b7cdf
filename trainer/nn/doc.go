// Package nn holds the layer kernels of the trainer engine, written in the
// llm.c style: each layer is a pair of plain functions, forward and backward,
// over flat float32 slices with explicit shapes. Nothing here allocates after
// construction; workspaces live in a Ctx that the model sizes once.
//
// # Layout
//
// Activations are channel-major with the batch folded in: a tensor of C
// channels, N images of H×W pixels is a slice of C·N·H·W floats indexed
// [c][n][y][x] ("CNHW"). For N = 1 this is the same as NCHW. The layout makes
// a convolution over the whole batch one GEMM (output channels × N·H·W pixels,
// cut into chunks of about 4096 pixels to bound the im2col workspace),
// a 1×1 convolution a GEMM on the tensor itself, and channel concatenation
// free: channel range [c0, c1) of a tensor is the contiguous slice returned by
// Channels, so two producers writing adjacent ranges of one buffer build the
// concatenation, and its gradient is the same two views. NCHWToCNHW and
// CNHWToNCHW convert at the edges of a model.
//
// Weights use the PyTorch layouts: Conv2d Cout×Cin×k×k, ConvTranspose2d
// Cin×Cout×2×2. Backward functions overwrite the weight and bias gradients
// (each parameter belongs to one layer) and document what they do to the
// input gradient.
//
// Kernels other than GEMM split their work across the Ctx's helper goroutines
// when the work is large enough to pay for the hand-off. Every reduction has an
// order that does not depend on the number of threads, so results are
// bit-identical for any thread count.
//
// Shapes are checked with panics: the callers (trainer/unet) check their
// configuration once at construction, so a bad shape here is a programmer
// error.
package nn
