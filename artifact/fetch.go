package artifact

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/trainctl/trainctl/internal/durable"
)

// FetchFile makes path hold blob digest: a file already there with that
// digest is kept; otherwise the blob is downloaded from the first of peers
// that serves it, verified against digest, and renamed into place, so path
// never holds a partial or wrong blob. Workers use it for the checkpoint
// they resume from, serving for the checkpoint it serves.
func (c *Client) FetchFile(ctx context.Context, peers []string, digest, path string) error {
	if _, err := ParseDigest(digest); err != nil {
		return err
	}
	if got, _, err := FileDigest(path); err == nil && got == digest {
		return nil
	}
	if len(peers) == 0 {
		return fmt.Errorf("fetch blob %s: no peers to fetch from", ShortDigest(digest))
	}
	var errs []error
	for _, peer := range peers {
		err := c.fetchFrom(ctx, peer, digest, path)
		if err == nil {
			return nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return fmt.Errorf("fetch blob %s: %w", ShortDigest(digest), errors.Join(errs...))
}

// fetchFrom downloads one blob from peer into path, verifying it.
func (c *Client) fetchFrom(ctx context.Context, peer, digest, path string) error {
	rc, _, err := c.Get(ctx, peer, digest)
	if err != nil {
		return err
	}
	defer rc.Close()
	f, err := os.CreateTemp(filepath.Dir(path), ".fetch-*")
	if err != nil {
		return fmt.Errorf("get blob %s from %s: %w", ShortDigest(digest), peer, err)
	}
	defer os.Remove(f.Name())
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(f, h), rc)
	if err == nil {
		err = f.Sync() // the bytes are on disk before the name is
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("get blob %s from %s: %w", ShortDigest(digest), peer, err)
	}
	if got := DigestPrefix + hex.EncodeToString(h.Sum(nil)); got != digest {
		return fmt.Errorf("get blob %s from %s: %w: got %s", ShortDigest(digest), peer, ErrDigestMismatch, ShortDigest(got))
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("get blob %s from %s: %w", ShortDigest(digest), peer, err)
	}
	return nil
}

// FileDigest returns the digest ("sha256:" and 64 hex digits) and size of
// the file at path.
func FileDigest(path string) (string, int64, error) {
	sum, n, err := durable.FileSHA256(path)
	if err != nil {
		return "", 0, err
	}
	return DigestPrefix + sum, n, nil
}
