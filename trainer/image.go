package trainer

import (
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	_ "image/jpeg" // register JPEG for DecodeImage
	_ "image/png"  // register PNG for DecodeImage
	"io"
)

// ErrImage is returned (wrapped) for an image that cannot be decoded or is
// larger than the configured limit.
var ErrImage = errors.New("bad image")

// MaxImagePixels bounds the images DecodeImage accepts (64 megapixels), so a
// small compressed file cannot claim a huge canvas.
const MaxImagePixels = 64 << 20

// DecodeImage decodes a JPEG or PNG image, checking its dimensions from the
// header before decoding the pixels.
func DecodeImage(r io.ReadSeeker) (image.Image, error) {
	cfg, format, err := image.DecodeConfig(r)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrImage, err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 || int64(cfg.Width)*int64(cfg.Height) > MaxImagePixels {
		return nil, fmt.Errorf("%w: %s image is %dx%d, limit %d pixels", ErrImage, format, cfg.Width, cfg.Height, MaxImagePixels)
	}
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	img, _, err := image.Decode(r)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrImage, err)
	}
	return img, nil
}

// ResizeToHWC resamples img to w×h with bilinear interpolation (pixel
// centres aligned, as PyTorch's align_corners=False) and returns it as
// interleaved 8-bit H×W×channels bytes, the layout of dataset examples.
// channels is 3 (RGB) or 1 (luma, ITU-R 601 weights as image/color.Gray).
func ResizeToHWC(img image.Image, w, h, channels int) []byte {
	b := img.Bounds()
	rgba := image.NewNRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	draw.Draw(rgba, rgba.Bounds(), img, b.Min, draw.Src)
	sw, sh := b.Dx(), b.Dy()
	out := make([]byte, w*h*channels)
	sx := float64(sw) / float64(w)
	sy := float64(sh) / float64(h)
	for y := 0; y < h; y++ {
		fy := (float64(y)+0.5)*sy - 0.5
		y0, wy := splitCoord(fy, sh)
		y1 := min(y0+1, sh-1)
		for x := 0; x < w; x++ {
			fx := (float64(x)+0.5)*sx - 0.5
			x0, wx := splitCoord(fx, sw)
			x1 := min(x0+1, sw-1)
			var px [3]float64
			for c := 0; c < 3; c++ {
				p00 := float64(rgba.Pix[y0*rgba.Stride+4*x0+c])
				p01 := float64(rgba.Pix[y0*rgba.Stride+4*x1+c])
				p10 := float64(rgba.Pix[y1*rgba.Stride+4*x0+c])
				p11 := float64(rgba.Pix[y1*rgba.Stride+4*x1+c])
				top := p00 + (p01-p00)*wx
				bot := p10 + (p11-p10)*wx
				px[c] = top + (bot-top)*wy
			}
			o := (y*w + x) * channels
			if channels == 1 {
				// image/color's luma weights.
				out[o] = clampByte((19595*px[0] + 38470*px[1] + 7471*px[2]) / 65536)
			} else {
				out[o], out[o+1], out[o+2] = clampByte(px[0]), clampByte(px[1]), clampByte(px[2])
			}
		}
	}
	return out
}

// splitCoord clamps a source coordinate to [0, n-1] and returns its integer
// part and fraction.
func splitCoord(f float64, n int) (int, float64) {
	if f <= 0 {
		return 0, 0
	}
	if f >= float64(n-1) {
		return n - 1, 0
	}
	i := int(f)
	return i, f - float64(i)
}

func clampByte(v float64) byte {
	v += 0.5
	switch {
	case v <= 0:
		return 0
	case v >= 255:
		return 255
	}
	return byte(v)
}

// ResizeMaskNearest resamples a row-major sw×sh mask to w×h by nearest
// neighbour (the source pixel whose centre is nearest), so class indices are
// never blended.
func ResizeMaskNearest(mask []uint8, sw, sh, w, h int) []uint8 {
	out := make([]uint8, w*h)
	for y := 0; y < h; y++ {
		syi := min(int((float64(y)+0.5)*float64(sh)/float64(h)), sh-1)
		for x := 0; x < w; x++ {
			sxi := min(int((float64(x)+0.5)*float64(sw)/float64(w)), sw-1)
			out[y*w+x] = mask[syi*sw+sxi]
		}
	}
	return out
}

// maskColors colour class indices in mask images: class 0 black, 1 white,
// 2 mid grey, then saturated colours; up to 256 classes, cycling.
var maskColors = []color.RGBA{
	{0, 0, 0, 255}, {255, 255, 255, 255}, {128, 128, 128, 255},
	{230, 25, 75, 255}, {60, 180, 75, 255}, {0, 130, 200, 255}, {255, 225, 25, 255},
	{245, 130, 48, 255}, {145, 30, 180, 255}, {70, 240, 240, 255}, {240, 50, 230, 255},
}

// MaskImage returns a w×h mask as a paletted image whose pixel values are the
// class indices themselves (so a PNG of it is machine-readable) and whose
// palette makes them visible: class 0 black, 1 white, 2 grey, then distinct
// colours. classes is the number of palette entries (at least the largest
// index + 1).
func MaskImage(mask []uint8, w, h, classes int) *image.Paletted {
	classes = max(1, min(classes, 256))
	pal := make(color.Palette, classes)
	for i := range pal {
		pal[i] = maskColors[i%len(maskColors)]
	}
	img := image.NewPaletted(image.Rect(0, 0, w, h), pal)
	copy(img.Pix, mask)
	return img
}
