package artifact

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

func quietLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

func openTestStore(t testing.TB) *Store {
	t.Helper()
	s, err := OpenStore(filepath.Join(t.TempDir(), "blobs"), quietLog())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// randomBytes returns n reproducible pseudo-random bytes.
func randomBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(n), byte(n >> 8), byte(n >> 16)}).Read(b)
	return b
}

// storeFiles lists every file under the store with its size, to show that
// a failed operation changed nothing.
func storeFiles(t testing.TB, s *Store) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(s.Dir(), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
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

func TestParseDigest(t *testing.T) {
	good := DigestOf([]byte("hello"))
	for _, tc := range []struct {
		name, in string
		ok       bool
	}{
		{"canonical", good, true},
		{"empty content", DigestOf(nil), true},
		{"empty string", "", false},
		{"prefix only", "sha256:", false},
		{"no prefix", strings.TrimPrefix(good, "sha256:"), false},
		{"other algorithm", "sha512:" + strings.TrimPrefix(good, "sha256:"), false},
		{"upper-case prefix", "SHA256:" + strings.TrimPrefix(good, "sha256:"), false},
		{"upper-case hex", "sha256:" + strings.ToUpper(strings.TrimPrefix(good, "sha256:")), false},
		{"short", good[:len(good)-1], false},
		{"long", good + "0", false},
		{"non-hex", good[:len(good)-1] + "g", false},
		{"path", "sha256:../../" + good[13:], false},
		{"space", " " + good, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := ParseDigest(tc.in)
			if tc.ok {
				if err != nil || DigestPrefix+h != tc.in {
					t.Fatalf("ParseDigest(%q) = %q, %v", tc.in, h, err)
				}
				return
			}
			if !errors.Is(err, ErrBadDigest) {
				t.Fatalf("ParseDigest(%q) = %q, %v; want ErrBadDigest", tc.in, h, err)
			}
			if ValidDigest(tc.in) {
				t.Fatalf("ValidDigest(%q) = true", tc.in)
			}
		})
	}
}

func TestPutOpenRoundTrip(t *testing.T) {
	s := openTestStore(t)
	ctx := context.Background()
	var want []string
	for _, n := range []int{0, 1, 4095, 1<<20 + 7, 5<<20 + 3} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			data := randomBytes(1, n)
			sum := sha256.Sum256(data)
			wantDigest := "sha256:" + hex.EncodeToString(sum[:])
			d, size, err := s.Put(ctx, bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			if d != wantDigest || size != int64(n) {
				t.Fatalf("Put = %s, %d; want %s, %d", d, size, wantDigest, n)
			}
			want = append(want, d)
			p := filepath.Join(s.Dir(), "sha256", d[7:9], d[7:])
			if fi, err := os.Stat(p); err != nil || fi.Size() != int64(n) {
				t.Fatalf("blob file %s: %v", p, err)
			}
			if !s.Has(d) {
				t.Fatal("Has = false after Put")
			}
			info, err := s.Stat(d)
			if err != nil || info.Size != int64(n) || info.Digest != d {
				t.Fatalf("Stat = %+v, %v", info, err)
			}
			r, size, err := s.Open(d)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			got, err := io.ReadAll(r)
			if err != nil {
				t.Fatal(err)
			}
			if size != int64(n) || !bytes.Equal(got, data) {
				t.Fatalf("Open read %d bytes (size %d), want the %d put", len(got), size, n)
			}
			if n > 10 {
				if _, err := r.Seek(int64(n/2), io.SeekStart); err != nil {
					t.Fatal(err)
				}
				tail, _ := io.ReadAll(r)
				if !bytes.Equal(tail, data[n/2:]) {
					t.Fatal("read after Seek differs")
				}
			}
			if err := s.Verify(ctx, d); err != nil {
				t.Fatal(err)
			}
			// Putting it again (checked or not) keeps one copy.
			if size, err := s.PutExpected(ctx, bytes.NewReader(data), d); err != nil || size != int64(n) {
				t.Fatalf("PutExpected again = %d, %v", size, err)
			}
		})
	}
	list, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, i := range list {
		got = append(got, i.Digest)
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("List = %v, want %v", got, want)
	}
	if ents, _ := os.ReadDir(filepath.Join(s.Dir(), "tmp")); len(ents) != 0 {
		t.Fatalf("%d temporary files left", len(ents))
	}
}

func TestPutExpectedRefused(t *testing.T) {
	ctx := context.Background()
	data := randomBytes(2, 100_000)
	other := DigestOf([]byte("something else"))
	for _, tc := range []struct {
		name   string
		digest string
		want   error
	}{
		{"mismatch", other, ErrDigestMismatch},
		{"content cut short", DigestOf(append(slices.Clone(data), 1)), ErrDigestMismatch},
		{"malformed digest", "sha256:xyz", ErrBadDigest},
		{"upper-case digest", strings.ToUpper(DigestOf(data)), ErrBadDigest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := openTestStore(t)
			before := storeFiles(t, s)
			_, err := s.PutExpected(ctx, bytes.NewReader(data), tc.digest)
			if !errors.Is(err, tc.want) {
				t.Fatalf("PutExpected = %v, want %v", err, tc.want)
			}
			if after := storeFiles(t, s); !slices.Equal(before, after) {
				t.Fatalf("files changed: %v -> %v", before, after)
			}
			if s.Has(DigestOf(data)) || s.Has(tc.digest) {
				t.Fatal("refused content is stored")
			}
		})
	}
}

// failingReader yields n bytes of data, then err.
type failingReader struct {
	data []byte
	err  error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if len(f.data) == 0 {
		return 0, f.err
	}
	n := copy(p, f.data)
	f.data = f.data[n:]
	return n, nil
}

func TestPutFailsHalfway(t *testing.T) {
	data := randomBytes(3, 3<<20)
	errBroken := errors.New("connection reset")
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name string
		ctx  context.Context
		r    io.Reader
		want error
	}{
		{"reader fails", context.Background(), &failingReader{data: data[:len(data)/2], err: errBroken}, errBroken},
		{"unexpected EOF", context.Background(), &failingReader{data: data[:len(data)/2], err: io.ErrUnexpectedEOF}, io.ErrUnexpectedEOF},
		{"context canceled", canceled, bytes.NewReader(data), context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := openTestStore(t)
			before := storeFiles(t, s)
			_, _, err := s.Put(tc.ctx, tc.r)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Put = %v, want %v", err, tc.want)
			}
			if after := storeFiles(t, s); !slices.Equal(before, after) {
				t.Fatalf("files changed: %v -> %v", before, after)
			}
			if l, err := s.List(); err != nil || len(l) != 0 {
				t.Fatalf("List = %v, %v", l, err)
			}
		})
	}
}

func TestOpenStoreRemovesAbandonedTemp(t *testing.T) {
	s := openTestStore(t)
	d, _, err := s.Put(context.Background(), strings.NewReader("kept"))
	if err != nil {
		t.Fatal(err)
	}
	// What a crash mid-Put leaves: a partial temporary file, unlocked.
	stray := filepath.Join(s.Dir(), "tmp", "blob-123456")
	if err := os.WriteFile(stray, []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A live writer's temporary file stays: it holds the lock.
	live, err := s.tmp.Create("blob-*")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { live.Close(); os.Remove(live.Name()) }()
	s2, err := OpenStore(s.Dir(), quietLog())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stray); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("abandoned temporary file still there: %v", err)
	}
	if _, err := os.Stat(live.Name()); err != nil {
		t.Fatalf("live temporary file removed: %v", err)
	}
	if err := s2.Verify(context.Background(), d); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyDetectsCorruption(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		corrupt func(data []byte) []byte
	}{
		{"flipped byte", func(data []byte) []byte {
			b := slices.Clone(data)
			b[len(b)/3] ^= 0x40
			return b
		}},
		{"truncated", func(data []byte) []byte { return data[:len(data)-1] }},
		{"extended", func(data []byte) []byte { return append(slices.Clone(data), 0) }},
		{"emptied", func([]byte) []byte { return nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := openTestStore(t)
			data := randomBytes(4, 200_000)
			d, _, err := s.Put(ctx, bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(s.Dir(), "sha256", d[7:9], d[7:])
			if err := os.Chmod(p, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, tc.corrupt(data), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := s.Verify(ctx, d); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Verify = %v, want ErrCorrupt", err)
			}
			// Putting the content again repairs it.
			if _, err := s.PutExpected(ctx, bytes.NewReader(data), d); err != nil {
				t.Fatal(err)
			}
			if err := s.Verify(ctx, d); err != nil {
				t.Fatalf("Verify after repair: %v", err)
			}
		})
	}
}

func TestMissingBlobs(t *testing.T) {
	s := openTestStore(t)
	ctx := context.Background()
	absent := DigestOf([]byte("absent"))
	if _, _, err := s.Open(absent); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Open = %v, want ErrNotFound", err)
	}
	if _, err := s.Stat(absent); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Stat = %v, want ErrNotFound", err)
	}
	if err := s.Verify(ctx, absent); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Verify = %v, want ErrNotFound", err)
	}
	if err := s.Delete(absent); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Delete = %v, want ErrNotFound", err)
	}
	if _, _, err := s.Open("sha256:nope"); !errors.Is(err, ErrBadDigest) {
		t.Fatalf("Open bad digest = %v, want ErrBadDigest", err)
	}
	d, _, err := s.Put(ctx, strings.NewReader("present"))
	if err != nil {
		t.Fatal(err)
	}
	missing, err := s.Missing(ctx, []string{d, absent, d, absent})
	if err != nil || !slices.Equal(missing, []string{absent}) {
		t.Fatalf("Missing = %v, %v", missing, err)
	}
	if _, err := s.Missing(ctx, []string{d, "sha256:bad"}); !errors.Is(err, ErrBadDigest) {
		t.Fatalf("Missing with a bad digest = %v, want ErrBadDigest", err)
	}
	if err := s.Delete(d); err != nil {
		t.Fatal(err)
	}
	if s.Has(d) {
		t.Fatal("Has after Delete")
	}
}

func TestConcurrentPutSameContent(t *testing.T) {
	s := openTestStore(t)
	ctx := context.Background()
	data := randomBytes(5, 2<<20+11)
	want := DigestOf(data)
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	readers := make([]error, n)
	for i := range n {
		wg.Go(func() {
			if i%2 == 0 {
				_, errs[i] = s.PutExpected(ctx, bytes.NewReader(data), want)
			} else {
				var d string
				d, _, errs[i] = s.Put(ctx, bytes.NewReader(data))
				if errs[i] == nil && d != want {
					errs[i] = fmt.Errorf("digest %s, want %s", d, want)
				}
			}
			// Whatever a reader opens is whole.
			if r, _, err := s.Open(want); err == nil {
				b, err := io.ReadAll(r)
				r.Close()
				if err == nil && !bytes.Equal(b, data) {
					err = errors.New("read a partial blob")
				}
				readers[i] = err
			}
		})
	}
	wg.Wait()
	if err := errors.Join(append(errs, readers...)...); err != nil {
		t.Fatal(err)
	}
	if err := s.Verify(ctx, want); err != nil {
		t.Fatal(err)
	}
	files := storeFiles(t, s)
	if len(files) != 1 {
		t.Fatalf("files after concurrent puts: %v", files)
	}
}
