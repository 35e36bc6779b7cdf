package dataset

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func encodeJPEG(t testing.TB, img image.Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 95}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func encodePNG(t testing.TB, img image.Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// solidRGB is a w×h image of one colour.
func solidRGB(w, h int, c color.RGBA) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for p := 0; p < len(img.Pix); p += 4 {
		img.Pix[p], img.Pix[p+1], img.Pix[p+2], img.Pix[p+3] = c.R, c.G, c.B, 255
	}
	return img
}

// halfMask is a w×h gray mask with value left in the left half and right
// in the right half.
func halfMask(w, h int, left, right byte) *image.Gray {
	m := image.NewGray(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			if x < w/2 {
				m.Pix[y*m.Stride+x] = left
			} else {
				m.Pix[y*m.Stride+x] = right
			}
		}
	}
	return m
}

// petTree builds a small Oxford-IIIT Pet tree: an RGB JPEG, a grayscale
// JPEG, a PNG named .jpg, trimaps with values 1..3, AppleDouble dotfiles and
// a .mat file, as the real download has.
func petTree(t testing.TB) string {
	root := t.TempDir()
	img := filepath.Join(root, "images")
	tri := filepath.Join(root, "annotations", "trimaps")
	writeFile(t, filepath.Join(img, "Abyssinian_1.jpg"), encodeJPEG(t, solidRGB(40, 30, color.RGBA{200, 30, 30, 255})))
	gray := image.NewGray(image.Rect(0, 0, 40, 30))
	for i := range gray.Pix {
		gray.Pix[i] = 100
	}
	writeFile(t, filepath.Join(img, "beagle_2.jpg"), encodeJPEG(t, gray))
	writeFile(t, filepath.Join(img, "Egyptian_Mau_3.jpg"), encodePNG(t, solidRGB(40, 30, color.RGBA{10, 250, 60, 255})))
	writeFile(t, filepath.Join(img, "Abyssinian_101.mat"), []byte("MATLAB 5.0 MAT-file"))
	writeFile(t, filepath.Join(img, "._Abyssinian_1.jpg"), []byte{0, 5, 22, 7})
	for _, id := range []string{"Abyssinian_1", "beagle_2", "Egyptian_Mau_3"} {
		writeFile(t, filepath.Join(tri, id+".png"), encodePNG(t, halfMask(40, 30, 1, 2)))
		writeFile(t, filepath.Join(tri, "._"+id+".png"), []byte{0, 5, 22, 7})
	}
	// A border band (4 columns, so it survives resizing) in one trimap.
	m := halfMask(40, 30, 1, 2)
	for y := range 30 {
		for x := 19; x < 23; x++ {
			m.Pix[y*m.Stride+x] = 3
		}
	}
	writeFile(t, filepath.Join(tri, "Abyssinian_1.png"), encodePNG(t, m))
	writeFile(t, filepath.Join(root, "annotations", "list.txt"), []byte("#"))
	return root
}

func ingestInto(s *Store, name string, cfg IngestConfig) (Manifest, bool, error) {
	return s.Register(context.Background(), name, cfg.Meta(), func(yield func(Example) error) (Provenance, error) {
		return Ingest(context.Background(), cfg, yield)
	})
}

func near(a, b byte, tol int) bool { d := int(a) - int(b); return d <= tol && d >= -tol }

func TestIngestPetLayout(t *testing.T) {
	root := petTree(t)
	s := openTestStore(t)
	var progress []int
	cfg := IngestConfig{Layout: LayoutOxfordPet, Root: root, Size: 16, ValFraction: -1, Workers: 2,
		Progress: func(done, total int) { progress = append(progress, done*10+total) }}
	m, created, err := ingestInto(s, "pets", cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !created || m.Examples != 3 || m.Counts[SplitTrain] != 3 || len(m.Skipped) != 0 {
		t.Fatalf("manifest %+v", m)
	}
	if !slices.Equal(progress, []int{13, 23, 33}) {
		t.Fatalf("progress calls %v", progress)
	}
	if m.Source.Layout != LayoutOxfordPet || !filepath.IsAbs(m.Source.Path) || !slices.Equal(m.Meta.Classes, TrimapClasses()) {
		t.Fatalf("source/meta %+v %+v", m.Source, m.Meta)
	}
	var ignored []string
	for _, ig := range m.Ignored {
		ignored = append(ignored, filepath.Base(ig.Path))
	}
	slices.Sort(ignored)
	want := []string{"._Abyssinian_1.jpg", "._Abyssinian_1.png", "._Egyptian_Mau_3.png", "._beagle_2.png", "Abyssinian_101.mat"}
	if !slices.Equal(ignored, want) {
		t.Fatalf("ignored %v, want %v", ignored, want)
	}

	v, _, err := s.Open("pets")
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	wantColour := map[string][3]byte{"Abyssinian_1": {200, 30, 30}, "Egyptian_Mau_3": {10, 250, 60}, "beagle_2": {100, 100, 100}}
	var ids []string
	for i := range v.Len() {
		e := v.Example(i)
		ids = append(ids, e.ID)
		c := wantColour[e.ID]
		for p := 0; p < len(e.Image); p += 3 {
			if !near(e.Image[p], c[0], 6) || !near(e.Image[p+1], c[1], 6) || !near(e.Image[p+2], c[2], 6) {
				t.Fatalf("%s pixel %d = %v, want about %v", e.ID, p/3, e.Image[p:p+3], c)
			}
		}
		// Trimap 1 (pet) on the left -> class 0, 2 (background) -> 1.
		if e.Mask[0] != ClassPet || e.Mask[15] != ClassBackground {
			t.Fatalf("%s mask row 0 = %v", e.ID, e.Mask[:16])
		}
		hasBorder := bytes.IndexByte(e.Mask, ClassBorder) >= 0
		if hasBorder != (e.ID == "Abyssinian_1") {
			t.Fatalf("%s: border class present = %v", e.ID, hasBorder)
		}
	}
	if !slices.Equal(ids, []string{"Abyssinian_1", "Egyptian_Mau_3", "beagle_2"}) {
		t.Fatalf("ids %v, want byte order", ids)
	}
}

// folderTree writes n good 24×20 image/mask pairs into images/ and masks/.
func folderTree(t testing.TB, n int) (imagesDir, masksDir string) {
	root := t.TempDir()
	imagesDir, masksDir = filepath.Join(root, "images"), filepath.Join(root, "masks")
	for i := range n {
		id := string(rune('a' + i))
		writeFile(t, filepath.Join(imagesDir, id+".jpg"), encodeJPEG(t, solidRGB(24, 20, color.RGBA{byte(40 * i), 90, 200, 255})))
		writeFile(t, filepath.Join(masksDir, id+".png"), encodePNG(t, halfMask(24, 20, 0, 1)))
	}
	return imagesDir, masksDir
}

func TestIngestBadFiles(t *testing.T) {
	good := encodeJPEG(t, solidRGB(24, 20, color.RGBA{1, 2, 3, 255}))
	goodPNG := encodePNG(t, halfMask(24, 20, 0, 2))
	colourMask := solidRGB(24, 20, color.RGBA{255, 0, 0, 255})
	tests := []struct {
		name   string
		files  map[string][]byte // relative to the tree root
		bad    string            // the file reported
		reason string
	}{
		{"truncated jpeg", map[string][]byte{"images/x.jpg": good[:len(good)/2], "masks/x.png": goodPNG}, "images/x.jpg", "undecodable or truncated jpeg image"},
		{"not an image", map[string][]byte{"images/x.jpg": []byte("<html>not found</html>"), "masks/x.png": goodPNG}, "images/x.jpg", "not a JPEG, PNG or GIF image"},
		{"mask missing", map[string][]byte{"images/x.jpg": good}, "images/x.jpg", "no mask: want {root}/masks/x.png"},
		{"mask size", map[string][]byte{"images/x.jpg": good, "masks/x.png": encodePNG(t, halfMask(20, 24, 0, 1))}, "masks/x.png", "mask is 20x24 but image"},
		{"mask values", map[string][]byte{"images/x.jpg": good, "masks/x.png": encodePNG(t, halfMask(24, 20, 0, 7))}, "masks/x.png", "mask has 240 pixel(s) outside the classes, first value 7 at (12,0); want 0..2 for 3 classes"},
		{"truncated mask", map[string][]byte{"images/x.jpg": good, "masks/x.png": goodPNG[:40]}, "masks/x.png", "mask: undecodable or truncated png image"},
		{"colour mask", map[string][]byte{"images/x.jpg": good, "masks/x.png": encodePNG(t, colourMask)}, "masks/x.png", "mask is a colour image"},
		{"duplicate id", map[string][]byte{"images/a.png": encodePNG(t, solidRGB(24, 20, color.RGBA{}))}, "images/a.jpg", `duplicate id "a"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			imagesDir, masksDir := folderTree(t, 3)
			root := filepath.Dir(imagesDir)
			for rel, data := range tt.files {
				writeFile(t, filepath.Join(root, rel), data)
			}
			badPath := filepath.Join(root, tt.bad)
			reason := strings.ReplaceAll(tt.reason, "{root}", root)
			s := openTestStore(t)
			before := storeFiles(t, s)
			cfg := IngestConfig{Layout: LayoutFolders, ImagesDir: imagesDir, MasksDir: masksDir, Size: 8}

			_, _, err := ingestInto(s, "ds", cfg)
			var bfe *BadFilesError
			if !errors.Is(err, ErrBadInput) || !errors.As(err, &bfe) {
				t.Fatalf("error %v, want a BadFilesError", err)
			}
			if !strings.Contains(err.Error(), badPath+": "+reason) {
				t.Fatalf("error %q does not name %s with %q", err, badPath, reason)
			}
			if after := storeFiles(t, s); !slices.Equal(before, after) {
				t.Fatalf("store changed: %v -> %v", before, after)
			}

			cfg.SkipBad = true
			m, created, err := ingestInto(s, "ds", cfg)
			if err != nil || !created {
				t.Fatalf("with SkipBad: %v", err)
			}
			wantN := 3
			if tt.name == "duplicate id" {
				wantN = 2 // both a.jpg and a.png are left out
			}
			if m.Examples != wantN {
				t.Fatalf("%d examples, want %d", m.Examples, wantN)
			}
			found := false
			for _, sk := range m.Skipped {
				found = found || (sk.Path == badPath && strings.Contains(sk.Reason, reason))
			}
			if !found {
				t.Fatalf("manifest skipped %v lacks %s", m.Skipped, badPath)
			}
		})
	}
}

func TestIngestListsAllBadFiles(t *testing.T) {
	imagesDir, masksDir := folderTree(t, 4)
	writeFile(t, filepath.Join(imagesDir, "b.jpg"), []byte("junk"))
	os.Remove(filepath.Join(masksDir, "c.png"))
	writeFile(t, filepath.Join(masksDir, "d.png"), encodePNG(t, halfMask(24, 20, 9, 9)))
	_, err := Ingest(context.Background(), IngestConfig{Layout: LayoutFolders, ImagesDir: imagesDir, MasksDir: masksDir, Size: 8}, func(Example) error { return nil })
	var bfe *BadFilesError
	if !errors.As(err, &bfe) || len(bfe.Files) != 3 {
		t.Fatalf("error %v, want 3 bad files", err)
	}
	for i, want := range []string{filepath.Join(imagesDir, "b.jpg"), filepath.Join(imagesDir, "c.jpg"), filepath.Join(masksDir, "d.png")} {
		if bfe.Files[i].Path != want {
			t.Errorf("bad file %d is %s, want %s", i, bfe.Files[i].Path, want)
		}
	}
}

func TestIngestVersioning(t *testing.T) {
	imagesDir, masksDir := folderTree(t, 5)
	s := openTestStore(t)
	cfg := IngestConfig{Layout: LayoutFolders, ImagesDir: imagesDir, MasksDir: masksDir, Size: 8, Classes: []string{"fg", "bg", "edge"}, Workers: 1}
	m1, created, err := ingestInto(s, "folder", cfg)
	if err != nil || !created {
		t.Fatal(err)
	}
	cfg.Workers = 4
	again, created, err := ingestInto(s, "folder", cfg)
	if err != nil || created || again.ID != m1.ID {
		t.Fatalf("re-ingest: created=%v id %s vs %s, %v", created, ShortID(again.ID), ShortID(m1.ID), err)
	}
	writeFile(t, filepath.Join(masksDir, "c.png"), encodePNG(t, halfMask(24, 20, 2, 1)))
	m2, created, err := ingestInto(s, "folder", cfg)
	if err != nil || !created || m2.Seq != 2 || m2.Parent != m1.ID {
		t.Fatalf("changed folder: created=%v %+v %v", created, m2, err)
	}
	if !slices.Equal(m2.Meta.Classes, []string{"fg", "bg", "edge"}) {
		t.Fatalf("classes %v", m2.Meta.Classes)
	}
}

func TestIngestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		cfg  IngestConfig
		want string
	}{
		{IngestConfig{Layout: "voc"}, `layout "voc"`},
		{IngestConfig{Layout: LayoutOxfordPet}, "needs a root"},
		{IngestConfig{Layout: LayoutFolders, ImagesDir: dir}, "needs an images directory and a masks directory"},
		{IngestConfig{Layout: LayoutOxfordPet, Root: dir, Classes: []string{"a", "b"}}, "3 classes"},
		{IngestConfig{Layout: LayoutFolders, ImagesDir: dir, MasksDir: dir, Classes: []string{"a", "a"}}, "distinct"},
		{IngestConfig{Layout: LayoutFolders, ImagesDir: dir, MasksDir: dir, Size: 5}, "size 5"},
		{IngestConfig{Layout: LayoutOxfordPet, Root: filepath.Join(dir, "nope")}, "does not exist"},
		{IngestConfig{Layout: LayoutFolders, ImagesDir: dir, MasksDir: dir}, "no .jpg, .jpeg or .png images in " + dir},
	}
	for _, tt := range tests {
		_, err := Ingest(context.Background(), tt.cfg, func(Example) error { return nil })
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: error %v, want %q", tt.cfg, err, tt.want)
		}
	}
}

func TestResizeRGBConvertsColourModels(t *testing.T) {
	cmyk := image.NewCMYK(image.Rect(0, 0, 4, 4))
	for p := 0; p < len(cmyk.Pix); p += 4 {
		cmyk.Pix[p], cmyk.Pix[p+1], cmyk.Pix[p+2], cmyk.Pix[p+3] = 0, 255, 255, 0 // red
	}
	got := resizeRGB(cmyk, 2)
	for p := 0; p < len(got); p += 3 {
		if got[p] != 255 || got[p+1] != 0 || got[p+2] != 0 {
			t.Fatalf("CMYK red became %v", got[p:p+3])
		}
	}
	pal := image.NewPaletted(image.Rect(0, 0, 4, 4), color.Palette{color.RGBA{0, 0, 255, 255}})
	if got := resizeRGB(pal, 2); got[0] != 0 || got[2] != 255 {
		t.Fatalf("paletted blue became %v", got[:3])
	}
}

// BenchmarkIngest ingests a folder of 200 256×256 JPEG images with PNG
// masks at size 128: decoding and resizing only ("decode"), and through
// Store.Register, which also writes, fsyncs and hashes the version
// ("register").
func BenchmarkIngest(b *testing.B) {
	const n, side = 200, 256
	root := b.TempDir()
	imagesDir, masksDir := filepath.Join(root, "images"), filepath.Join(root, "masks")
	exs := generate(b, ShapesConfig{N: n, Size: side, Seed: 1, Workers: 1})
	for _, e := range exs {
		img := image.NewRGBA(image.Rect(0, 0, side, side))
		for p := range side * side {
			copy(img.Pix[4*p:4*p+3], e.Image[3*p:3*p+3])
			img.Pix[4*p+3] = 255
		}
		mask := image.NewGray(image.Rect(0, 0, side, side))
		copy(mask.Pix, e.Mask)
		writeFile(b, filepath.Join(imagesDir, e.ID+".jpg"), encodeJPEG(b, img))
		writeFile(b, filepath.Join(masksDir, e.ID+".png"), encodePNG(b, mask))
	}
	cfg := IngestConfig{Layout: LayoutFolders, ImagesDir: imagesDir, MasksDir: masksDir, Size: 128}
	b.Run("decode", func(b *testing.B) {
		for b.Loop() {
			if _, err := Ingest(context.Background(), cfg, func(Example) error { return nil }); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "images/s")
	})
	b.Run("register", func(b *testing.B) {
		s := openTestStore(b)
		for b.Loop() {
			if _, _, err := ingestInto(s, "bench", cfg); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "images/s")
	})
}
