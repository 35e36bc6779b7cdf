package dataset

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/trainctl/trainctl/internal/durable"
)

func openTestStore(t testing.TB) *Store {
	t.Helper()
	s, err := OpenStore(filepath.Join(t.TempDir(), "datasets"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func genProducer(cfg ShapesConfig) func(func(Example) error) (Provenance, error) {
	return func(yield func(Example) error) (Provenance, error) {
		return Provenance{Source: cfg.Source()}, GenerateShapes(context.Background(), cfg, yield)
	}
}

func registerGen(t testing.TB, s *Store, name string, seed uint64, n int) (Manifest, bool) {
	t.Helper()
	cfg := ShapesConfig{N: n, Size: 32, Seed: seed}
	m, created, err := s.Register(context.Background(), name, cfg.Meta(), genProducer(cfg))
	if err != nil {
		t.Fatal(err)
	}
	return m, created
}

// storeFiles lists every file under the store (but the lock) with its size,
// to show that a failed operation changed nothing.
func storeFiles(t testing.TB, s *Store) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(s.Dir(), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() == lockFile {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(s.Dir(), p)
		out = append(out, fmt.Sprintf("%s %d", rel, info.Size()))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestRegisterVersions(t *testing.T) {
	s := openTestStore(t)
	m1, created := registerGen(t, s, "shapes", 1, 10)
	if !created || m1.Seq != 1 || m1.Parent != "" || m1.Examples != 10 || !ValidID(m1.ID) {
		t.Fatalf("first version: created=%v %+v", created, m1)
	}
	if m1.Counts[SplitTrain]+m1.Counts[SplitVal] != 10 || m1.Counts[SplitVal] != 2 {
		t.Fatalf("counts %v", m1.Counts)
	}
	var px int64
	for _, c := range m1.ClassPixels {
		px += c
	}
	if px != 10*32*32 || len(m1.ClassPixels) != 3 {
		t.Fatalf("class pixels %v sum to %d, want %d", m1.ClassPixels, px, 10*32*32)
	}
	if sum, size, err := durable.FileSHA256(s.DataPath(m1.ID)); err != nil || sum != m1.FileSHA256 || size != m1.Bytes {
		t.Fatalf("file digest %s %d %v, manifest %s %d", sum, size, err, m1.FileSHA256, m1.Bytes)
	}
	v, err := OpenVersionFile(s.DataPath(m1.ID))
	if err != nil {
		t.Fatal(err)
	}
	if id := ContentID(v); id != m1.ID {
		t.Fatalf("ContentID %s, manifest id %s", id, m1.ID)
	}
	v.Close()

	// Same seed: same content, no new version.
	again, created := registerGen(t, s, "shapes", 1, 10)
	if created || again.ID != m1.ID || again.Seq != 1 {
		t.Fatalf("re-register: created=%v seq=%d id=%s", created, again.Seq, ShortID(again.ID))
	}
	// Different seed: v2 whose parent is v1.
	m2, created := registerGen(t, s, "shapes", 2, 10)
	if !created || m2.Seq != 2 || m2.Parent != m1.ID || m2.ID == m1.ID {
		t.Fatalf("second version: created=%v %+v", created, m2)
	}
	// v1's content again is an existing version of the name: no v3.
	if m, created := registerGen(t, s, "shapes", 1, 10); created || m.Seq != 1 {
		t.Fatalf("old content: created=%v seq=%d", created, m.Seq)
	}
	// The same content under another name shares the object.
	other, created := registerGen(t, s, "copy", 1, 10)
	if !created || other.ID != m1.ID || other.Seq != 1 || other.FileSHA256 != m1.FileSHA256 {
		t.Fatalf("copy: created=%v %+v", created, other)
	}
	all, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	var refs []string
	for _, m := range all {
		refs = append(refs, m.Ref())
	}
	if want := []string{"copy@v1", "shapes@v1", "shapes@v2"}; !slices.Equal(refs, want) {
		t.Fatalf("List = %v, want %v", refs, want)
	}

	// Removing one name keeps the shared object; removing the other too
	// deletes it.
	if _, err := s.Remove("copy"); err != nil {
		t.Fatal(err)
	}
	if !s.HasObject(m1.ID) {
		t.Fatal("shared object deleted while shapes@v1 still uses it")
	}
	if _, err := s.Remove("shapes@v1"); err != nil {
		t.Fatal(err)
	}
	if s.HasObject(m1.ID) {
		t.Fatal("unreferenced object kept")
	}
	if m, err := s.Resolve("shapes"); err != nil || m.Seq != 2 {
		t.Fatalf("latest after removing v1: %+v %v", m, err)
	}
	if _, err := s.Remove("shapes"); err != nil {
		t.Fatal(err)
	}
	if names, _ := s.Names(); len(names) != 0 {
		t.Fatalf("names left: %v", names)
	}
	if files := storeFiles(t, s); len(files) != 0 {
		t.Fatalf("files left after removing everything: %v", files)
	}
}

func TestResolve(t *testing.T) {
	s := openTestStore(t)
	m1, _ := registerGen(t, s, "shapes", 1, 4)
	m2, _ := registerGen(t, s, "shapes", 2, 4)
	// Two hand-made manifests whose ids share a prefix, for ambiguity.
	for _, id := range []string{"abcdef" + strings.Repeat("0", 58), "abcdef" + strings.Repeat("1", 58)} {
		if err := s.writeManifest(Manifest{Name: "amb", ID: id, Seq: int(id[6] - '0' + 1)}); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		ref     string
		want    string // id, or "" for an error
		wantErr error
		msg     string
	}{
		{ref: "shapes", want: m2.ID},
		{ref: "shapes@latest", want: m2.ID},
		{ref: "shapes@v1", want: m1.ID},
		{ref: "shapes@v2", want: m2.ID},
		{ref: "shapes@" + m1.ID[:6], want: m1.ID},
		{ref: "shapes@" + m1.ID, want: m1.ID},
		{ref: "shapes@v3", wantErr: ErrNotFound, msg: "versions: v1 " + ShortID(m1.ID) + ", v2 " + ShortID(m2.ID)},
		{ref: "nope", wantErr: ErrNotFound, msg: "have: amb, shapes"},
		{ref: "shapes@ffffff", wantErr: ErrNotFound, msg: "no version with id prefix ffffff"},
		{ref: "amb@abcdef", wantErr: ErrAmbiguous, msg: "matches v1 abcdef000000, v2 abcdef111111"},
		{ref: "amb@abcdef1", want: "abcdef" + strings.Repeat("1", 58)},
		{ref: "Shapes", wantErr: ErrBadRef, msg: "dataset name"},
		{ref: "shapes@v0", wantErr: ErrBadRef, msg: "not v<N> with N >= 1"},
		{ref: "shapes@abc", wantErr: ErrBadRef, msg: "id prefix of 6-64"},
		{ref: "shapes@", wantErr: ErrBadRef},
		{ref: "../etc", wantErr: ErrBadRef},
	}
	for _, tt := range tests {
		t.Run(tt.ref, func(t *testing.T) {
			m, err := s.Resolve(tt.ref)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.msg) {
					t.Fatalf("Resolve(%q) error %v, want %v containing %q", tt.ref, err, tt.wantErr, tt.msg)
				}
				return
			}
			if err != nil || m.ID != tt.want {
				t.Fatalf("Resolve(%q) = %s, %v; want %s", tt.ref, ShortID(m.ID), err, ShortID(tt.want))
			}
		})
	}
}

// flipByte xors one byte of the file at path.
func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[off] ^= 0x01
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestVerify(t *testing.T) {
	tests := []struct {
		name   string
		damage func(t *testing.T, path string, m Manifest)
		want   []string
	}{
		{"intact", func(*testing.T, string, Manifest) {}, nil},
		{"data byte", func(t *testing.T, p string, m Manifest) { flipByte(t, p, m.Bytes/2) },
			[]string{"file SHA-256 is", "content digest is"}},
		{"header byte", func(t *testing.T, p string, m Manifest) { flipByte(t, p, 2) },
			[]string{"file SHA-256 is", "file does not parse"}},
		// The schema is stored twice: the leading schema message (which
		// readers skip; only the file digest sees it) and the footer.
		{"leading schema byte", func(t *testing.T, p string, m Manifest) {
			b, _ := os.ReadFile(p)
			flipByte(t, p, int64(bytes.Index(b, []byte(`"pet"`))+1))
		}, []string{"file SHA-256 is"}},
		{"footer schema byte", func(t *testing.T, p string, m Manifest) {
			b, _ := os.ReadFile(p)
			flipByte(t, p, int64(bytes.LastIndex(b, []byte(`"pet"`))+1))
		}, []string{"file SHA-256 is", "file geometry", "content digest is"}},
		{"truncated", func(t *testing.T, p string, m Manifest) { os.Truncate(p, m.Bytes-100) },
			[]string{"bytes, manifest says", "file does not parse"}},
		{"missing", func(t *testing.T, p string, m Manifest) { os.Remove(p) },
			[]string{"cannot read version file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openTestStore(t)
			m, _ := registerGen(t, s, "shapes", 1, 6)
			tt.damage(t, s.DataPath(m.ID), m)
			err := s.Verify(context.Background(), "shapes")
			if tt.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Verify error %v, want ErrCorrupt", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Verify error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestRegisterFailureLeavesNothing(t *testing.T) {
	boom := errors.New("boom")
	exs := testExamples(testMeta, 10)
	tests := []struct {
		name    string
		ctx     func() context.Context
		produce func(yield func(Example) error) (Provenance, error)
		want    error
	}{
		{"producer fails midway", context.Background, func(yield func(Example) error) (Provenance, error) {
			for _, e := range exs[:5] {
				if err := yield(e); err != nil {
					return Provenance{}, err
				}
			}
			return Provenance{}, boom
		}, boom},
		{"out of order", context.Background, func(yield func(Example) error) (Provenance, error) {
			for _, i := range []int{0, 1, 3, 2} {
				if err := yield(exs[i]); err != nil {
					return Provenance{}, err
				}
			}
			return Provenance{}, nil
		}, ErrOrder},
		{"cancelled", func() context.Context {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx
		}, func(yield func(Example) error) (Provenance, error) {
			for _, e := range exs {
				if err := yield(e); err != nil {
					return Provenance{}, err
				}
			}
			return Provenance{}, nil
		}, context.Canceled},
		{"empty", context.Background, func(func(Example) error) (Provenance, error) { return Provenance{}, nil }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openTestStore(t)
			registerGen(t, s, "other", 1, 3)
			before := storeFiles(t, s)
			_, _, err := s.Register(tt.ctx(), "ds", testMeta, tt.produce)
			if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Fatalf("Register error %v, want %v", err, tt.want)
			}
			if after := storeFiles(t, s); !slices.Equal(before, after) {
				t.Fatalf("store changed by a failed Register:\nbefore %v\nafter  %v", before, after)
			}
			if _, err := s.Resolve("ds"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("Resolve after failure: %v", err)
			}
		})
	}
}

func TestOpenStoreCleansAbandonedTemp(t *testing.T) {
	s := openTestStore(t)
	stale := filepath.Join(s.Dir(), tmpDir, "version-123.arrow")
	if err := os.WriteFile(stale, []byte("half a version"), 0o644); err != nil {
		t.Fatal(err)
	}
	live, err := s.tmp.Create("version-*.arrow") // a writer still at work
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	if _, err := OpenStore(s.Dir()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("abandoned temp file still there: %v", err)
	}
	if _, err := os.Stat(live.Name()); err != nil {
		t.Fatalf("a live writer's temp file was removed: %v", err)
	}
}

func TestConcurrentRegisterGetsDistinctSeqs(t *testing.T) {
	s := openTestStore(t)
	const k = 4
	var wg sync.WaitGroup
	seqs := make([]int, k)
	for i := range k {
		wg.Go(func() {
			m, _ := registerGen(t, s, "shapes", uint64(i+1), 3)
			seqs[i] = m.Seq
		})
	}
	wg.Wait()
	slices.Sort(seqs)
	if !slices.Equal(seqs, []int{1, 2, 3, 4}) {
		t.Fatalf("seqs %v, want 1..4", seqs)
	}
}

func TestImportFileAndPutObject(t *testing.T) {
	ctx := context.Background()
	src := openTestStore(t)
	m, _ := registerGen(t, src, "shapes", 1, 5)
	dst := openTestStore(t)

	if _, err := dst.PutObject(ctx, src.DataPath(m.ID), strings.Repeat("0", 64)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("PutObject with the wrong id: %v", err)
	}
	id, err := dst.PutObject(ctx, src.DataPath(m.ID), m.ID)
	if err != nil || id != m.ID || !dst.HasObject(id) {
		t.Fatalf("PutObject = %s, %v", id, err)
	}
	if sum, _, _ := durable.FileSHA256(dst.DataPath(id)); sum != m.FileSHA256 {
		t.Fatal("PutObject changed the file bytes")
	}
	v, err := dst.OpenObject(id)
	if err != nil || v.Len() != 5 {
		t.Fatalf("OpenObject: %v", err)
	}
	v.Close()

	if _, _, err := dst.ImportFile(ctx, "pulled", src.DataPath(m.ID), strings.Repeat("1", 64), Source{}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("ImportFile with the wrong id: %v", err)
	}
	im, created, err := dst.ImportFile(ctx, "pulled", src.DataPath(m.ID), m.ID, Source{})
	if err != nil || !created || im.ID != m.ID || im.Source.Kind != SourceImport {
		t.Fatalf("ImportFile = %+v, %v, %v", im, created, err)
	}
	if err := dst.Verify(ctx, "pulled"); err != nil {
		t.Fatal(err)
	}

	// A damaged file is refused and adds nothing.
	bad := filepath.Join(t.TempDir(), "bad.arrow")
	data, _ := os.ReadFile(src.DataPath(m.ID))
	os.WriteFile(bad, data[:len(data)/2], 0o644)
	before := storeFiles(t, dst)
	if _, err := dst.PutObject(ctx, bad, ""); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("PutObject of a truncated file: %v", err)
	}
	if _, _, err := dst.ImportFile(ctx, "bad", bad, "", Source{}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("ImportFile of a truncated file: %v", err)
	}
	if after := storeFiles(t, dst); !slices.Equal(before, after) {
		t.Fatalf("store changed: %v -> %v", before, after)
	}
}
