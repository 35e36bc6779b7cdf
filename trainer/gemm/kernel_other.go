//go:build !amd64

package gemm

// availableKernels lists the kernels this machine supports: only the
// portable one outside amd64.
func availableKernels() []kernelSpec { return []kernelSpec{genericSpec()} }

// callKernel runs the portable kernel on a full tile.
func callKernel(_, k int, a, b, c []float32, ldc int, beta float32) {
	kernGeneric(k, a, b, c, ldc, beta)
}

// callKernelPf runs the portable kernel on a full tile; it does not prefetch.
func callKernelPf(_, k int, a, b, c []float32, ldc int, beta float32, _ []float32, _, _ int) {
	kernGeneric(k, a, b, c, ldc, beta)
}

// packRows16 is never called outside amd64 (no kernel sets asmPack).
func packRows16(dst, src *float32, kc, ld, np int, alpha float32) { panic("gemm: packRows16") }

// packT6 is never called outside amd64 (no kernel sets asmPack).
func packT6(dst, src *float32, kc8, ld int, alpha float32) { panic("gemm: packT6") }

// packT8 is never called outside amd64 (no kernel sets asmPack).
func packT8(dst, src *float32, kc8, ld, w int, alpha float32) { panic("gemm: packT8") }

// spinPause is a busy-wait step (nothing outside amd64).
func spinPause() {}
