package artifact

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/trainctl/trainctl/internal/durable"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Store layout under its directory (by default <data-dir>/blobs):
//
//	sha256/<xx>/<hex>   one read-only file per blob, xx the first two hex
//	                    digits of its digest; a shard directory is made
//	                    (and its parent fsynced) when first needed
//	tmp/                blobs being written, renamed into place when
//	                    complete, removed on open when abandoned
//
// A blob exists exactly when its file exists under sha256/, and a file
// appears there only by the rename of a fsynced temporary file whose
// content hashed to the name.
const (
	blobsDir   = "sha256"
	tmpDir     = "tmp"
	copyBufLen = 256 << 10
)

// StoreDir is the directory of the artifact store inside a data directory.
func StoreDir(dataDir string) string { return filepath.Join(dataDir, "blobs") }

// Info describes a stored blob.
type Info struct {
	Digest  string    `json:"digest"`
	Size    int64     `json:"size"`
	ModTime time.Time `json:"mod_time"`
}

// Store keeps content-addressed blobs on local disk. It is safe for
// concurrent use by goroutines and, through advisory locks on its temporary
// files, by several processes sharing the directory.
type Store struct {
	dir string
	tmp *durable.TempDir
	log *slog.Logger

	mu     sync.Mutex
	shards map[string]bool // shard directories known to exist durably
}

// OpenStore opens (creating if needed) the store in dir and removes the
// temporary files that crashed writers left behind; files that a live
// writer holds locked are left alone. log may be nil for slog.Default().
func OpenStore(dir string, log *slog.Logger) (*Store, error) {
	if log == nil {
		log = slog.Default()
	}
	s := &Store{dir: dir, log: log.With("artifacts", dir), shards: make(map[string]bool)}
	if err := s.init(); err != nil {
		return nil, fmt.Errorf("open artifact store %s: %w", dir, err)
	}
	return s, nil
}

func (s *Store) init() error {
	for _, d := range []string{s.dir, filepath.Join(s.dir, blobsDir)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	// Make the directories themselves durable, on every open because a
	// process that died after making them may not have synced them; the
	// shard directories that exist are durable from then on.
	for _, d := range []string{filepath.Join(s.dir, blobsDir), s.dir, filepath.Dir(s.dir)} {
		if err := durable.SyncDir(d); err != nil {
			return err
		}
	}
	shards, err := s.shardNames()
	if err != nil {
		return err
	}
	for _, sh := range shards {
		s.shards[sh] = true
	}
	tmp, removed, err := durable.OpenTempDir(filepath.Join(s.dir, tmpDir))
	for _, p := range removed {
		s.log.Warn("removed abandoned temporary blob", "path", p)
	}
	s.tmp = tmp
	return err
}

// Dir is the store's directory.
func (s *Store) Dir() string { return s.dir }

// path returns the file of the blob with hex digest h.
func (s *Store) path(h string) string {
	return filepath.Join(s.dir, blobsDir, h[:2], h)
}

// makeShard makes sure the shard directory of hex digest h exists and its
// entry in sha256/ is durable, so a blob renamed into it survives a crash
// once the shard directory itself is fsynced.
func (s *Store) makeShard(h string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shards[h[:2]] {
		return nil
	}
	d := filepath.Join(s.dir, blobsDir, h[:2])
	if err := os.Mkdir(d, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	// Sync even when another writer made it: it may not have synced yet.
	if err := durable.SyncDir(filepath.Dir(d)); err != nil {
		return err
	}
	s.shards[h[:2]] = true
	return nil
}

// shardNames lists the shard directories, sorted.
func (s *Store) shardNames() ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(s.dir, blobsDir))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		n := e.Name()
		if e.IsDir() && len(n) == 2 && strings.Trim(n, "0123456789abcdef") == "" {
			out = append(out, n)
		}
	}
	return out, nil
}

// Put stores the content r yields until EOF and returns its digest and
// size. The content is streamed to disk while it is hashed, never held in
// memory. If r fails or ctx ends before EOF nothing is stored. When Put
// returns nil the blob is durable (file and directory fsynced). Storing
// content that is already present succeeds and leaves one copy.
func (s *Store) Put(ctx context.Context, r io.Reader) (string, int64, error) {
	d, n, _, err := s.put(ctx, r, "", 0)
	return d, n, err
}

// PutExpected is Put for content that must hash to digest: otherwise
// nothing is stored and the error wraps ErrDigestMismatch. A malformed
// digest gives ErrBadDigest before r is read. It returns the size.
func (s *Store) PutExpected(ctx context.Context, r io.Reader, digest string) (int64, error) {
	if _, err := ParseDigest(digest); err != nil {
		return 0, fmt.Errorf("put blob: %w", err)
	}
	_, n, _, err := s.put(ctx, r, digest, 0)
	return n, err
}

// bodyError marks a failure to read the content given to put (as opposed
// to a failure of the store), so the HTTP handler can answer 400, not 500.
type bodyError struct{ err error }

func (e *bodyError) Error() string { return "read content: " + e.err.Error() }
func (e *bodyError) Unwrap() error { return e.err }

// ctxReader reads from r until ctx ends; its errors are bodyErrors.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

// Read reads from the underlying reader unless the context has ended.
func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, &bodyError{err}
	}
	n, err := c.r.Read(p)
	if err != nil && err != io.EOF {
		err = &bodyError{err}
	}
	return n, err
}

// put stores r, checking it against want (a valid digest, or "" for any)
// and, when limit > 0, that it is at most limit bytes. created reports
// whether the blob was absent before.
func (s *Store) put(ctx context.Context, r io.Reader, want string, limit int64) (digest string, size int64, created bool, err error) {
	f, err := s.tmp.Create("blob-*")
	if err != nil {
		return "", 0, false, fmt.Errorf("put blob: %w", err)
	}
	renamed := false
	defer func() {
		if !renamed {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	h := sha256.New()
	var src io.Reader = &ctxReader{ctx: ctx, r: r}
	if limit > 0 {
		src = io.LimitReader(src, limit+1)
	}
	n, err := io.CopyBuffer(io.MultiWriter(f, h), src, make([]byte, copyBufLen))
	if err != nil {
		return "", n, false, fmt.Errorf("put blob: after %d bytes: %w", n, err)
	}
	if limit > 0 && n > limit {
		return "", n, false, fmt.Errorf("put blob: %w: more than %d bytes", ErrTooLarge, limit)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	digest = DigestPrefix + sum
	if want != "" && digest != want {
		return "", n, false, fmt.Errorf("put blob %s: %w: the %d bytes received hash to %s", ShortDigest(want), ErrDigestMismatch, n, ShortDigest(digest))
	}
	if err := f.Chmod(0o444); err != nil {
		return "", n, false, fmt.Errorf("put blob %s: %w", ShortDigest(digest), err)
	}
	if err := f.Sync(); err != nil {
		return "", n, false, fmt.Errorf("put blob %s: %w", ShortDigest(digest), err)
	}
	if err := s.makeShard(sum); err != nil {
		return "", n, false, fmt.Errorf("put blob %s: %w", ShortDigest(digest), err)
	}
	dst := s.path(sum)
	_, statErr := os.Lstat(dst)
	created = errors.Is(statErr, fs.ErrNotExist)
	// Rename even when the blob exists: the content is the same, a
	// damaged copy gets repaired, and the directory fsync below makes the
	// name durable even if a concurrent writer of the same blob has not
	// fsynced it yet. The file stays locked until renamed, so OpenTempDir in
	// another process cannot remove it first.
	if err := os.Rename(f.Name(), dst); err != nil {
		return "", n, false, fmt.Errorf("put blob %s: %w", ShortDigest(digest), err)
	}
	renamed = true
	f.Close()
	if err := durable.SyncDir(filepath.Dir(dst)); err != nil {
		return "", n, false, fmt.Errorf("put blob %s: %w", ShortDigest(digest), err)
	}
	if created {
		s.log.Debug("stored blob", "digest", digest, "size", n)
	}
	return digest, n, created, nil
}

// openFile opens the blob with the given digest.
func (s *Store) openFile(digest string) (*os.File, os.FileInfo, error) {
	h, err := ParseDigest(digest)
	if err != nil {
		return nil, nil, err
	}
	f, err := os.Open(s.path(h))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("blob %s: %w", digest, ErrNotFound)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("blob %s: %w", digest, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("blob %s: %w", digest, err)
	}
	return f, fi, nil
}

// Open opens the blob with the given digest for reading and returns its
// size. Missing blobs give an error wrapping ErrNotFound, malformed digests
// ErrBadDigest. The caller closes the reader; a blob deleted while open
// stays readable through it.
func (s *Store) Open(digest string) (io.ReadSeekCloser, int64, error) {
	f, fi, err := s.openFile(digest)
	if err != nil {
		return nil, 0, err
	}
	return f, fi.Size(), nil
}

// Has reports whether the blob with the given digest is stored; it is
// false for malformed digests.
func (s *Store) Has(digest string) bool {
	_, err := s.Stat(digest)
	return err == nil
}

// Stat describes the blob with the given digest (ErrNotFound if it is
// missing, ErrBadDigest if the digest is malformed).
func (s *Store) Stat(digest string) (Info, error) {
	h, err := ParseDigest(digest)
	if err != nil {
		return Info{}, err
	}
	fi, err := os.Stat(s.path(h))
	if errors.Is(err, fs.ErrNotExist) {
		return Info{}, fmt.Errorf("blob %s: %w", digest, ErrNotFound)
	}
	if err != nil {
		return Info{}, fmt.Errorf("blob %s: %w", digest, err)
	}
	return Info{Digest: digest, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// Delete removes the blob with the given digest durably (ErrNotFound if it
// is missing). Readers that have it open keep reading it.
func (s *Store) Delete(digest string) error {
	h, err := ParseDigest(digest)
	if err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	p := s.path(h)
	if err := os.Remove(p); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete blob %s: %w", digest, ErrNotFound)
	} else if err != nil {
		return fmt.Errorf("delete blob %s: %w", digest, err)
	}
	if err := durable.SyncDir(filepath.Dir(p)); err != nil {
		return fmt.Errorf("delete blob %s: %w", digest, err)
	}
	s.log.Debug("deleted blob", "digest", digest)
	return nil
}

// List returns every stored blob, sorted by digest. Files under the store
// directory whose names are not digests are ignored.
func (s *Store) List() ([]Info, error) {
	shards, err := s.shardNames()
	if err != nil {
		return nil, fmt.Errorf("list blobs: %w", err)
	}
	var out []Info
	for _, shard := range shards {
		ents, err := os.ReadDir(filepath.Join(s.dir, blobsDir, shard))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("list blobs: %w", err)
		}
		for _, e := range ents {
			d := DigestPrefix + e.Name()
			if !e.Type().IsRegular() || !ValidDigest(d) || e.Name()[:2] != shard {
				continue
			}
			fi, err := e.Info()
			if errors.Is(err, fs.ErrNotExist) {
				continue // deleted meanwhile
			}
			if err != nil {
				return nil, fmt.Errorf("list blobs: %w", err)
			}
			out = append(out, Info{Digest: d, Size: fi.Size(), ModTime: fi.ModTime()})
		}
	}
	return out, nil
}

// Missing returns the digests of referenced that are not stored, in their
// first order of appearance and without repeats. Malformed digests give an
// error wrapping ErrBadDigest.
func (s *Store) Missing(ctx context.Context, referenced []string) ([]string, error) {
	var out []string
	seen := make(map[string]bool, len(referenced))
	for _, d := range referenced {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if seen[d] {
			continue
		}
		seen[d] = true
		switch _, err := s.Stat(d); {
		case err == nil:
		case errors.Is(err, ErrNotFound):
			out = append(out, d)
		default:
			return nil, fmt.Errorf("missing blobs: %w", err)
		}
	}
	return out, nil
}

// Verify re-reads the blob with the given digest and checks that it still
// hashes to it; a mismatch gives an error wrapping ErrCorrupt.
func (s *Store) Verify(ctx context.Context, digest string) error {
	f, _, err := s.openFile(digest)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.CopyBuffer(h, &ctxReader{ctx: ctx, r: f}, make([]byte, copyBufLen))
	if err != nil {
		return fmt.Errorf("verify blob %s: %w", digest, errors.Unwrap(err))
	}
	if got := DigestPrefix + hex.EncodeToString(h.Sum(nil)); got != digest {
		return fmt.Errorf("verify blob %s (%s): %w: its %d bytes hash to %s", digest, f.Name(), ErrCorrupt, n, got)
	}
	return nil
}
