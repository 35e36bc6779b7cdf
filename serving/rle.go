package serving

import (
	"errors"
	"fmt"
	"math"
)

// ErrRLE is wrapped by RLE.Decode's errors for counts that do not describe a
// mask of the given size.
var ErrRLE = errors.New("bad mask RLE")

// RLE is a class mask run-length encoded, the mask_rle of a JSON
// prediction. Counts holds pairs: class id, then how many consecutive
// pixels have that class, scanning the mask row-major (left to right, top
// row first; runs continue across rows). Adjacent runs have different
// classes and every run length is at least 1, so the run lengths sum to
// width×height. A 3×2 mask with rows [0 0 1] and [1 1 1] is
// {"counts": [0, 2, 1, 4]}.
type RLE struct {
	Counts []int `json:"counts"`
}

// EncodeRLE run-length encodes a row-major mask.
func EncodeRLE(mask []byte) RLE {
	counts := []int{}
	for i := 0; i < len(mask); {
		j := i + 1
		for j < len(mask) && mask[j] == mask[i] {
			j++
		}
		counts = append(counts, int(mask[i]), j-i)
		i = j
	}
	return RLE{Counts: counts}
}

// maxRLEPixels bounds the mask Decode builds (4 Gi pixels, far beyond any
// image a Server accepts), so that a size that is valid arithmetic cannot
// make it attempt an allocation the runtime refuses with a panic (on a
// 32-bit platform, what an int holds).
const maxRLEPixels = min(1<<32, math.MaxInt)

// Decode expands the runs into a row-major mask of width×height pixels. It
// fails (ErrRLE) for a width or height below 1, a mask over 2^32 pixels,
// an odd count, a class outside 0..255, a run shorter than 1, or run
// lengths that do not sum to width×height. The runs are checked before
// the mask is allocated, so a size the runs do not cover allocates
// nothing; a caller decoding an untrusted response should still bound
// width×height, which Decode allocates once the runs cover it.
func (r RLE) Decode(width, height int) ([]byte, error) {
	if width < 1 || height < 1 {
		return nil, fmt.Errorf("%w: mask size %dx%d, want at least 1x1", ErrRLE, width, height)
	}
	if width > maxRLEPixels/height {
		return nil, fmt.Errorf("%w: mask size %dx%d is more than the %d pixels a mask may have", ErrRLE, width, height, maxRLEPixels)
	}
	n := width * height
	if len(r.Counts)%2 != 0 {
		return nil, fmt.Errorf("%w: %d counts, want class/length pairs", ErrRLE, len(r.Counts))
	}
	covered := 0
	for i := 0; i < len(r.Counts); i += 2 {
		class, run := r.Counts[i], r.Counts[i+1]
		switch {
		case class < 0 || class > 255:
			return nil, fmt.Errorf("%w: pair %d has class %d, want 0..255", ErrRLE, i/2, class)
		case run < 1:
			return nil, fmt.Errorf("%w: pair %d has run length %d, want >= 1", ErrRLE, i/2, run)
		case run > n-covered:
			return nil, fmt.Errorf("%w: runs up to pair %d cover more than the %dx%d = %d pixels", ErrRLE, i/2, width, height, n)
		}
		covered += run
	}
	if covered != n {
		return nil, fmt.Errorf("%w: runs cover %d pixels, the mask has %dx%d = %d", ErrRLE, covered, width, height, n)
	}
	mask := make([]byte, n)
	at := 0
	for i := 0; i < len(r.Counts); i += 2 {
		run := mask[at : at+r.Counts[i+1]]
		for k := range run {
			run[k] = byte(r.Counts[i])
		}
		at += len(run)
	}
	return mask, nil
}
