package serving

import (
	"bytes"
	"encoding/binary"
	"image"
)

// jpegOrientation returns the EXIF Orientation (1 to 8) of the JPEG in data,
// or 1 (as stored) when there is none. Phones store pictures unrotated and
// record how to turn them in this tag; browsers and viewers apply it, so the
// server must too for its mask to line up with the image users see. It
// reads the first APP1 "Exif" segment before the scan data, IFD0's tag
// 0x0112 (SHORT, count 1), as browsers do. A missing, truncated or corrupt
// EXIF, or a value out of range, gives 1: the tag is a hint, and the pixels
// decode without it. Every offset is checked against the segment, so no
// input can make it read out of bounds.
func jpegOrientation(data []byte) int {
	if len(data) < 2 || data[0] != 0xFF || data[1] != 0xD8 {
		return 1
	}
	for pos := 2; pos+4 <= len(data); {
		if data[pos] != 0xFF {
			return 1 // not a marker: corrupt header
		}
		marker := data[pos+1]
		switch {
		case marker == 0xFF: // fill byte before a marker
			pos++
			continue
		case marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7): // TEM, RSTn: no length
			pos += 2
			continue
		case marker == 0xDA || marker == 0xD9: // SOS, EOI: no EXIF past here
			return 1
		}
		n := int(binary.BigEndian.Uint16(data[pos+2:]))
		end := pos + 2 + n
		if n < 2 || end > len(data) {
			return 1
		}
		if seg := data[pos+4 : end]; marker == 0xE1 && bytes.HasPrefix(seg, []byte("Exif\x00\x00")) {
			return tiffOrientation(seg[6:])
		}
		pos = end
	}
	return 1
}

// tiffOrientation reads the Orientation tag from IFD0 of the TIFF structure
// in an EXIF segment; see jpegOrientation.
func tiffOrientation(tiff []byte) int {
	if len(tiff) < 8 {
		return 1
	}
	var bo binary.ByteOrder
	switch string(tiff[:2]) {
	case "II":
		bo = binary.LittleEndian
	case "MM":
		bo = binary.BigEndian
	default:
		return 1
	}
	if bo.Uint16(tiff[2:]) != 42 {
		return 1
	}
	// len(tiff) < 64 KiB (one JPEG segment), so these int conversions of
	// bounded values cannot overflow.
	off := bo.Uint32(tiff[4:])
	if uint64(off)+2 > uint64(len(tiff)) {
		return 1
	}
	ifd := int(off)
	count := int(bo.Uint16(tiff[ifd:]))
	for i := range count {
		e := ifd + 2 + 12*i
		if e+12 > len(tiff) {
			return 1 // the entry count runs past the segment
		}
		if bo.Uint16(tiff[e:]) != 0x0112 {
			continue
		}
		const typeShort = 3
		if bo.Uint16(tiff[e+2:]) != typeShort || bo.Uint32(tiff[e+4:]) != 1 {
			return 1
		}
		// A single SHORT sits in the first two bytes of the value field.
		if v := int(bo.Uint16(tiff[e+8:])); v >= 1 && v <= 8 {
			return v
		}
		return 1
	}
	return 1
}

// orient returns img turned upright for EXIF orientation o (2 to 8: mirror,
// rotate 180, flip, transpose, rotate 90 clockwise, transverse, rotate 270
// clockwise); for any other o it returns img unchanged. The result is a new
// image with its origin at (0, 0), width and height swapped for 5 to 8,
// and of the same kind as img where jpeg.Decode makes it (Gray, CMYK; a
// YCbCr becomes 4:4:4, as a transposed subsampling may not exist), so it
// takes at most one more copy of the pixels (a 4:2:0 YCbCr, 1.5 bytes per
// pixel, becomes 3).
func orient(img image.Image, o int) image.Image {
	if o < 2 || o > 8 {
		return img
	}
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	dw, dh := w, h
	if o >= 5 {
		dw, dh = h, w
	}
	// The destination pixel (x, y) is the source pixel (relative to b.Min)
	// (x0 + x*xx + y*yx, y0 + x*xy + y*yy).
	var x0, y0, xx, xy, yx, yy int
	switch o {
	case 2: // mirror: (w-1-x, y)
		x0, xx, yy = w-1, -1, 1
	case 3: // rotate 180: (w-1-x, h-1-y)
		x0, y0, xx, yy = w-1, h-1, -1, -1
	case 4: // flip: (x, h-1-y)
		y0, xx, yy = h-1, 1, -1
	case 5: // transpose: (y, x)
		xy, yx = 1, 1
	case 6: // rotate 90 clockwise: (y, h-1-x)
		y0, xy, yx = h-1, -1, 1
	case 7: // transverse: (w-1-y, h-1-x)
		x0, y0, xy, yx = w-1, h-1, -1, -1
	case 8: // rotate 270 clockwise: (w-1-y, x)
		x0, xy, yx = w-1, 1, -1
	}
	r := image.Rect(0, 0, dw, dh)
	// remap copies a plane of bpp-byte pixels with the given stride whose
	// source pixel (x0, y0) is at start.
	remap := func(dst []byte, dstStride int, src []byte, start, srcStride, bpp int) {
		xs, ys := xx*bpp+xy*srcStride, yx*bpp+yy*srcStride
		for y := range dh {
			si, row := start+y*ys, dst[y*dstStride:y*dstStride+dw*bpp]
			for di := 0; di < len(row); di += bpp {
				copy(row[di:di+bpp], src[si:si+bpp])
				si += xs
			}
		}
	}
	sx0, sy0 := b.Min.X+x0, b.Min.Y+y0
	switch s := img.(type) {
	case *image.Gray:
		d := image.NewGray(r)
		remap(d.Pix, d.Stride, s.Pix, s.PixOffset(sx0, sy0), s.Stride, 1)
		return d
	case *image.CMYK:
		d := image.NewCMYK(r)
		remap(d.Pix, d.Stride, s.Pix, s.PixOffset(sx0, sy0), s.Stride, 4)
		return d
	case *image.YCbCr:
		d := image.NewYCbCr(r, image.YCbCrSubsampleRatio444)
		remap(d.Y, d.YStride, s.Y, s.YOffset(sx0, sy0), s.YStride, 1)
		for y := range dh {
			for x := range dw {
				ci := s.COffset(sx0+x*xx+y*yx, sy0+x*xy+y*yy)
				di := y*d.CStride + x
				d.Cb[di], d.Cr[di] = s.Cb[ci], s.Cr[ci]
			}
		}
		return d
	}
	d := image.NewRGBA64(r)
	for y := range dh {
		for x := range dw {
			d.Set(x, y, img.At(sx0+x*xx+y*yx, sy0+x*xy+y*yy))
		}
	}
	return d
}
