package dataset

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
)

// Class indices of the synthetic shapes (and of ingested Oxford-IIIT Pet
// trimaps): the object ("pet"), the background, and the border band around
// the object's outline.
const (
	ClassPet        = 0
	ClassBackground = 1
	ClassBorder     = 2
)

// TrimapClasses returns the class names of the Pet layout and of the shapes
// generator, indexed by ClassPet, ClassBackground and ClassBorder: pet,
// background, border. The slice is the caller's.
func TrimapClasses() []string { return []string{"pet", "background", "border"} }

// ShapesConfig configures GenerateShapes. The zero value of a field means
// its default; N must be set.
type ShapesConfig struct {
	N           int     // number of examples (required)
	Size        int     // image side in pixels, default 128
	Seed        uint64  // everything generated is a function of Seed and the index
	ValFraction float64 // fraction of examples in the val split, default 0.2; negative means none
	Workers     int     // parallel generators, default GOMAXPROCS; does not change the output
}

func (c ShapesConfig) withDefaults() ShapesConfig {
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
	return c
}

// Validate reports a config GenerateShapes cannot honour.
func (c ShapesConfig) Validate() error {
	c = c.withDefaults()
	switch {
	case c.N < 1:
		return fmt.Errorf("shapes: n=%d, want at least 1", c.N)
	case c.Size < 16 || c.Size > 4096:
		return fmt.Errorf("shapes: size=%d, want 16..4096", c.Size)
	case c.ValFraction >= 1 || math.IsNaN(c.ValFraction):
		return fmt.Errorf("shapes: val fraction %v, want [0, 1)", c.ValFraction)
	}
	return nil
}

// Meta is the geometry of the generated examples.
func (c ShapesConfig) Meta() Meta {
	c = c.withDefaults()
	return Meta{Height: c.Size, Width: c.Size, Channels: 3, Classes: TrimapClasses()}
}

// Source describes the generator run for a manifest.
func (c ShapesConfig) Source() Source {
	c = c.withDefaults()
	return Source{Kind: SourceGen, Generator: "shapes", Params: map[string]string{
		"n":            strconv.Itoa(c.N),
		"size":         strconv.Itoa(c.Size),
		"seed":         strconv.FormatUint(c.Seed, 10),
		"val_fraction": strconv.FormatFloat(c.ValFraction, 'g', -1, 64),
	}}
}

// GenerateShapes yields cfg.N synthetic segmentation examples in id order
// ("shapes-000000", ...). Each image shows a textured, noisy background
// (smooth random colour fields, noise, sometimes broad stripes, and
// distractor shapes in the same style) and one or two objects, each a union
// of overlapping ellipses, rotated rectangles, stars and blobs of varied
// size. Objects take their colours from the same distribution as the
// background, so colour alone does not separate them; they differ in shape
// and in carrying a fine periodic texture (a grating or checker of period 2
// to 5 px), and their edges are anti-aliased. The mask has the trimap
// classes: the object, the background, and a border band about 3 px wide
// straddling the outline (1 px outside, 2 px inside).
//
// Example i depends only on (cfg.Seed, i, cfg.Size): it is drawn from a PCG
// generator seeded from those, so generation runs on cfg.Workers goroutines
// and still yields the same examples. The val split is the exact
// round(N*ValFraction) examples whose ids hash lowest with the seed.
func GenerateShapes(ctx context.Context, cfg ShapesConfig, yield func(Example) error) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	cfg = cfg.withDefaults()
	width := max(6, len(strconv.Itoa(cfg.N-1)))
	id := func(i int) string { return fmt.Sprintf("shapes-%0*d", width, i) }
	val := shapesValSet(cfg, id)
	return parallelOrdered(ctx, cfg.N, cfg.Workers,
		func(i int) (Example, error) {
			img, mask := renderShapes(cfg.Seed, i, cfg.Size)
			split := SplitTrain
			if val[i] {
				split = SplitVal
			}
			return Example{ID: id(i), Split: split, Image: img, Mask: mask}, nil
		},
		func(_ int, e Example) error { return yield(e) })
}

// shapesValSet picks the round(N*frac) indices whose (seed, id) hash is
// lowest.
func shapesValSet(cfg ShapesConfig, id func(int) string) []bool {
	nval := int(math.Round(float64(cfg.N) * cfg.ValFraction))
	type ranked struct {
		h uint64
		i int
	}
	r := make([]ranked, cfg.N)
	var seed [8]byte
	binary.BigEndian.PutUint64(seed[:], cfg.Seed)
	for i := range r {
		sum := sha256.Sum256(append(seed[:], id(i)...))
		r[i] = ranked{binary.BigEndian.Uint64(sum[:8]), i}
	}
	slices.SortFunc(r, func(a, b ranked) int { return cmp.Or(cmp.Compare(a.h, b.h), cmp.Compare(a.i, b.i)) })
	val := make([]bool, cfg.N)
	for _, x := range r[:nval] {
		val[x.i] = true
	}
	return val
}

// parallelOrdered computes work(i) for i in [0, n) on up to workers
// goroutines and calls emit in index order, holding at most a few results
// per worker in memory. The first error (from work, emit or ctx) stops it.
func parallelOrdered[T any](ctx context.Context, n, workers int, work func(i int) (T, error), emit func(i int, v T) error) error {
	workers = max(1, workers)
	chunk := max(1, min(n, workers*4))
	results := make([]T, chunk)
	errs := make([]error, chunk)
	for start := 0; start < n; start += chunk {
		if err := ctx.Err(); err != nil {
			return err
		}
		end := min(n, start+chunk)
		var next atomic.Int64
		next.Store(int64(start))
		var wg sync.WaitGroup
		for range min(workers, end-start) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := int(next.Add(1) - 1)
					if i >= end || ctx.Err() != nil {
						return
					}
					results[i-start], errs[i-start] = work(i)
				}
			}()
		}
		wg.Wait()
		if err := ctx.Err(); err != nil {
			return err
		}
		for i := start; i < end; i++ {
			if errs[i-start] != nil {
				return errs[i-start]
			}
			if err := emit(i, results[i-start]); err != nil {
				return err
			}
			var zero T
			results[i-start] = zero
		}
	}
	return nil
}

// genMix is the SplitMix64 finaliser, used to turn (seed, index) into
// well-spread PCG state.
func genMix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// shape is one primitive of an object or distractor, in pixel coordinates.
type shape struct {
	kind           int // shapeEllipse, shapeRect, shapeStar, shapeBlob
	cx, cy         float64
	a, b           float64 // semi-axes (ellipse, rect); outer radius a (star, blob)
	cos, sin       float64 // rotation
	points         int     // star points
	inner          float64 // star inner radius ratio
	harm           [3]float64
	phase          [3]float64
	x0, y0, x1, y1 float64 // bounding box
}

const (
	shapeEllipse = iota
	shapeRect
	shapeStar
	shapeBlob
	numShapeKinds
)

func newShape(r *rand.Rand, cx, cy, size float64) shape {
	th := r.Float64() * 2 * math.Pi
	s := shape{kind: r.IntN(numShapeKinds), cx: cx, cy: cy, cos: math.Cos(th), sin: math.Sin(th)}
	switch s.kind {
	case shapeEllipse, shapeRect:
		s.a = size * (0.6 + 0.6*r.Float64())
		s.b = s.a * (0.35 + 0.65*r.Float64())
	case shapeStar:
		s.a = size * (0.8 + 0.5*r.Float64())
		s.points = 4 + r.IntN(5)
		s.inner = 0.4 + 0.35*r.Float64()
	case shapeBlob:
		s.a = size * (0.6 + 0.5*r.Float64())
		for k := range s.harm {
			s.harm[k] = 0.25 * r.Float64() / float64(k+1)
			s.phase[k] = r.Float64() * 2 * math.Pi
		}
	}
	// Every kind lies within radius 1.5a of its centre.
	rad := 1.5 * max(s.a, s.b)
	s.x0, s.y0, s.x1, s.y1 = cx-rad, cy-rad, cx+rad, cy+rad
	return s
}

// contains reports whether point (x, y) is inside the shape.
func (s *shape) contains(x, y float64) bool {
	if x < s.x0 || x > s.x1 || y < s.y0 || y > s.y1 {
		return false
	}
	dx, dy := x-s.cx, y-s.cy
	u := dx*s.cos + dy*s.sin
	v := -dx*s.sin + dy*s.cos
	switch s.kind {
	case shapeEllipse:
		return (u*u)/(s.a*s.a)+(v*v)/(s.b*s.b) <= 1
	case shapeRect:
		return math.Abs(u) <= s.a && math.Abs(v) <= s.b
	case shapeStar:
		r := math.Hypot(u, v)
		if r > s.a {
			return false
		}
		if r < s.a*s.inner*0.5 {
			return true
		}
		// The star's vertices alternate between radius a (even) and
		// a*inner (odd) at angles j*pi/points; test against the edge of
		// the sector the point falls in.
		step := math.Pi / float64(s.points)
		phi := math.Atan2(v, u)
		if phi < 0 {
			phi += 2 * math.Pi
		}
		j := math.Floor(phi / step)
		r0, r1 := s.a, s.a*s.inner
		if int(j)%2 == 1 {
			r0, r1 = r1, r0
		}
		ax, ay := r0*math.Cos(j*step), r0*math.Sin(j*step)
		bx, by := r1*math.Cos((j+1)*step), r1*math.Sin((j+1)*step)
		// Inside when the point is on the centre's side of edge a→b.
		return (bx-ax)*(v-ay)-(by-ay)*(u-ax) >= 0
	default: // shapeBlob: a radius that wobbles smoothly with the angle
		phi := math.Atan2(v, u)
		rr := 1.0
		for k := range s.harm {
			rr += s.harm[k] * math.Sin(float64(k+2)*phi+s.phase[k])
		}
		return u*u+v*v <= s.a*s.a*rr*rr
	}
}

// colourField is a smooth random RGB image: a coarse lattice of random
// colours, bilinearly interpolated. Objects, background and distractors all
// draw their colours from this same process.
func colourField(r *rand.Rand, size int) []float32 {
	g := 2 + r.IntN(3) // lattice cells per side
	lat := make([]float64, (g+1)*(g+1)*3)
	for i := range lat {
		lat[i] = 25 + 205*r.Float64()
	}
	out := make([]float32, size*size*3)
	scale := float64(g) / float64(size)
	for y := range size {
		fy := (float64(y) + 0.5) * scale
		iy := min(int(fy), g-1)
		ty := fy - float64(iy)
		for x := range size {
			fx := (float64(x) + 0.5) * scale
			ix := min(int(fx), g-1)
			tx := fx - float64(ix)
			for c := range 3 {
				at := func(i, j int) float64 { return lat[(j*(g+1)+i)*3+c] }
				top := at(ix, iy)*(1-tx) + at(ix+1, iy)*tx
				bot := at(ix, iy+1)*(1-tx) + at(ix+1, iy+1)*tx
				out[(y*size+x)*3+c] = float32(top*(1-ty) + bot*ty)
			}
		}
	}
	return out
}

// addStripes adds broad luminance stripes (period 10 to 28 px) to img.
func addStripes(r *rand.Rand, img []float32, size int) {
	period := 10 + 18*r.Float64()
	amp := 10 + 15*r.Float64()
	th := r.Float64() * math.Pi
	ph := r.Float64() * 2 * math.Pi
	kx, ky := math.Cos(th)*2*math.Pi/period, math.Sin(th)*2*math.Pi/period
	for y := range size {
		for x := range size {
			d := float32(amp * math.Sin(kx*float64(x)+ky*float64(y)+ph))
			for c := range 3 {
				img[(y*size+x)*3+c] += d
			}
		}
	}
}

// fineTexture returns the object texture as a luminance offset per pixel: a
// grating of period 2.5 to 4.5 px at a random angle, or a checker of 2 or 3
// px cells, with amplitude 28 to 45.
func fineTexture(r *rand.Rand, size int) []float32 {
	out := make([]float32, size*size)
	amp := 28 + 17*r.Float64()
	if r.IntN(10) < 7 {
		period := 2.5 + 2*r.Float64()
		th := r.Float64() * math.Pi
		ph := r.Float64() * 2 * math.Pi
		kx, ky := math.Cos(th)*2*math.Pi/period, math.Sin(th)*2*math.Pi/period
		for y := range size {
			for x := range size {
				out[y*size+x] = float32(amp * math.Sin(kx*float64(x)+ky*float64(y)+ph))
			}
		}
		return out
	}
	cell := 2 + r.IntN(2)
	ox, oy := r.IntN(cell), r.IntN(cell)
	for y := range size {
		for x := range size {
			if ((x+ox)/cell+(y+oy)/cell)%2 == 0 {
				out[y*size+x] = float32(amp)
			} else {
				out[y*size+x] = float32(-amp)
			}
		}
	}
	return out
}

// coverage rasterises a union of shapes: the fraction of each pixel inside
// any shape. Pixels whose four corners agree are taken as wholly inside or
// outside; the others (along edges) are supersampled 3×3.
func coverage(shapes []shape, size int) []float32 {
	out := make([]float32, size*size)
	in := func(x, y float64) bool {
		for k := range shapes {
			if shapes[k].contains(x, y) {
				return true
			}
		}
		return false
	}
	corners := make([]bool, (size+1)*(size+1))
	for y := range size + 1 {
		for x := range size + 1 {
			corners[y*(size+1)+x] = in(float64(x), float64(y))
		}
	}
	cand := make([]int, 0, len(shapes))
	for y := range size {
		for x := range size {
			c0, c1 := corners[y*(size+1)+x], corners[y*(size+1)+x+1]
			c2, c3 := corners[(y+1)*(size+1)+x], corners[(y+1)*(size+1)+x+1]
			if c0 == c1 && c1 == c2 && c2 == c3 {
				if c0 {
					out[y*size+x] = 1
				}
				continue
			}
			px, py := float64(x), float64(y)
			cand = cand[:0]
			for k := range shapes {
				s := &shapes[k]
				if px+1 >= s.x0 && px <= s.x1 && py+1 >= s.y0 && py <= s.y1 {
					cand = append(cand, k)
				}
			}
			n := 0
			for sy := range 3 {
				for sx := range 3 {
					qx, qy := px+(float64(sx)+0.5)/3, py+(float64(sy)+0.5)/3
					for _, k := range cand {
						if shapes[k].contains(qx, qy) {
							n++
							break
						}
					}
				}
			}
			out[y*size+x] = float32(n) / 9
		}
	}
	return out
}

// objectShapes is one object: 2 to 4 overlapping primitives around a centre.
func objectShapes(r *rand.Rand, cx, cy, scale float64) []shape {
	n := 2 + r.IntN(3)
	out := make([]shape, n)
	for k := range out {
		ang := r.Float64() * 2 * math.Pi
		d := scale * 0.7 * r.Float64()
		if k == 0 {
			d = 0
		}
		out[k] = newShape(r, cx+d*math.Cos(ang), cy+d*math.Sin(ang), scale*(0.5+0.5*r.Float64()))
	}
	return out
}

// renderShapes draws example i of the shapes dataset. See GenerateShapes.
func renderShapes(seed uint64, i, size int) (img, mask []byte) {
	r := rand.New(rand.NewPCG(genMix(seed), genMix(genMix(uint64(i))^seed^0x5ca1ab1e)))
	fs := float64(size)

	// Background: a colour field, sometimes stripes, then distractors.
	bg := colourField(r, size)
	if r.IntN(2) == 0 {
		addStripes(r, bg, size)
	}
	for range r.IntN(4) {
		s := newShape(r, fs*r.Float64(), fs*r.Float64(), fs*(0.06+0.12*r.Float64()))
		cov := coverage([]shape{s}, size)
		f := colourField(r, size)
		if r.IntN(2) == 0 {
			addStripes(r, f, size)
		}
		blend(bg, f, cov)
	}

	// Objects: a main one and sometimes a smaller second one.
	scale := fs * (0.16 + 0.16*r.Float64())
	shapes := objectShapes(r, fs*(0.3+0.4*r.Float64()), fs*(0.3+0.4*r.Float64()), scale)
	if r.IntN(4) == 0 {
		shapes = append(shapes, objectShapes(r, fs*r.Float64(), fs*r.Float64(), fs*(0.06+0.06*r.Float64()))...)
	}
	cov := coverage(shapes, size)
	obj := colourField(r, size)
	tex := fineTexture(r, size)
	for p, t := range tex {
		for c := range 3 {
			obj[p*3+c] += t
		}
	}
	blend(bg, obj, cov)

	// Sensor noise over everything.
	sigma := 6 + 6*r.Float64()
	img = make([]byte, size*size*3)
	for p, v := range bg {
		img[p] = clampByte(float64(v) + sigma*r.NormFloat64())
	}

	inside := make([]bool, size*size)
	for p, c := range cov {
		inside[p] = c >= 0.5
	}
	return img, trimapMask(inside, size)
}

func blend(dst, src, alpha []float32) {
	for p, a := range alpha {
		if a == 0 {
			continue
		}
		for c := range 3 {
			dst[p*3+c] = dst[p*3+c]*(1-a) + src[p*3+c]*a
		}
	}
}

func clampByte(v float64) byte {
	return byte(max(0, min(255, math.Round(v))))
}

// trimapMask labels inside pixels ClassPet and the rest ClassBackground,
// then marks the band around the outline ClassBorder: outside pixels with an
// inside pixel among their 8 neighbours, and inside pixels with an outside
// pixel within 2 px (5×5 square), so the band is about 3 px wide.
func trimapMask(inside []bool, size int) []byte {
	mask := make([]byte, size*size)
	// Outside the image counts as "same as here": the image edge is no
	// outline.
	at := func(x, y int, here bool) bool {
		if x < 0 || y < 0 || x >= size || y >= size {
			return here
		}
		return inside[y*size+x]
	}
	for y := range size {
		for x := range size {
			in := inside[y*size+x]
			r := 1
			if in {
				r = 2
			}
			border := false
			for dy := -r; dy <= r && !border; dy++ {
				for dx := -r; dx <= r; dx++ {
					if at(x+dx, y+dy, in) != in {
						border = true
						break
					}
				}
			}
			switch {
			case border:
				mask[y*size+x] = ClassBorder
			case in:
				mask[y*size+x] = ClassPet
			default:
				mask[y*size+x] = ClassBackground
			}
		}
	}
	return mask
}
