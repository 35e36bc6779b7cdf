package stream

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"github.com/trainctl/trainctl/internal/durable"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/trainctl/trainctl/dataset"
)

// FetchResult describes a version made available in a local cache.
type FetchResult struct {
	// Manifest is the version's manifest as the server describes it (only
	// its ID is set when fetched by id with FetchVersion).
	Manifest dataset.Manifest
	// Path is the verified version file: <cacheDir>/<id>.arrow.
	Path string
	// Cached is true when the cache already held a good copy and nothing
	// was downloaded.
	Cached bool
	// Bytes is the size of the file.
	Bytes int64
}

// CachePath is where Fetch keeps version id in cacheDir.
func CachePath(cacheDir, id string) string { return filepath.Join(cacheDir, id+".arrow") }

// Fetch resolves ref on the server and makes that version available as a
// verified Arrow file in cacheDir; see FetchVersion.
func (c *Client) Fetch(ctx context.Context, ref, cacheDir string) (FetchResult, error) {
	m, err := c.Info(ctx, ref)
	if err != nil {
		return FetchResult{}, err
	}
	res, err := c.FetchVersion(ctx, m.ID, cacheDir)
	if err != nil {
		return FetchResult{}, fmt.Errorf("fetch %s: %w", m.Ref(), err)
	}
	res.Manifest = m
	return res, nil
}

// FetchVersion makes version id available as <cacheDir>/<id>.arrow.
//
// A file already there is used only after its content digest is verified
// again to equal id; a damaged one is logged, removed and downloaded anew.
// A download streams the whole version (a whole-version ticket) into a
// temporary file in cacheDir, which is fsynced, verified (every example
// valid and the content digest equal to id) and only then renamed into
// place, the directory fsynced; so the cache never shows a partial or
// unverified file, whatever crashes. Verification failures wrap
// dataset.ErrCorrupt.
func (c *Client) FetchVersion(ctx context.Context, id, cacheDir string) (FetchResult, error) {
	if !dataset.ValidID(id) {
		return FetchResult{}, fmt.Errorf("fetch: %w: version id %q is not 64 lowercase hex digits", dataset.ErrBadRef, id)
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return FetchResult{}, fmt.Errorf("fetch %s: cache: %w", dataset.ShortID(id), err)
	}
	path := CachePath(cacheDir, id)
	res := FetchResult{Manifest: dataset.Manifest{ID: id}, Path: path}
	switch size, err := verifyFile(ctx, path, id); {
	case err == nil:
		res.Cached, res.Bytes = true, size
		return res, nil
	case errors.Is(err, fs.ErrNotExist):
	case ctx.Err() != nil:
		return FetchResult{}, ctx.Err()
	default:
		c.log.Warn("cached dataset version is damaged; downloading it again", "path", path, "err", err)
		if rerr := os.Remove(path); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			return FetchResult{}, fmt.Errorf("fetch %s: remove damaged cache file: %w (it failed verification: %v)", dataset.ShortID(id), rerr, err)
		}
	}
	size, err := c.download(ctx, id, cacheDir, path)
	if err != nil {
		return FetchResult{}, fmt.Errorf("fetch %s: %w", dataset.ShortID(id), err)
	}
	res.Bytes = size
	return res, nil
}

// download streams version id into a verified file at path.
func (c *Client) download(ctx context.Context, id, dir, path string) (size int64, err error) {
	f, err := os.CreateTemp(dir, "."+dataset.ShortID(id)+"-*.tmp")
	if err != nil {
		return 0, fmt.Errorf("cache: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	bw := bufio.NewWriterSize(f, 1<<20)
	var vw *dataset.VersionWriter
	for it, serr := range c.Stream(ctx, WholeTicket(id)) {
		if serr != nil {
			return 0, serr
		}
		if vw == nil {
			if vw, err = dataset.NewVersionWriter(bw, it.Meta); err != nil {
				return 0, err
			}
		}
		if err := vw.Write(it.Example); err != nil {
			return 0, fmt.Errorf("%w: row %d from the server: %v", dataset.ErrCorrupt, it.Pos.Offset, err)
		}
	}
	if vw == nil {
		return 0, fmt.Errorf("%w: the server sent no examples", ErrStream)
	}
	if err := vw.Close(); err != nil {
		return 0, fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := bw.Flush(); err != nil {
		return 0, fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		return 0, fmt.Errorf("sync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return 0, fmt.Errorf("close %s: %w", tmp, err)
	}
	if size, err = verifyFile(ctx, tmp, id); err != nil {
		return 0, fmt.Errorf("downloaded file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return 0, fmt.Errorf("cache: %w", err)
	}
	if err := durable.SyncDir(dir); err != nil {
		return 0, fmt.Errorf("cache: %w", err)
	}
	return size, nil
}

// verifyFile opens the version file at path and checks that every example
// is valid and the content digest equals id. It returns the file's size, an
// error wrapping fs.ErrNotExist if there is no file, or one wrapping
// dataset.ErrCorrupt that says what is wrong.
func verifyFile(ctx context.Context, path, id string) (int64, error) {
	st, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	v, err := dataset.OpenVersionFile(path)
	if err != nil {
		if !errors.Is(err, dataset.ErrCorrupt) {
			err = fmt.Errorf("%w: %w", dataset.ErrCorrupt, err)
		}
		return 0, err
	}
	defer v.Close()
	meta := v.Meta()
	d := dataset.NewDigester(meta)
	for i := range v.Len() {
		if i%64 == 0 && ctx.Err() != nil {
			return 0, ctx.Err()
		}
		e := v.Example(i)
		if err := e.Validate(meta); err != nil {
			return 0, fmt.Errorf("verify %s: %w: %v", path, dataset.ErrCorrupt, err)
		}
		d.Add(e)
	}
	if got := d.Sum(); got != id {
		return 0, fmt.Errorf("verify %s: %w: content digest %s, want %s", path, dataset.ErrCorrupt, got, id)
	}
	return st.Size(), nil
}
