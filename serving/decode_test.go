package serving

import (
	"bytes"
	"errors"
	"image/jpeg"
	"net/http"
	"testing"
)

// FuzzDecodeImage feeds arbitrary bytes through the decode path (sniff,
// header check, decode, EXIF orientation, resize to the model input): it
// must never panic, every error must be one of the typed input errors with a
// 4xx status, every image it accepts must fit the pixel limit, and a JPEG
// comes out as its header's size, turned a quarter for orientations 5 to 8.
func FuzzDecodeImage(f *testing.F) {
	png, jpg := pngBytes(f, 7, 5), jpegBytes(f, 9, 4)
	for _, seed := range [][]byte{
		png, jpg, png[:len(png)/2], jpg[:len(jpg)/2], png[:8], jpg[:2],
		pngHeader(100000, 100000), pngHeader(0, 3), pngHeader(3, 3),
		[]byte("GIF89a"), []byte("plain text"), {},
	} {
		f.Add(seed)
	}
	// JPEGs with an EXIF APP1: every orientation in both byte orders, the
	// corrupt segments TestDecodeImageMalformedEXIF uses, and a truncated
	// one.
	for _, order := range []string{"II", "MM"} {
		for o := range uint16(10) {
			f.Add(withSegments(jpg, exifAPP1(orientationTIFF(order, o))))
		}
	}
	for _, seg := range malformedEXIF() {
		f.Add(withSegments(jpg, seg))
	}
	withEXIF := withSegments(jpg, exifAPP1(orientationTIFF("MM", 6)))
	f.Add(withEXIF[:30])
	const maxPixels = 1 << 16
	f.Fuzz(func(t *testing.T, data []byte) {
		o := jpegOrientation(data)
		if o < 1 || o > 8 {
			t.Fatalf("jpegOrientation = %d, want 1 to 8", o)
		}
		img, err := decodeImage(data, maxPixels)
		if err != nil {
			if !errors.Is(err, errEmptyBody) && !errors.Is(err, errUnsupportedType) && !errors.Is(err, errImageTooLarge) && !errors.Is(err, errBadImage) {
				t.Fatalf("untyped error %v", err)
			}
			if st, _ := errorStatus(err); st < 400 || st >= 500 || st == http.StatusInternalServerError {
				t.Fatalf("error %v maps to status %d", err, st)
			}
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		b := img.Bounds()
		if b.Dx() <= 0 || b.Dy() <= 0 || b.Dx()*b.Dy() > maxPixels {
			t.Fatalf("accepted a %dx%d image (limit %d pixels)", b.Dx(), b.Dy(), maxPixels)
		}
		if cfg, err := jpeg.DecodeConfig(bytes.NewReader(data)); err == nil && http.DetectContentType(data) == "image/jpeg" {
			w, h := cfg.Width, cfg.Height
			if o >= 5 {
				w, h = h, w
			}
			if b.Dx() != w || b.Dy() != h {
				t.Fatalf("a %dx%d JPEG with orientation %d decoded to %dx%d, want %dx%d", cfg.Width, cfg.Height, o, b.Dx(), b.Dy(), w, h)
			}
		}
		for _, ch := range []int{1, 3} {
			if in := toModelInput(img, 8, 4, ch); len(in) != 8*4*ch {
				t.Fatalf("model input is %d bytes, want %d", len(in), 8*4*ch)
			}
		}
	})
}

func TestDecodeImage(t *testing.T) {
	png := pngBytes(t, 10, 6)
	tests := []struct {
		name    string
		data    []byte
		wantErr error
	}{
		{"png", png, nil},
		{"jpeg", jpegBytes(t, 10, 6), nil},
		{"empty", nil, errEmptyBody},
		{"text", []byte("not an image at all"), errUnsupportedType},
		{"truncated", png[:len(png)-20], errBadImage},
		{"bomb", pngHeader(100000, 100000), errImageTooLarge},
		{"zero", pngHeader(10, 0), errBadImage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img, err := decodeImage(tt.data, 1000)
			if !errors.Is(err, tt.wantErr) || (err != nil) != (tt.wantErr != nil) {
				t.Fatalf("error %v, want %v", err, tt.wantErr)
			}
			if err == nil && (img.Bounds().Dx() != 10 || img.Bounds().Dy() != 6) {
				t.Fatalf("decoded %v, want 10x6", img.Bounds())
			}
		})
	}
}
