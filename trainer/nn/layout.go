package nn

// Channels returns the contiguous view of channels [c0, c1) of the CNHW
// tensor x with pixels = n·h·w pixels per channel. Concatenation along
// channels is two producers writing Channels of one buffer; its backward is
// the same views of the gradient.
func Channels(x []float32, c0, c1, pixels int) []float32 {
	return x[c0*pixels : c1*pixels : c1*pixels]
}

// NCHWToCNHW copies src, n images of c channels of hw pixels (NCHW), into
// dst in CNHW order.
func NCHWToCNHW(dst, src []float32, n, c, hw int) {
	checkLen("NCHWToCNHW src", src, n*c*hw)
	checkLen("NCHWToCNHW dst", dst, n*c*hw)
	for i := range n {
		for ch := range c {
			copy(dst[(ch*n+i)*hw:(ch*n+i+1)*hw], src[(i*c+ch)*hw:(i*c+ch+1)*hw])
		}
	}
}

// CNHWToNCHW copies src, c channels of n images of hw pixels (CNHW), into
// dst in NCHW order.
func CNHWToNCHW(dst, src []float32, c, n, hw int) {
	checkLen("CNHWToNCHW src", src, n*c*hw)
	checkLen("CNHWToNCHW dst", dst, n*c*hw)
	for i := range n {
		for ch := range c {
			copy(dst[(i*c+ch)*hw:(i*c+ch+1)*hw], src[(ch*n+i)*hw:(ch*n+i+1)*hw])
		}
	}
}
