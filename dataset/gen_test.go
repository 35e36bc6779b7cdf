package dataset

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

func generate(t testing.TB, cfg ShapesConfig) []Example {
	t.Helper()
	var out []Example
	if err := GenerateShapes(context.Background(), cfg, func(e Example) error {
		out = append(out, e)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestGenerateShapesDeterministic(t *testing.T) {
	base := ShapesConfig{N: 12, Size: 32, Seed: 7, ValFraction: 0.25}
	a := generate(t, base)
	one := base
	one.Workers = 1
	b := generate(t, one)
	three := base
	three.Workers = 3
	c := generate(t, three)
	if len(a) != 12 {
		t.Fatalf("got %d examples, want 12", len(a))
	}
	meta := base.Meta()
	val, pet := 0, 0
	for i := range a {
		for _, o := range []Example{b[i], c[i]} {
			if a[i].ID != o.ID || a[i].Split != o.Split || !bytes.Equal(a[i].Image, o.Image) || !bytes.Equal(a[i].Mask, o.Mask) {
				t.Fatalf("example %d differs between worker counts", i)
			}
		}
		if err := a[i].Validate(meta); err != nil {
			t.Fatal(err)
		}
		if i > 0 && a[i].ID <= a[i-1].ID {
			t.Fatalf("ids not ascending: %s after %s", a[i].ID, a[i-1].ID)
		}
		if a[i].Split == SplitVal {
			val++
		}
		var hist [3]int
		for _, v := range a[i].Mask {
			hist[v]++
		}
		// At 32×32 a small object can be all border band.
		if hist[ClassBorder] == 0 || hist[ClassBackground] == 0 {
			t.Fatalf("example %s has no object or no background: histogram %v", a[i].ID, hist)
		}
		pet += hist[ClassPet]
	}
	if pet == 0 {
		t.Fatal("no example has object pixels inside the border band")
	}
	if val != 3 {
		t.Fatalf("%d val examples, want round(12*0.25)=3", val)
	}
	if a[0].ID != "shapes-000000" {
		t.Fatalf("first id %q", a[0].ID)
	}

	other := base
	other.Seed = 8
	d := generate(t, other)
	if bytes.Equal(a[0].Image, d[0].Image) || bytes.Equal(a[0].Mask, d[0].Mask) {
		t.Fatal("seeds 7 and 8 generated the same first example")
	}
	if bytes.Equal(a[0].Image, a[1].Image) {
		t.Fatal("examples 0 and 1 are identical")
	}
}

func TestGenerateShapesBadConfig(t *testing.T) {
	for _, cfg := range []ShapesConfig{{N: 0}, {N: 1, Size: 8}, {N: 1, ValFraction: 1}} {
		err := GenerateShapes(context.Background(), cfg, func(Example) error { return nil })
		if err == nil {
			t.Errorf("%+v: no error", cfg)
		}
	}
}

func TestGenerateShapesStopsOnYieldError(t *testing.T) {
	stop := errors.New("stop")
	n := 0
	err := GenerateShapes(context.Background(), ShapesConfig{N: 50, Size: 16}, func(Example) error {
		n++
		if n == 5 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 5 {
		t.Fatalf("err=%v after %d yields, want stop after 5", err, n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := GenerateShapes(ctx, ShapesConfig{N: 50, Size: 16}, func(Example) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled context: err=%v", err)
	}
}

// pixelScores fits a per-pixel linear least-squares classifier (one-hot
// targets, argmax prediction) on the features of train and scores it on
// test: pixel accuracy and mean IoU over the three classes.
func pixelScores(train, test []Example, size int, features func(e Example, size int) [][]float64) (acc, miou float64) {
	var xtx [][]float64
	var xty [][3]float64
	for _, e := range train {
		f := features(e, size)
		if xtx == nil {
			d := len(f[0])
			xtx = make([][]float64, d)
			for i := range xtx {
				xtx[i] = make([]float64, d)
			}
			xty = make([][3]float64, d)
		}
		for p, x := range f {
			for i := range x {
				for j := range x {
					xtx[i][j] += x[i] * x[j]
				}
				xty[i][e.Mask[p]] += x[i]
			}
		}
	}
	w := solve(xtx, xty)
	var inter, union [3]float64
	correct, total := 0, 0
	for _, e := range test {
		for p, x := range features(e, size) {
			best, bestv := 0, math.Inf(-1)
			for c := range 3 {
				v := 0.0
				for i := range x {
					v += w[i][c] * x[i]
				}
				if v > bestv {
					best, bestv = c, v
				}
			}
			truth := int(e.Mask[p])
			total++
			if best == truth {
				correct++
				inter[truth]++
				union[truth]++
			} else {
				union[truth]++
				union[best]++
			}
		}
	}
	for c := range 3 {
		if union[c] > 0 {
			miou += inter[c] / union[c] / 3
		}
	}
	return float64(correct) / float64(total), miou
}

// solve solves (A + ridge) W = B by Gauss-Jordan elimination.
func solve(a [][]float64, b [][3]float64) [][3]float64 {
	d := len(a)
	m := make([][]float64, d)
	for i := range m {
		m[i] = append(append([]float64{}, a[i]...), b[i][0], b[i][1], b[i][2])
		m[i][i] += 1e-6 * (a[i][i] + 1)
	}
	for col := range d {
		piv := col
		for r := col + 1; r < d; r++ {
			if math.Abs(m[r][col]) > math.Abs(m[piv][col]) {
				piv = r
			}
		}
		m[col], m[piv] = m[piv], m[col]
		for r := range d {
			if r == col {
				continue
			}
			f := m[r][col] / m[col][col]
			for k := col; k < d+3; k++ {
				m[r][k] -= f * m[col][k]
			}
		}
	}
	w := make([][3]float64, d)
	for i := range w {
		for c := range 3 {
			w[i][c] = m[i][d+c] / m[i][i]
		}
	}
	return w
}

func rgbFeatures(e Example, size int) [][]float64 {
	out := make([][]float64, size*size)
	for p := range out {
		out[p] = []float64{float64(e.Image[3*p]) / 255, float64(e.Image[3*p+1]) / 255, float64(e.Image[3*p+2]) / 255, 1}
	}
	return out
}

// textureFeatures adds what a 3×3 convolution followed by a nonlinearity
// can compute: the local contrast of luminance in 3×3 and 5×5 windows.
func textureFeatures(e Example, size int) [][]float64 {
	lum := make([]float64, size*size)
	for p := range lum {
		lum[p] = (float64(e.Image[3*p]) + float64(e.Image[3*p+1]) + float64(e.Image[3*p+2])) / 765
	}
	localStd := func(x, y, r int) float64 {
		var s, s2, n float64
		for dy := -r; dy <= r; dy++ {
			for dx := -r; dx <= r; dx++ {
				xx, yy := min(max(x+dx, 0), size-1), min(max(y+dy, 0), size-1)
				v := lum[yy*size+xx]
				s += v
				s2 += v * v
				n++
			}
		}
		return math.Sqrt(max(0, s2/n-(s/n)*(s/n)))
	}
	out := rgbFeatures(e, size)
	for p := range out {
		x, y := p%size, p/size
		s1, s2 := localStd(x, y, 1), localStd(x, y, 2)
		out[p] = append(out[p], s1, s2, s1*s1, s2*s2)
	}
	return out
}

// TestShapesNotSeparableByColour shows that a per-pixel linear classifier
// on RGB does barely better than always answering "background", while the
// same classifier separates a variant whose objects have their own colour
// (the trivially separable case), and local texture contrast, which a conv
// net computes in its first layer, recovers much of the object.
func TestShapesNotSeparableByColour(t *testing.T) {
	const size = 64
	exs := generate(t, ShapesConfig{N: 40, Size: size, Seed: 3})
	train, test := exs[:30], exs[30:]

	bgPixels, all := 0, 0
	for _, e := range test {
		for _, v := range e.Mask {
			if v == ClassBackground {
				bgPixels++
			}
			all++
		}
	}
	majority := float64(bgPixels) / float64(all)

	acc, miou := pixelScores(train, test, size, rgbFeatures)
	tacc, tmiou := pixelScores(train, test, size, textureFeatures)

	// Control: recolour object and border pixels with a fixed hue each.
	recolour := func(in []Example) []Example {
		out := make([]Example, len(in))
		for i, e := range in {
			img := bytes.Clone(e.Image)
			for p, v := range e.Mask {
				switch v {
				case ClassPet:
					img[3*p], img[3*p+1], img[3*p+2] = 250, 5, 250
				case ClassBorder:
					img[3*p], img[3*p+1], img[3*p+2] = 5, 250, 250
				}
			}
			out[i] = Example{ID: e.ID, Split: e.Split, Image: img, Mask: e.Mask}
		}
		return out
	}
	cacc, cmiou := pixelScores(recolour(train), recolour(test), size, rgbFeatures)

	t.Logf("majority class: pixel accuracy %.3f, mIoU %.3f", majority, majority/3)
	t.Logf("linear on RGB: pixel accuracy %.3f, mIoU %.3f", acc, miou)
	t.Logf("linear on RGB + local contrast: pixel accuracy %.3f, mIoU %.3f", tacc, tmiou)
	t.Logf("linear on RGB, objects recoloured (separable control): pixel accuracy %.3f, mIoU %.3f", cacc, cmiou)

	if miou > 0.45 || acc > majority+0.03 {
		t.Errorf("colour alone separates the classes too well: accuracy %.3f (majority %.3f), mIoU %.3f", acc, majority, miou)
	}
	if cmiou < 0.8 {
		t.Errorf("control: the classifier failed on separable colours (mIoU %.3f), so the test proves nothing", cmiou)
	}
	if tmiou < miou+0.1 {
		t.Errorf("local texture contrast does not help (mIoU %.3f vs %.3f): objects lack their texture cue", tmiou, miou)
	}
}

// TestWriteShapesPNG writes one generated image and its mask (classes as
// grey levels 0, 127, 254... scaled for visibility) as PNGs for a person to
// look at, when TRAINCTL_SHAPES_PNG_DIR names a directory.
func TestWriteShapesPNG(t *testing.T) {
	dir := os.Getenv("TRAINCTL_SHAPES_PNG_DIR")
	if dir == "" {
		t.Skip("set TRAINCTL_SHAPES_PNG_DIR to write shapes_example.png and shapes_mask.png")
	}
	e := generate(t, ShapesConfig{N: 1, Seed: 1})[0]
	const s = 128
	img := image.NewRGBA(image.Rect(0, 0, s, s))
	mask := image.NewGray(image.Rect(0, 0, s, s))
	for p := range s * s {
		img.Set(p%s, p/s, color.RGBA{e.Image[3*p], e.Image[3*p+1], e.Image[3*p+2], 255})
		mask.Pix[p] = []byte{255, 0, 128}[e.Mask[p]]
	}
	for name, im := range map[string]image.Image{"shapes_example.png": img, "shapes_mask.png": mask} {
		var buf bytes.Buffer
		if err := png.Encode(&buf, im); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// BenchmarkGenerate generates 128×128 shapes examples on all cores.
func BenchmarkGenerate(b *testing.B) {
	const n = 64
	for b.Loop() {
		if err := GenerateShapes(context.Background(), ShapesConfig{N: n, Seed: 1}, func(Example) error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "images/s")
}

// TestGenerateShapesGolden pins the content of a small generated version,
// so a change to the generator (which would silently change every dataset
// generated from a seed) fails here. Floating-point rounding may differ on
// other architectures (fused multiply-add), so it runs on amd64 only.
func TestGenerateShapesGolden(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("golden digest recorded on amd64")
	}
	cfg := ShapesConfig{N: 4, Size: 32, Seed: 1}
	d := NewDigester(cfg.Meta())
	for _, e := range generate(t, cfg) {
		d.Add(e)
	}
	const want = "3a5a47eb8cd16fe9f11924526b16f1b7ed294ac4e04a727e45f77ed568b1fe6e"
	if got := d.Sum(); got != want {
		t.Fatalf("shapes N=4 size=32 seed=1 has id %s, want %s: the generator's output changed", got, want)
	}
}
