package serving

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"net/http"
	"testing"
)

// Test images are 3×2 grids of six colours, named by index in reading order
// as stored: R G B on the top row, Y M C below. uprightGrids is, for each
// EXIF orientation, the grid as a browser shows it (rows of indices),
// written out by hand from the EXIF definitions ("row 0 is the visual
// right-hand side, column 0 the visual top" for 6, and so on).
var blockColours = []color.RGBA{
	{230, 20, 20, 255}, {20, 200, 20, 255}, {20, 20, 230, 255},
	{240, 230, 20, 255}, {220, 20, 220, 255}, {20, 220, 230, 255},
}

const (
	cR, cG, cB, cY, cM, cC = 0, 1, 2, 3, 4, 5
)

var uprightGrids = map[int][][]int{
	1: {{cR, cG, cB}, {cY, cM, cC}},
	2: {{cB, cG, cR}, {cC, cM, cY}},   // mirrored
	3: {{cC, cM, cY}, {cB, cG, cR}},   // rotated 180
	4: {{cY, cM, cC}, {cR, cG, cB}},   // flipped
	5: {{cR, cY}, {cG, cM}, {cB, cC}}, // transposed
	6: {{cY, cR}, {cM, cG}, {cC, cB}}, // rotated 90 clockwise
	7: {{cC, cB}, {cM, cG}, {cY, cR}}, // transverse
	8: {{cB, cC}, {cG, cM}, {cR, cY}}, // rotated 270 clockwise
}

// blockJPEG is the 3×2 colour grid in block×block solid squares, as a
// quality-100 JPEG (large blocks survive its chroma subsampling).
func blockJPEG(t testing.TB, block int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 3*block, 2*block))
	for y := range 2 * block {
		for x := range 3 * block {
			img.SetRGBA(x, y, blockColours[(y/block)*3+x/block])
		}
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 100}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// exifTIFF is a TIFF structure in byte order bo ("II" or "MM") whose IFD0
// holds the given 12-byte entries.
func exifTIFF(order string, entries ...[]byte) []byte {
	bo := byteOrder(order)
	t := []byte(order)
	t = bo.AppendUint16(t, 42)
	t = bo.AppendUint32(t, 8)
	t = bo.AppendUint16(t, uint16(len(entries)))
	for _, e := range entries {
		t = append(t, e...)
	}
	return bo.AppendUint32(t, 0) // no next IFD
}

func byteOrder(order string) binary.AppendByteOrder {
	if order == "MM" {
		return binary.BigEndian
	}
	return binary.LittleEndian
}

// ifdEntry is one IFD entry holding a single SHORT-sized value, left
// justified in the value field as TIFF stores it.
func ifdEntry(order string, tag, typ uint16, count uint32, value uint16) []byte {
	bo := byteOrder(order)
	e := bo.AppendUint16(nil, tag)
	e = bo.AppendUint16(e, typ)
	e = bo.AppendUint32(e, count)
	e = bo.AppendUint16(e, value)
	return append(e, 0, 0)
}

// orientationTIFF is a well-formed TIFF with Orientation o.
func orientationTIFF(order string, o uint16) []byte {
	return exifTIFF(order, ifdEntry(order, 0x0112, 3, 1, o))
}

// app1 is an APP1 segment with the given payload.
func app1(payload []byte) []byte {
	s := []byte{0xFF, 0xE1}
	s = binary.BigEndian.AppendUint16(s, uint16(2+len(payload)))
	return append(s, payload...)
}

// exifAPP1 is an APP1 "Exif" segment holding tiff.
func exifAPP1(tiff []byte) []byte {
	return app1(append([]byte("Exif\x00\x00"), tiff...))
}

// withSegments puts segments right after the SOI marker of a JPEG.
func withSegments(jpg []byte, segments ...[]byte) []byte {
	out := append([]byte{}, jpg[:2]...)
	for _, s := range segments {
		out = append(out, s...)
	}
	return append(out, jpg[2:]...)
}

// checkGrid checks img is the colour grid in arrangement want, in
// block×block squares, sampling the middle of each square.
func checkGrid(t *testing.T, img image.Image, want [][]int, block int) {
	t.Helper()
	b := img.Bounds()
	if b.Dx() != len(want[0])*block || b.Dy() != len(want)*block {
		t.Fatalf("decoded to %dx%d, want %dx%d", b.Dx(), b.Dy(), len(want[0])*block, len(want)*block)
	}
	for row, cols := range want {
		for col, wantIdx := range cols {
			x, y := b.Min.X+col*block+block/2, b.Min.Y+row*block+block/2
			got := color.RGBAModel.Convert(img.At(x, y)).(color.RGBA)
			nearest, dist := 0, 1<<30
			for i, c := range blockColours {
				if d := colourDist(got, c); d < dist {
					nearest, dist = i, d
				}
			}
			if nearest != wantIdx || dist > 3*40*40 {
				t.Errorf("block (%d,%d) at (%d,%d) is %v, nearest colour %d; want colour %d %v", col, row, x, y, got, nearest, wantIdx, blockColours[wantIdx])
			}
		}
	}
}

func colourDist(a, b color.RGBA) int {
	dr, dg, db := int(a.R)-int(b.R), int(a.G)-int(b.G), int(a.B)-int(b.B)
	return dr*dr + dg*dg + db*db
}

func TestDecodeImageEXIFOrientation(t *testing.T) {
	const block = 8
	jpg := blockJPEG(t, block)
	for _, order := range []string{"II", "MM"} {
		for o := 1; o <= 8; o++ {
			t.Run(fmt.Sprintf("%s/%d", order, o), func(t *testing.T) {
				data := withSegments(jpg, exifAPP1(orientationTIFF(order, uint16(o))))
				if got := jpegOrientation(data); got != o {
					t.Fatalf("jpegOrientation = %d, want %d", got, o)
				}
				img, err := decodeImage(data, 1000)
				if err != nil {
					t.Fatal(err)
				}
				checkGrid(t, img, uprightGrids[o], block)
			})
		}
	}
	// Where the tag is found: after other IFD entries, in an Exif APP1
	// after a non-Exif APP1 (XMP); only the first Exif APP1 counts.
	other := ifdEntry("MM", 0x010F, 2, 4, 0x4142) // Make, ASCII
	found := []struct {
		name string
		data []byte
		want int
	}{
		{"after other entries", withSegments(jpg, exifAPP1(exifTIFF("MM", other, ifdEntry("MM", 0x0112, 3, 1, 6)))), 6},
		{"after an XMP APP1", withSegments(jpg, app1([]byte("http://ns.adobe.com/xap/1.0/\x00<x/>")), exifAPP1(orientationTIFF("II", 3))), 3},
		{"first Exif APP1 only", withSegments(jpg, exifAPP1(orientationTIFF("II", 8)), exifAPP1(orientationTIFF("II", 3))), 8},
		{"after fill bytes", withSegments(jpg, []byte{0xFF, 0xFF}, exifAPP1(orientationTIFF("II", 5))), 5},
	}
	for _, tt := range found {
		t.Run(tt.name, func(t *testing.T) {
			if got := jpegOrientation(tt.data); got != tt.want {
				t.Fatalf("jpegOrientation = %d, want %d", got, tt.want)
			}
			img, err := decodeImage(tt.data, 1000)
			if err != nil {
				t.Fatal(err)
			}
			checkGrid(t, img, uprightGrids[tt.want], block)
		})
	}
}

// malformedEXIF are APP1 segments that carry no usable Orientation: each
// must leave the image as stored.
func malformedEXIF() map[string][]byte {
	valid := orientationTIFF("II", 6)
	withOffset := func(off uint32) []byte {
		t := bytes.Clone(valid)
		binary.LittleEndian.PutUint32(t[4:], off)
		return t
	}
	// withCount: IFD0 claims n entries; it holds one (Make) and then the
	// segment ends, so an orientation entry would lie past the end.
	withCount := func(n uint16) []byte {
		t := exifTIFF("II", ifdEntry("II", 0x010F, 2, 4, 0))
		binary.LittleEndian.PutUint16(t[8:], n)
		return t[:len(t)-4]
	}
	return map[string][]byte{
		"truncated TIFF header": exifAPP1(valid[:6]),
		"truncated IFD count":   exifAPP1(valid[:9]),
		"truncated entry":       exifAPP1(valid[:10+11]),
		"empty TIFF":            exifAPP1(nil),
		"Exif without padding":  app1(append([]byte("Exif"), valid...)),
		"bad byte order":        exifAPP1(append([]byte("IM"), valid[2:]...)),
		"bad magic":             exifAPP1(append([]byte("II\x2b\x00"), valid[4:]...)),
		"IFD offset past end":   exifAPP1(withOffset(uint32(len(valid)))),
		"IFD offset at last":    exifAPP1(withOffset(uint32(len(valid) - 1))),
		"IFD offset huge":       exifAPP1(withOffset(0xFFFFFFF0)),
		"IFD offset max":        exifAPP1(withOffset(0xFFFFFFFF)),
		"IFD count past end":    exifAPP1(withCount(2)),
		"IFD count huge":        exifAPP1(withCount(0xFFFF)),
		"IFD count zero":        exifAPP1(exifTIFF("II")),
		"no orientation":        exifAPP1(exifTIFF("II", ifdEntry("II", 0x010F, 2, 4, 0))),
		"type LONG":             exifAPP1(exifTIFF("II", ifdEntry("II", 0x0112, 4, 1, 6))),
		"type ASCII":            exifAPP1(exifTIFF("MM", ifdEntry("MM", 0x0112, 2, 1, 6))),
		"count 2":               exifAPP1(exifTIFF("II", ifdEntry("II", 0x0112, 3, 2, 6))),
		"count 0":               exifAPP1(exifTIFF("MM", ifdEntry("MM", 0x0112, 3, 0, 6))),
		"orientation 0":         exifAPP1(orientationTIFF("II", 0)),
		"orientation 9":         exifAPP1(orientationTIFF("MM", 9)),
		"orientation 0xFFFF":    exifAPP1(orientationTIFF("II", 0xFFFF)),
		"orientation 0x0600":    exifAPP1(orientationTIFF("MM", 0x0600)), // 6 in the wrong byte order
		"not APP1":              append([]byte{0xFF, 0xE2}, exifAPP1(valid)[2:]...),
	}
}

func TestDecodeImageMalformedEXIF(t *testing.T) {
	const block = 8
	jpg := blockJPEG(t, block)
	for name, seg := range malformedEXIF() {
		t.Run(name, func(t *testing.T) {
			data := withSegments(jpg, seg)
			if got := jpegOrientation(data); got != 1 {
				t.Errorf("jpegOrientation = %d, want 1", got)
			}
			img, err := decodeImage(data, 1000)
			if err != nil {
				t.Fatalf("decode failed: %v", err)
			}
			checkGrid(t, img, uprightGrids[1], block)
		})
	}
}

// TestJPEGOrientationTruncated reads every prefix of a JPEG with an EXIF
// Orientation, and of headers whose segment lengths lie: none may panic or
// read out of bounds, and none may find an orientation other than the one
// stored or 1.
func TestJPEGOrientationTruncated(t *testing.T) {
	for _, order := range []string{"II", "MM"} {
		seg := exifAPP1(orientationTIFF(order, 7))
		data := withSegments(blockJPEG(t, 8), seg)
		for i := range len(data) + 1 {
			got := jpegOrientation(data[:i])
			want := 1
			if i >= 2+len(seg) {
				want = 7
			}
			if got != want {
				t.Fatalf("%s prefix of %d bytes: orientation %d, want %d", order, i, got, want)
			}
		}
	}
	lying := map[string][]byte{
		"segment longer than data": {0xFF, 0xD8, 0xFF, 0xE1, 0xFF, 0xFF, 'E', 'x', 'i', 'f', 0, 0, 'I', 'I'},
		"segment length 0":         {0xFF, 0xD8, 0xFF, 0xE1, 0x00, 0x00, 'E', 'x', 'i', 'f', 0, 0},
		"segment length 1":         {0xFF, 0xD8, 0xFF, 0xE1, 0x00, 0x01, 'E', 'x', 'i', 'f', 0, 0},
		"no marker":                {0xFF, 0xD8, 0x00, 0xE1, 0x00, 0x10},
		"SOS first":                {0xFF, 0xD8, 0xFF, 0xDA, 0x00, 0x02},
		"not a JPEG":               {0x89, 'P', 'N', 'G'},
		"only fill bytes":          {0xFF, 0xD8, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF},
	}
	for name, data := range lying {
		if got := jpegOrientation(data); got != 1 {
			t.Errorf("%s: orientation %d, want 1", name, got)
		}
	}
	// Exif after SOS is scan data, not a header.
	afterSOS := []byte{0xFF, 0xD8, 0xFF, 0xDA, 0x00, 0x02}
	afterSOS = append(afterSOS, exifAPP1(orientationTIFF("II", 6))...)
	if got := jpegOrientation(afterSOS); got != 1 {
		t.Errorf("Exif after SOS: orientation %d, want 1", got)
	}
}

// TestOrient checks every image kind orient handles, exactly (no JPEG
// loss), on a 3×2 image of six distinct pixels cut from a larger one so its
// bounds do not start at the origin.
func TestOrient(t *testing.T) {
	full := image.Rect(0, 0, 7, 5)
	sub := image.Rect(2, 1, 5, 3)
	makers := map[string]func() image.Image{
		"Gray": func() image.Image {
			m := image.NewGray(full)
			for i := range m.Pix {
				m.Pix[i] = byte(7 * i)
			}
			return m.SubImage(sub)
		},
		"CMYK": func() image.Image {
			m := image.NewCMYK(full)
			for i := range m.Pix {
				m.Pix[i] = byte(3 * i)
			}
			return m.SubImage(sub)
		},
		"NRGBA (generic)": func() image.Image {
			m := image.NewNRGBA(full)
			for i := range m.Pix {
				m.Pix[i] = byte(5 * i)
			}
			return m.SubImage(sub)
		},
	}
	for _, ratio := range []image.YCbCrSubsampleRatio{
		image.YCbCrSubsampleRatio444, image.YCbCrSubsampleRatio422, image.YCbCrSubsampleRatio420,
		image.YCbCrSubsampleRatio440, image.YCbCrSubsampleRatio411, image.YCbCrSubsampleRatio410,
	} {
		makers["YCbCr "+ratio.String()] = func() image.Image {
			m := image.NewYCbCr(full, ratio)
			for i := range m.Y {
				m.Y[i] = byte(11 * i)
			}
			for i := range m.Cb {
				m.Cb[i], m.Cr[i] = byte(13*i+40), byte(200-17*i)
			}
			return m.SubImage(sub)
		}
	}
	for name, mk := range makers {
		for o := 1; o <= 8; o++ {
			t.Run(fmt.Sprintf("%s/%d", name, o), func(t *testing.T) {
				src := mk()
				got := orient(src, o)
				if o == 1 && got != src {
					t.Fatal("orientation 1 made a copy")
				}
				want := uprightGrids[o]
				if b := got.Bounds(); b.Dx() != len(want[0]) || b.Dy() != len(want) {
					t.Fatalf("bounds %v, want %dx%d", b, len(want[0]), len(want))
				}
				if o > 1 && fmt.Sprintf("%T", got) != fmt.Sprintf("%T", src) && fmt.Sprintf("%T", got) != "*image.RGBA64" {
					t.Errorf("orient made a %T of a %T", got, src)
				}
				b, sb := got.Bounds(), src.Bounds()
				for y, row := range want {
					for x, idx := range row {
						wantC := color.RGBA64Model.Convert(src.At(sb.Min.X+idx%3, sb.Min.Y+idx/3))
						if gotC := color.RGBA64Model.Convert(got.At(b.Min.X+x, b.Min.Y+y)); gotC != wantC {
							t.Errorf("(%d,%d) = %v, want source pixel %d = %v", x, y, gotC, idx, wantC)
						}
					}
				}
			})
		}
	}
	for _, o := range []int{0, -1, 9, 1 << 20} {
		src := makers["Gray"]()
		if got := orient(src, o); got != src {
			t.Errorf("orientation %d changed the image", o)
		}
	}
}

// TestPredictEXIFOrientation sends a W×H JPEG whose EXIF says to turn it 90°
// clockwise: browsers show it H×W, and the mask must be H×W too.
func TestPredictEXIFOrientation(t *testing.T) {
	ts := startServer(t, Config{MaxWait: 1}, tinyModel(t, 16, 1, "v1"), nil)
	const w, h = 37, 23
	jpg := jpegBytes(t, w, h)
	for _, tt := range []struct {
		name         string
		data         []byte
		maskW, maskH int
	}{
		{"orientation 6", withSegments(jpg, exifAPP1(orientationTIFF("MM", 6))), h, w},
		{"orientation 3", withSegments(jpg, exifAPP1(orientationTIFF("II", 3))), w, h},
		{"corrupt EXIF", withSegments(jpg, malformedEXIF()["IFD offset huge"]), w, h},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, ts.ts.Client(), http.MethodPost, ts.predictURL(), "image/jpeg", "image/png", tt.data)
			checkPNGPrediction(t, r, tt.maskW, tt.maskH)
		})
	}
}
