package dataset

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// testMeta is a tiny 4×3 RGB geometry with the three trimap classes.
var testMeta = Meta{Height: 4, Width: 3, Channels: 3, Classes: []string{"pet", "background", "border"}}

// testExample builds example i of m with bytes derived from i, so every
// example differs and corruption is detectable.
func testExample(m Meta, i int, split string) Example {
	img := make([]byte, m.ImageBytes())
	for j := range img {
		img[j] = byte(i*7 + j)
	}
	mask := make([]byte, m.MaskBytes())
	for j := range mask {
		mask[j] = byte((i + j) % len(m.Classes))
	}
	return Example{ID: fmt.Sprintf("ex%05d", i), Split: split, Image: img, Mask: mask}
}

func testExamples(m Meta, n int) []Example {
	out := make([]Example, n)
	for i := range out {
		split := SplitTrain
		if i%4 == 3 {
			split = SplitVal
		}
		out[i] = testExample(m, i, split)
	}
	return out
}

// writeVersionFile writes exs to a version file in dir and returns its path.
func writeVersionFile(t testing.TB, dir string, m Meta, exs []Example) string {
	t.Helper()
	var buf bytes.Buffer
	vw, err := NewVersionWriter(&buf, m)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range exs {
		if err := vw.Write(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := vw.Close(); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "v.arrow")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestVersionFileRoundTrip(t *testing.T) {
	// 600 rows spans three record batches (256, 256, 88).
	for _, n := range []int{1, 255, 256, 600} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			exs := testExamples(testMeta, n)
			v, err := OpenVersionFile(writeVersionFile(t, t.TempDir(), testMeta, exs))
			if err != nil {
				t.Fatal(err)
			}
			defer v.Close()
			if v.Len() != n {
				t.Fatalf("Len = %d, want %d", v.Len(), n)
			}
			if got := v.Meta(); got.Height != 4 || got.Width != 3 || got.Channels != 3 || !slices.Equal(got.Classes, testMeta.Classes) {
				t.Fatalf("Meta = %+v", got)
			}
			var train, val []int
			for i, want := range exs {
				got := v.Example(i)
				if got.ID != want.ID || got.Split != want.Split || !bytes.Equal(got.Image, want.Image) || !bytes.Equal(got.Mask, want.Mask) {
					t.Fatalf("example %d = %+v, want %+v", i, got, want)
				}
				if want.Split == SplitTrain {
					train = append(train, i)
				} else {
					val = append(val, i)
				}
			}
			if got := v.SplitIndices(SplitTrain); !slices.Equal(got, train) {
				t.Fatalf("train indices %v, want %v", got, train)
			}
			if got := v.SplitIndices(SplitVal); !slices.Equal(got, val) {
				t.Fatalf("val indices %v, want %v", got, val)
			}
			if got := v.SplitIndices("test"); len(got) != 0 {
				t.Fatalf("unknown split gave %v", got)
			}
		})
	}
}

func TestVersionWriterRejects(t *testing.T) {
	good := testExample(testMeta, 1, SplitTrain)
	tests := []struct {
		name  string
		prev  *Example
		ex    Example
		want  string
		order bool
	}{
		{name: "duplicate id", prev: &good, ex: good, want: "duplicate example id", order: true},
		{name: "descending id", prev: &good, ex: testExample(testMeta, 0, SplitTrain), want: `"ex00000" after "ex00001"`, order: true},
		{name: "bad split", ex: Example{ID: "a", Split: "test", Image: good.Image, Mask: good.Mask}, want: `split "test"`},
		{name: "short image", ex: Example{ID: "a", Split: SplitTrain, Image: good.Image[1:], Mask: good.Mask}, want: "image is 35 bytes, want 36"},
		{name: "mask class", ex: Example{ID: "a", Split: SplitTrain, Image: good.Image, Mask: bytes.Repeat([]byte{3}, 12)}, want: "class 3"},
		{name: "empty id", ex: Example{Split: SplitTrain, Image: good.Image, Mask: good.Mask}, want: "empty id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vw, err := NewVersionWriter(&bytes.Buffer{}, testMeta)
			if err != nil {
				t.Fatal(err)
			}
			defer vw.Close()
			if tt.prev != nil {
				if err := vw.Write(*tt.prev); err != nil {
					t.Fatal(err)
				}
			}
			err = vw.Write(tt.ex)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Write error %v, want one containing %q", err, tt.want)
			}
			if errors.Is(err, ErrOrder) != tt.order {
				t.Fatalf("errors.Is(err, ErrOrder) = %v, want %v", !tt.order, tt.order)
			}
		})
	}
}

func TestOpenVersionFileDamaged(t *testing.T) {
	dir := t.TempDir()
	good, err := os.ReadFile(writeVersionFile(t, dir, testMeta, testExamples(testMeta, 20)))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"truncated half", good[:len(good)/2]},
		{"truncated footer", good[:len(good)-3]},
		{"not arrow", []byte(strings.Repeat("hello, world ", 100))},
		{"garbage footer", append(slices.Clone(good[:len(good)-10]), 0xff, 0xff, 0xff, 0x7f, 0, 0, 'A', 'R', 'R', 'O')},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "_")+".arrow")
			if err := os.WriteFile(p, tt.data, 0o644); err != nil {
				t.Fatal(err)
			}
			v, err := OpenVersionFile(p)
			if err == nil {
				v.Close()
				t.Fatal("opened a damaged file")
			}
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), p) {
				t.Fatalf("error %v: want ErrCorrupt naming %s", err, p)
			}
		})
	}
}
