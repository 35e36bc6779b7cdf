// Package nnref holds plain float64 reference implementations, in NCHW
// layout, of the layers in trainer/nn. They are the oracles of the finite
// difference checks of trainer/nn and trainer/unet: slow, obvious, and
// written independently of the im2col/GEMM formulation they check.
package nnref

import "math"

// Conv computes a k×k convolution (k odd, padding k/2, stride 1) of x, n×cin×h×w,
// with weight cout×cin×k×k and bias cout; the result is n×cout×h×w.
func Conv(x, weight, bias []float64, n, cin, cout, h, w, k int) []float64 {
	out := make([]float64, n*cout*h*w)
	pad := k / 2
	for i := range n {
		for co := range cout {
			for y := range h {
				for xx := range w {
					s := bias[co]
					for ci := range cin {
						for ky := range k {
							for kx := range k {
								sy, sx := y+ky-pad, xx+kx-pad
								if sy < 0 || sy >= h || sx < 0 || sx >= w {
									continue
								}
								s += x[((i*cin+ci)*h+sy)*w+sx] * weight[((co*cin+ci)*k+ky)*k+kx]
							}
						}
					}
					out[((i*cout+co)*h+y)*w+xx] = s
				}
			}
		}
	}
	return out
}

// ConvT2x2 computes the 2×2 stride-2 transposed convolution of x, n×cin×h×w,
// with weight cin×cout×2×2 and bias cout; the result is n×cout×2h×2w.
func ConvT2x2(x, weight, bias []float64, n, cin, cout, h, w int) []float64 {
	out := make([]float64, n*cout*4*h*w)
	for i := range n {
		for co := range cout {
			for oy := range 2 * h {
				for ox := range 2 * w {
					y, xx, dy, dx := oy/2, ox/2, oy%2, ox%2
					s := bias[co]
					for ci := range cin {
						s += x[((i*cin+ci)*h+y)*w+xx] * weight[((ci*cout+co)*2+dy)*2+dx]
					}
					out[((i*cout+co)*2*h+oy)*2*w+ox] = s
				}
			}
		}
	}
	return out
}

// MaxPool2x2 computes the 2×2 stride-2 max pooling of planes planes of h×w.
func MaxPool2x2(x []float64, planes, h, w int) []float64 {
	out := make([]float64, planes*h/2*w/2)
	for p := range planes {
		for y := range h / 2 {
			for xx := range w / 2 {
				m := math.Inf(-1)
				for dy := range 2 {
					for dx := range 2 {
						m = math.Max(m, x[(p*h+2*y+dy)*w+2*xx+dx])
					}
				}
				out[(p*h/2+y)*w/2+xx] = m
			}
		}
	}
	return out
}

// ReLU returns max(x, 0) element-wise.
func ReLU(x []float64) []float64 {
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = math.Max(v, 0)
	}
	return out
}

// Concat concatenates a, n×ca×hw, and b, n×cb×hw, along channels.
func Concat(a, b []float64, n, ca, cb, hw int) []float64 {
	out := make([]float64, 0, len(a)+len(b))
	for i := range n {
		out = append(out, a[i*ca*hw:(i+1)*ca*hw]...)
		out = append(out, b[i*cb*hw:(i+1)*cb*hw]...)
	}
	return out
}

// SoftmaxCrossEntropy is the mean over the n·hw pixels of the softmax
// cross-entropy of logits, n×k×hw, against labels, n×hw.
func SoftmaxCrossEntropy(logits []float64, labels []uint8, n, k, hw int) float64 {
	var sum float64
	for i := range n {
		for j := range hw {
			m := math.Inf(-1)
			for c := range k {
				m = math.Max(m, logits[(i*k+c)*hw+j])
			}
			var s float64
			for c := range k {
				s += math.Exp(logits[(i*k+c)*hw+j] - m)
			}
			sum += m + math.Log(s) - logits[(i*k+int(labels[i*hw+j]))*hw+j]
		}
	}
	return sum / float64(n*hw)
}
