package serving

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"io"
	"net/http"

	"golang.org/x/image/draw"
)

// Input errors. Each maps to one HTTP status and error code (see
// errorStatus); the decode path returns only these, wrapped with what was
// wrong.
var (
	// errEmptyBody: the request carried no image bytes.
	errEmptyBody = errors.New("empty body")
	// errUnsupportedType: the bytes are not a PNG or JPEG image.
	errUnsupportedType = errors.New("unsupported media type")
	// errImageTooLarge: the header declares more pixels than MaxPixels.
	errImageTooLarge = errors.New("image too large")
	// errBadImage: a PNG or JPEG that is truncated, corrupt or empty.
	errBadImage = errors.New("bad image")
	// errBodyTooLarge: the body is longer than MaxBodyBytes.
	errBodyTooLarge = errors.New("body too large")
	// errBodyRead: the body could not be read (a malformed chunked
	// encoding, a read timeout); a client that broke off the upload is
	// not answered, and counted as 499.
	errBodyRead = errors.New("reading the body failed")
	// errBadMultipart: a multipart/form-data body that cannot be parsed or
	// holds no image.
	errBadMultipart = errors.New("bad multipart body")
)

// errorStatus is the HTTP status and error code of an input error, or 500
// "internal" for anything else.
func errorStatus(err error) (int, string) {
	switch {
	case errors.Is(err, errEmptyBody):
		return http.StatusBadRequest, "empty_body"
	case errors.Is(err, errUnsupportedType):
		return http.StatusUnsupportedMediaType, "unsupported_media_type"
	case errors.Is(err, errImageTooLarge):
		return http.StatusRequestEntityTooLarge, "image_too_large"
	case errors.Is(err, errBadImage):
		return http.StatusBadRequest, "bad_image"
	case errors.Is(err, errBodyTooLarge):
		return http.StatusRequestEntityTooLarge, "body_too_large"
	case errors.Is(err, errBodyRead):
		return http.StatusBadRequest, "bad_body"
	case errors.Is(err, errBadMultipart):
		return http.StatusBadRequest, "bad_multipart"
	}
	return http.StatusInternalServerError, "internal"
}

// decodeImage decodes a PNG or JPEG held in data. The format is sniffed from
// the bytes (http.DetectContentType), never taken from a header; the
// dimensions are read from the image header and checked against maxPixels
// before any pixel is decoded, so a small file cannot make the server
// allocate a huge canvas. A JPEG is turned upright as its EXIF Orientation
// says (see jpegOrientation), so the image, and the mask sized from it, have
// the geometry browsers show: width and height swap for a quarter turn, the
// pixel count checked against maxPixels does not change. Every error wraps
// one of errEmptyBody, errUnsupportedType, errImageTooLarge or errBadImage.
func decodeImage(data []byte, maxPixels int) (image.Image, error) {
	if len(data) == 0 {
		return nil, fmt.Errorf("%w: send a PNG or JPEG image as the request body", errEmptyBody)
	}
	var (
		decodeConfig func(io.Reader) (image.Config, error)
		decode       func(io.Reader) (image.Image, error)
		format       string
	)
	switch ct := http.DetectContentType(data); ct {
	case "image/png":
		decodeConfig, decode, format = png.DecodeConfig, png.Decode, "PNG"
	case "image/jpeg":
		decodeConfig, decode, format = jpeg.DecodeConfig, jpeg.Decode, "JPEG"
	default:
		return nil, fmt.Errorf("%w: body looks like %s; send a PNG or JPEG image", errUnsupportedType, ct)
	}
	cfg, err := decodeConfig(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%w: %s header: %s", errBadImage, format, describeDecodeError(err))
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return nil, fmt.Errorf("%w: %s header declares a %dx%d image", errBadImage, format, cfg.Width, cfg.Height)
	}
	if px := int64(cfg.Width) * int64(cfg.Height); px > int64(maxPixels) {
		return nil, fmt.Errorf("%w: %s header declares %dx%d = %d pixels, the limit is %d", errImageTooLarge, format, cfg.Width, cfg.Height, px, maxPixels)
	}
	img, err := decode(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %s", errBadImage, format, describeDecodeError(err))
	}
	if b := img.Bounds(); b.Dx() != cfg.Width || b.Dy() != cfg.Height {
		return nil, fmt.Errorf("%w: %s decoded to %dx%d, its header says %dx%d", errBadImage, format, b.Dx(), b.Dy(), cfg.Width, cfg.Height)
	}
	if format == "JPEG" {
		// Browsers show a JPEG turned as its EXIF Orientation says; the
		// mask must match what they show, so the model sees it upright.
		img = orient(img, jpegOrientation(data))
	}
	return img, nil
}

// describeDecodeError names truncation plainly; other decoder errors are
// already descriptive ("png: invalid format: ...").
func describeDecodeError(err error) string {
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return "truncated (unexpected end of data)"
	}
	return err.Error()
}

// toModelInput resamples img to w×h with bilinear filtering
// (golang.org/x/image/draw.BiLinear, as dataset ingest resizes training
// images) and returns interleaved H×W×channels bytes, the layout
// trainer.Predictor.Predict takes. channels is 3 (RGB) or 1 (luma with
// image/color.Gray's weights).
func toModelInput(img image.Image, w, h, channels int) []byte {
	dst := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.BiLinear.Scale(dst, dst.Bounds(), img, img.Bounds(), draw.Src, nil)
	out := make([]byte, w*h*channels)
	for p := range w * h {
		r, g, b := dst.Pix[4*p], dst.Pix[4*p+1], dst.Pix[4*p+2]
		if channels == 1 {
			out[p] = byte((19595*uint32(r) + 38470*uint32(g) + 7471*uint32(b) + 1<<15) >> 16)
			continue
		}
		out[3*p], out[3*p+1], out[3*p+2] = r, g, b
	}
	return out
}
