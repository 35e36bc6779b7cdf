package dataset

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/color"
	_ "image/gif"  // registers the GIF decoder for image.Decode
	_ "image/jpeg" // registers the JPEG decoder for image.Decode
	_ "image/png"  // registers the PNG decoder for image.Decode
	"io/fs"
	"maps"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/image/draw"
)

// Ingest layouts.
const (
	// LayoutOxfordPet is the Oxford-IIIT Pet tree: ROOT/images/*.jpg and
	// ROOT/annotations/trimaps/*.png, trimap values 1 (pet), 2 (background)
	// and 3 (border).
	LayoutOxfordPet = "oxford-pet"
	// LayoutFolders is an images directory and a masks directory whose PNG
	// masks hold class indices directly.
	LayoutFolders = "folders"
)

// DefaultFolderClasses are the class names of the folders layout when none
// are given.
func DefaultFolderClasses() []string { return []string{"object", "background", "border"} }

// ErrBadInput is wrapped by the error Ingest returns when input files are
// bad and SkipBad is off (see BadFilesError).
var ErrBadInput = errors.New("bad input files")

// BadFilesError lists every bad input file Ingest found, each with its path
// and what is wrong with it.
type BadFilesError struct {
	Files []Skipped
}

// Error lists the bad files, one per line.
func (e *BadFilesError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d bad input file(s):", len(e.Files))
	for _, f := range e.Files {
		b.WriteString("\n  ")
		b.WriteString(f.String())
	}
	return b.String()
}

// Unwrap makes errors.Is(err, ErrBadInput) hold.
func (e *BadFilesError) Unwrap() error { return ErrBadInput }

// IngestConfig says what to ingest and how. Zero values mean defaults.
type IngestConfig struct {
	Layout      string   // LayoutOxfordPet or LayoutFolders
	Root        string   // oxford-pet: the directory holding images/ and annotations/
	ImagesDir   string   // folders: the images
	MasksDir    string   // folders: the masks, matched to images by file stem
	Size        int      // images are resized to Size×Size; default 128
	ValFraction float64  // share of ids hashed into the val split; default 0.2, negative for none
	Classes     []string // class names; folders default object,background,border; oxford-pet pet,background,border
	SkipBad     bool     // leave bad files out (recorded in the manifest) instead of failing
	Workers     int      // parallel decoders, default GOMAXPROCS; does not change the output
	// Progress, if set, is called after each image with the number done and
	// the total, from one goroutine.
	Progress func(done, total int)
}

func (c IngestConfig) withDefaults() IngestConfig {
	if c.Size == 0 {
		c.Size = 128
	}
	if c.ValFraction == 0 {
		c.ValFraction = 0.2
	}
	if c.ValFraction < 0 {
		c.ValFraction = 0
	}
	if c.Workers <= 0 {
		c.Workers = runtime.GOMAXPROCS(0)
	}
	if len(c.Classes) == 0 {
		if c.Layout == LayoutOxfordPet {
			c.Classes = TrimapClasses()
		} else {
			c.Classes = DefaultFolderClasses()
		}
	}
	if c.Layout == LayoutOxfordPet {
		c.ImagesDir = filepath.Join(c.Root, "images")
		c.MasksDir = filepath.Join(c.Root, "annotations", "trimaps")
	}
	return c
}

// Validate reports a configuration Ingest cannot run.
func (c IngestConfig) Validate() error {
	switch c.Layout {
	case LayoutOxfordPet:
		if c.Root == "" {
			return errors.New("ingest: the oxford-pet layout needs a root directory")
		}
		if c.ImagesDir != "" || c.MasksDir != "" {
			return errors.New("ingest: the oxford-pet layout takes a root directory, not images and masks directories")
		}
		if len(c.Classes) != 0 && len(c.Classes) != 3 {
			return fmt.Errorf("ingest: oxford-pet trimaps have 3 classes, %d class names given", len(c.Classes))
		}
	case LayoutFolders:
		if c.ImagesDir == "" || c.MasksDir == "" {
			return errors.New("ingest: the folders layout needs an images directory and a masks directory")
		}
		if c.Root != "" {
			return errors.New("ingest: the folders layout takes images and masks directories, not a root")
		}
	default:
		return fmt.Errorf("ingest: layout %q: want %s or %s", c.Layout, LayoutOxfordPet, LayoutFolders)
	}
	c = c.withDefaults()
	switch {
	case c.Size < 8 || c.Size > 4096:
		return fmt.Errorf("ingest: size %d, want 8..4096", c.Size)
	case c.ValFraction >= 1 || math.IsNaN(c.ValFraction):
		return fmt.Errorf("ingest: val fraction %v, want [0, 1)", c.ValFraction)
	}
	seen := map[string]bool{}
	for _, n := range c.Classes {
		if n == "" || seen[n] {
			return fmt.Errorf("ingest: class names %q: want distinct, non-empty names", c.Classes)
		}
		seen[n] = true
	}
	return c.Meta().Validate()
}

// Meta is the geometry of the ingested examples: Size×Size RGB.
func (c IngestConfig) Meta() Meta {
	c = c.withDefaults()
	return Meta{Height: c.Size, Width: c.Size, Channels: 3, Classes: slices.Clone(c.Classes)}
}

// Source describes the ingest for a manifest, with absolute paths.
func (c IngestConfig) Source() Source {
	c = c.withDefaults()
	abs := func(p string) string {
		if a, err := filepath.Abs(p); err == nil {
			return a
		}
		return p
	}
	src := Source{Kind: SourceIngest, Layout: c.Layout, Images: abs(c.ImagesDir), Masks: abs(c.MasksDir), Params: map[string]string{
		"size":         strconv.Itoa(c.Size),
		"val_fraction": strconv.FormatFloat(c.ValFraction, 'g', -1, 64),
		"classes":      strings.Join(c.Classes, ","),
	}}
	if c.Root != "" {
		src.Path = abs(c.Root)
	}
	return src
}

// ingestPair is one image and its mask (empty if none was found).
type ingestPair struct {
	id, image, mask string
}

// ingestResult is what decoding one pair gives: an example or the reasons
// its files are bad.
type ingestResult struct {
	ex  Example
	bad []Skipped
}

// Ingest reads an image-folder dataset and yields its examples in id order
// (id = file stem). Images are decoded by content, whatever their extension
// (JPEG, PNG or GIF; grayscale, CMYK and paletted images are converted to RGB;
// transparency is composited onto black), resized to Size×Size bilinearly
// (aspect ratio is not kept), and masks resized with nearest neighbour.
// Oxford-IIIT Pet trimap values 1, 2, 3 become classes 0, 1, 2; folders
// masks hold class indices. The split is val when the SHA-256 of the id,
// read as a fraction, is below ValFraction, so adding files never moves
// others between splits.
//
// Dotfiles (such as "._Abyssinian_1.png") and files that are not .jpg,
// .jpeg or .png (such as Pet's .mat files) are ignored and reported in
// Provenance.Ignored. Bad files are collected, all of them: undecodable or
// truncated images, files that are not images, images without a mask,
// masks whose size differs from their image's, and masks with values
// outside the classes. Without SkipBad, Ingest still reads every file and
// then returns a *BadFilesError (wrapping ErrBadInput) listing them, and
// the caller must discard what was yielded (Store.Register does); with
// SkipBad the bad examples are left out and listed in Provenance.Skipped.
//
// Decoding runs on cfg.Workers goroutines; the output does not depend on it.
func Ingest(ctx context.Context, cfg IngestConfig, yield func(Example) error) (Provenance, error) {
	if err := cfg.Validate(); err != nil {
		return Provenance{}, err
	}
	cfg = cfg.withDefaults()
	prov := Provenance{Source: cfg.Source()}
	pairs, bad, ignored, err := listPairs(cfg)
	if err != nil {
		return prov, err
	}
	prov.Ignored = ignored
	meta := cfg.Meta()
	err = parallelOrdered(ctx, len(pairs), cfg.Workers,
		func(i int) (ingestResult, error) { return decodePair(cfg, meta, pairs[i]), nil },
		func(i int, r ingestResult) error {
			if cfg.Progress != nil {
				defer cfg.Progress(i+1, len(pairs))
			}
			if len(r.bad) > 0 {
				bad = append(bad, r.bad...)
				return nil
			}
			if len(bad) > 0 && !cfg.SkipBad {
				return nil // this ingest will fail; only collect the errors
			}
			return yield(r.ex)
		})
	if err != nil {
		return prov, err
	}
	slices.SortStableFunc(bad, func(a, b Skipped) int { return strings.Compare(a.Path, b.Path) })
	if len(bad) > 0 && !cfg.SkipBad {
		return prov, &BadFilesError{Files: bad}
	}
	prov.Skipped = bad
	return prov, nil
}

// isImageExt and isMaskExt say which file extensions (lower case) are read
// as images and as masks.
func isImageExt(ext string) bool { return ext == ".jpg" || ext == ".jpeg" || ext == ".png" }
func isMaskExt(ext string) bool  { return ext == ".png" }

// listPairs lists the image and mask directories and matches files by stem.
func listPairs(cfg IngestConfig) (pairs []ingestPair, bad, ignored []Skipped, err error) {
	images, ig, err := listImageFiles(cfg.ImagesDir, isImageExt)
	if err != nil {
		return nil, nil, nil, err
	}
	ignored = append(ignored, ig...)
	masks, ig, err := listImageFiles(cfg.MasksDir, isMaskExt)
	if err != nil {
		return nil, nil, nil, err
	}
	ignored = append(ignored, ig...)
	if len(images) == 0 {
		return nil, nil, nil, fmt.Errorf("ingest: no .jpg, .jpeg or .png images in %s", cfg.ImagesDir)
	}
	for _, stem := range slices.Sorted(maps.Keys(images)) {
		files := images[stem]
		if len(files) > 1 {
			for _, f := range files {
				bad = append(bad, Skipped{Path: f, Reason: fmt.Sprintf("duplicate id %q: %d images share that name stem (%s)", stem, len(files), strings.Join(baseNames(files), ", "))})
			}
			continue
		}
		ms := masks[stem]
		switch len(ms) {
		case 0:
			bad = append(bad, Skipped{Path: files[0], Reason: fmt.Sprintf("no mask: want %s", filepath.Join(cfg.MasksDir, stem+".png"))})
		case 1:
			pairs = append(pairs, ingestPair{id: stem, image: files[0], mask: ms[0]})
		default:
			bad = append(bad, Skipped{Path: files[0], Reason: fmt.Sprintf("several masks match: %s", strings.Join(ms, ", "))})
		}
	}
	for _, stem := range slices.Sorted(maps.Keys(masks)) {
		if _, ok := images[stem]; !ok {
			for _, m := range masks[stem] {
				ignored = append(ignored, Skipped{Path: m, Reason: "mask without an image"})
			}
		}
	}
	return pairs, bad, ignored, nil
}

func baseNames(paths []string) []string {
	out := make([]string, len(paths))
	for i, p := range paths {
		out[i] = filepath.Base(p)
	}
	return out
}

// listImageFiles maps file stems to the files in dir whose lower-cased
// extension is accepted by ok; everything else is returned as ignored.
func listImageFiles(dir string, ok func(ext string) bool) (map[string][]string, []Skipped, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil, fmt.Errorf("ingest: directory %s does not exist", dir)
		}
		return nil, nil, fmt.Errorf("ingest: %w", err)
	}
	files := map[string][]string{}
	var ignored []Skipped
	for _, e := range ents {
		name := e.Name()
		p := filepath.Join(dir, name)
		ext := strings.ToLower(filepath.Ext(name))
		switch {
		case strings.HasPrefix(name, "."):
			ignored = append(ignored, Skipped{Path: p, Reason: "dotfile"})
		case e.IsDir():
			ignored = append(ignored, Skipped{Path: p, Reason: "directory"})
		case !ok(ext):
			ignored = append(ignored, Skipped{Path: p, Reason: fmt.Sprintf("extension %q is not an image type read here", ext)})
		default:
			stem := strings.TrimSuffix(name, filepath.Ext(name))
			files[stem] = append(files[stem], p)
		}
	}
	return files, ignored, nil
}

// decodePair decodes, checks and resizes one image and its mask.
func decodePair(cfg IngestConfig, meta Meta, p ingestPair) ingestResult {
	var bad []Skipped
	img, err := decodeFile(p.image)
	if err != nil {
		bad = append(bad, Skipped{Path: p.image, Reason: err.Error()})
	}
	mask, err := decodeFile(p.mask)
	if err != nil {
		bad = append(bad, Skipped{Path: p.mask, Reason: "mask: " + err.Error()})
	}
	if len(bad) > 0 {
		return ingestResult{bad: bad}
	}
	ib, mb := img.Bounds(), mask.Bounds()
	if ib.Dx() != mb.Dx() || ib.Dy() != mb.Dy() {
		return ingestResult{bad: []Skipped{{Path: p.mask, Reason: fmt.Sprintf("mask is %dx%d but image %s is %dx%d", mb.Dx(), mb.Dy(), p.image, ib.Dx(), ib.Dy())}}}
	}
	classes, err := maskClasses(mask, cfg.Layout, len(meta.Classes))
	if err != nil {
		return ingestResult{bad: []Skipped{{Path: p.mask, Reason: err.Error()}}}
	}
	ex := Example{ID: p.id, Split: splitOf(p.id, cfg.ValFraction), Image: resizeRGB(img, cfg.Size), Mask: resizeNearest(classes, cfg.Size)}
	return ingestResult{ex: ex}
}

// decodeFile decodes an image by its content (not its extension).
func decodeFile(path string) (image.Image, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	img, format, err := image.Decode(bytes.NewReader(data))
	switch {
	case errors.Is(err, image.ErrFormat):
		return nil, fmt.Errorf("not a JPEG, PNG or GIF image (%d bytes, starts %q)", len(data), data[:min(len(data), 8)])
	case err != nil:
		return nil, fmt.Errorf("undecodable or truncated %s image: %v", format, err)
	}
	if b := img.Bounds(); b.Empty() {
		return nil, fmt.Errorf("%s image is empty (%dx%d)", format, b.Dx(), b.Dy())
	}
	return img, nil
}

// maskClasses turns a decoded mask into class indices (as an image.Gray of
// the same size) and checks them. Paletted masks use the palette index,
// grayscale ones the gray level; colour masks are refused.
func maskClasses(m image.Image, layout string, nclasses int) (*image.Gray, error) {
	b := m.Bounds()
	out := image.NewGray(image.Rect(0, 0, b.Dx(), b.Dy()))
	var value func(x, y int) (int, bool)
	switch mm := m.(type) {
	case *image.Paletted:
		value = func(x, y int) (int, bool) { return int(mm.ColorIndexAt(x, y)), true }
	case *image.Gray:
		value = func(x, y int) (int, bool) { return int(mm.GrayAt(x, y).Y), true }
	case *image.Gray16:
		value = func(x, y int) (int, bool) { return int(mm.Gray16At(x, y).Y), true }
	default:
		value = func(x, y int) (int, bool) {
			r, g, bl, _ := m.At(x, y).RGBA()
			return int(r >> 8), r == g && g == bl
		}
	}
	var bads int
	var first string
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			v, gray := value(x, y)
			if !gray {
				return nil, fmt.Errorf("mask is a colour image (pixel (%d,%d) is %v); want grayscale or paletted class indices", x-b.Min.X, y-b.Min.Y, color.RGBAModel.Convert(m.At(x, y)))
			}
			c := v
			if layout == LayoutOxfordPet {
				c = v - 1 // trimap 1, 2, 3 -> class 0, 1, 2
			}
			if c < 0 || c >= nclasses {
				if bads == 0 {
					first = fmt.Sprintf("value %d at (%d,%d)", v, x-b.Min.X, y-b.Min.Y)
				}
				bads++
				continue
			}
			out.Pix[(y-b.Min.Y)*out.Stride+(x-b.Min.X)] = byte(c)
		}
	}
	if bads > 0 {
		want := fmt.Sprintf("0..%d for %d classes", nclasses-1, nclasses)
		if layout == LayoutOxfordPet {
			want = "trimap values 1, 2, 3"
		}
		return nil, fmt.Errorf("mask has %d pixel(s) outside the classes, first %s; want %s", bads, first, want)
	}
	return out, nil
}

// resizeRGB scales img to size×size with bilinear interpolation and returns
// interleaved RGB bytes.
func resizeRGB(img image.Image, size int) []byte {
	dst := image.NewRGBA(image.Rect(0, 0, size, size))
	draw.BiLinear.Scale(dst, dst.Bounds(), img, img.Bounds(), draw.Src, nil)
	out := make([]byte, size*size*3)
	for p := range size * size {
		copy(out[3*p:3*p+3], dst.Pix[4*p:4*p+3])
	}
	return out
}

// resizeNearest scales a class-index mask to size×size, nearest neighbour.
func resizeNearest(m *image.Gray, size int) []byte {
	dst := image.NewGray(image.Rect(0, 0, size, size))
	draw.NearestNeighbor.Scale(dst, dst.Bounds(), m, m.Bounds(), draw.Src, nil)
	return dst.Pix
}

// splitOf assigns an id to a split by the SHA-256 of the id.
func splitOf(id string, valFraction float64) string {
	sum := sha256.Sum256([]byte(id))
	u := float64(binary.BigEndian.Uint64(sum[:8])>>11) / (1 << 53)
	if u < valFraction {
		return SplitVal
	}
	return SplitTrain
}
