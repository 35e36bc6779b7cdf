package dataset

import (
	"context"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
)

// ExportConfig says which examples of a version ExportPetLayout writes.
type ExportConfig struct {
	// Split limits the export to one split; empty exports every example.
	Split string
	// Limit caps the number of examples written; 0 means no cap.
	Limit int
	// JPEGQuality is the quality of the written images (1..100); 0 means 95.
	JPEGQuality int
}

// ExportPetLayout writes examples of v under dir in the Oxford-IIIT Pet
// layout that Ingest reads: images/<id>.jpg (JPEG) and
// annotations/trimaps/<id>.png (8-bit grey, class index + 1, as Pet trimaps
// store pet=1, background=2, border=3). It lets a user look at a version
// with ordinary tools, hand it to another framework, or re-ingest it. Files
// are written in place; dir is created if missing. It returns the number of
// examples written. JPEG is lossy, so re-ingesting an export yields a new
// version id, not the original.
func ExportPetLayout(ctx context.Context, v *Version, dir string, cfg ExportConfig) (int, error) {
	m := v.Meta()
	if len(m.Classes) > 254 {
		return 0, fmt.Errorf("export: %d classes do not fit a trimap's class+1 encoding", len(m.Classes))
	}
	q := cfg.JPEGQuality
	if q == 0 {
		q = 95
	}
	if q < 1 || q > 100 {
		return 0, fmt.Errorf("export: JPEG quality %d out of 1..100", q)
	}
	imgDir := filepath.Join(dir, "images")
	maskDir := filepath.Join(dir, "annotations", "trimaps")
	for _, d := range []string{imgDir, maskDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return 0, fmt.Errorf("export: %w", err)
		}
	}
	rows := make([]int, 0, v.Len())
	if cfg.Split != "" {
		if cfg.Split != SplitTrain && cfg.Split != SplitVal {
			return 0, fmt.Errorf("export: split %q (want %q or %q)", cfg.Split, SplitTrain, SplitVal)
		}
		rows = append(rows, v.SplitIndices(cfg.Split)...)
	} else {
		for i := 0; i < v.Len(); i++ {
			rows = append(rows, i)
		}
	}
	if cfg.Limit > 0 && len(rows) > cfg.Limit {
		rows = rows[:cfg.Limit]
	}
	rect := image.Rect(0, 0, m.Width, m.Height)
	mask := image.NewGray(rect)
	for n, i := range rows {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		e := v.Example(i)
		var img image.Image
		if m.Channels == 1 {
			img = &image.Gray{Pix: e.Image, Stride: m.Width, Rect: rect}
		} else {
			rgba := image.NewRGBA(rect)
			for p := 0; p < m.Width*m.Height; p++ {
				copy(rgba.Pix[4*p:4*p+3], e.Image[3*p:3*p+3])
				rgba.Pix[4*p+3] = 0xff
			}
			img = rgba
		}
		for p, c := range e.Mask {
			mask.Pix[p] = c + 1
		}
		if err := writeImageFile(filepath.Join(imgDir, e.ID+".jpg"), func(f *os.File) error {
			return jpeg.Encode(f, img, &jpeg.Options{Quality: q})
		}); err != nil {
			return n, err
		}
		if err := writeImageFile(filepath.Join(maskDir, e.ID+".png"), func(f *os.File) error {
			return png.Encode(f, mask)
		}); err != nil {
			return n, err
		}
	}
	return len(rows), nil
}

func writeImageFile(path string, encode func(*os.File) error) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if err := encode(f); err != nil {
		f.Close()
		return fmt.Errorf("export %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("export %s: %w", path, err)
	}
	return nil
}
