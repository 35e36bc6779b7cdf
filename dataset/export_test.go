package dataset

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
)

// TestExportRoundTripsThroughIngest writes a generated version out in the
// Pet layout and ingests it back: ids, splits and masks must survive exactly
// (PNG is lossless and the size is unchanged), images within JPEG error.
func TestExportRoundTripsThroughIngest(t *testing.T) {
	ctx := context.Background()
	st, err := OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	gen := ShapesConfig{N: 12, Size: 32, Seed: 7, ValFraction: 0.25}
	src, _, err := st.Register(ctx, "shapes", gen.Meta(), func(yield func(Example) error) (Provenance, error) {
		return Provenance{Source: gen.Source()}, GenerateShapes(ctx, gen, yield)
	})
	if err != nil {
		t.Fatal(err)
	}
	v, _, err := st.Open(src.Ref())
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()

	dir := t.TempDir()
	n, err := ExportPetLayout(ctx, v, dir, ExportConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if n != v.Len() {
		t.Fatalf("exported %d examples, want %d", n, v.Len())
	}
	if _, err := os.Stat(filepath.Join(dir, "annotations", "trimaps", v.Example(0).ID+".png")); err != nil {
		t.Fatalf("trimap not written: %v", err)
	}

	in := IngestConfig{Layout: LayoutOxfordPet, Root: dir, Size: 32, ValFraction: 0.25}
	back, _, err := st.Register(ctx, "shapes-pet", in.Meta(), func(yield func(Example) error) (Provenance, error) {
		return Ingest(ctx, in, yield)
	})
	if err != nil {
		t.Fatalf("re-ingest: %v", err)
	}
	w, _, err := st.Open(back.Ref())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if w.Len() != v.Len() {
		t.Fatalf("re-ingested %d examples, want %d", w.Len(), v.Len())
	}
	for i := 0; i < v.Len(); i++ {
		a, b := v.Example(i), w.Example(i)
		if a.ID != b.ID {
			t.Fatalf("row %d: id %s, want %s", i, b.ID, a.ID)
		}
		if !bytes.Equal(a.Mask, b.Mask) {
			t.Fatalf("example %s: mask changed in the round trip", a.ID)
		}
		var sum float64
		for p := range a.Image {
			d := float64(a.Image[p]) - float64(b.Image[p])
			sum += d * d
		}
		if rmse := sum / float64(len(a.Image)); rmse > 20*20 {
			t.Fatalf("example %s: image mean squared error %.1f after JPEG, too large", a.ID, rmse)
		}
	}
}

func TestExportRejectsBadConfig(t *testing.T) {
	ctx := context.Background()
	st, err := OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	gen := ShapesConfig{N: 2, Size: 16, Seed: 1}
	m, _, err := st.Register(ctx, "s", gen.Meta(), func(yield func(Example) error) (Provenance, error) {
		return Provenance{Source: gen.Source()}, GenerateShapes(ctx, gen, yield)
	})
	if err != nil {
		t.Fatal(err)
	}
	v, _, err := st.Open(m.Ref())
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	for _, cfg := range []ExportConfig{{Split: "test"}, {JPEGQuality: 101}} {
		if _, err := ExportPetLayout(ctx, v, t.TempDir(), cfg); err == nil {
			t.Errorf("ExportPetLayout(%+v) succeeded, want an error", cfg)
		}
	}
}
