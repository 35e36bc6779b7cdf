package trainer

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/png"
	"testing"

	"github.com/trainctl/trainctl/dataset"
)

func TestResizeToHWC(t *testing.T) {
	// A 2×1 image, black then white, upsampled to 4×1: pixel centres at
	// source x = -0.25, 0.25, 0.75, 1.25 → 0, 0.25, 0.75, 1 of white.
	src := image.NewRGBA(image.Rect(0, 0, 2, 1))
	src.Set(0, 0, color.RGBA{0, 0, 0, 255})
	src.Set(1, 0, color.RGBA{255, 255, 255, 255})
	got := ResizeToHWC(src, 4, 1, 1)
	want := []byte{0, 64, 191, 255}
	if !bytes.Equal(got, want) {
		t.Errorf("gray upsample = %v, want %v", got, want)
	}
	// Same size is the identity; RGB order is kept.
	rgb := image.NewNRGBA(image.Rect(0, 0, 2, 2))
	for i := range rgb.Pix {
		rgb.Pix[i] = byte(i * 7)
		if i%4 == 3 {
			rgb.Pix[i] = 255
		}
	}
	id := ResizeToHWC(rgb, 2, 2, 3)
	for p := 0; p < 4; p++ {
		for c := 0; c < 3; c++ {
			if id[p*3+c] != rgb.Pix[p*4+c] {
				t.Fatalf("identity resize: pixel %d channel %d = %d, want %d", p, c, id[p*3+c], rgb.Pix[p*4+c])
			}
		}
	}
	// A sub-image with a non-zero origin.
	sub := rgb.SubImage(image.Rect(1, 1, 2, 2))
	if got := ResizeToHWC(sub, 1, 1, 3); !bytes.Equal(got, rgb.Pix[12:15]) {
		t.Errorf("sub-image = %v, want %v", got, rgb.Pix[12:15])
	}
}

func TestResizeMaskNearest(t *testing.T) {
	m := []uint8{0, 1, 2, 3} // 2×2
	got := ResizeMaskNearest(m, 2, 2, 4, 2)
	want := []uint8{0, 0, 1, 1, 2, 2, 3, 3}
	if !bytes.Equal(got, want) {
		t.Errorf("upsample = %v, want %v", got, want)
	}
	if got := ResizeMaskNearest(want, 4, 2, 2, 1); !bytes.Equal(got, []uint8{2, 3}) {
		t.Errorf("downsample = %v", got)
	}
}

func TestDecodeImageAndMaskImage(t *testing.T) {
	if _, err := DecodeImage(bytes.NewReader([]byte("not an image"))); !errors.Is(err, ErrImage) {
		t.Fatalf("garbage: err = %v, want ErrImage", err)
	}
	mask := []uint8{0, 1, 2, 1, 0, 2}
	var buf bytes.Buffer
	if err := png.Encode(&buf, MaskImage(mask, 3, 2, 3)); err != nil {
		t.Fatal(err)
	}
	img, err := DecodeImage(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	p, ok := img.(*image.Paletted)
	if !ok || !bytes.Equal(p.Pix, mask) || p.Bounds().Dx() != 3 {
		t.Fatalf("mask PNG round trip: %T %v", img, img.Bounds())
	}
	if c := p.Palette[1].(color.RGBA); c != (color.RGBA{255, 255, 255, 255}) {
		t.Errorf("class 1 colour %v, want white", c)
	}
}

func TestCheckMask(t *testing.T) {
	if err := checkMask(dataset.Example{ID: "a", Mask: []byte{0, 2, 1}}, 3); err != nil {
		t.Fatal(err)
	}
	if err := checkMask(dataset.Example{ID: "a", Mask: []byte{0, 3}}, 3); err == nil {
		t.Fatal("mask value 3 of 3 classes accepted")
	}
}
