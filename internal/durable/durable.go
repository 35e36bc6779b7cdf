// Package durable writes files so that a crash leaves either the old state
// or the new one, never half of a file: content goes to a temporary file
// that is fsynced and renamed into place, and the directory is fsynced after
// the rename. Temporary files live in a TempDir, where each is held under an
// advisory lock while it is written, so a process opening the directory can
// remove the leftovers of a crashed writer without touching a live one's.
//
// The dataset store, the artifact store, the Flight cache and checkpoints
// all write through it, and FileSHA256 is the digest by which the dataset
// and artifact stores check and name the files they keep.
package durable

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// SyncDir fsyncs a directory, making the renames and creations in it
// durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// TempDir is a directory of temporary files, each locked by its writer.
type TempDir struct {
	dir string
}

// OpenTempDir creates dir if needed and removes the temporary files in it
// that no live writer holds (left by a crash). It returns the paths it
// removed, so the caller can log them.
func OpenTempDir(dir string) (*TempDir, []string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, err
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, err
	}
	var removed []string
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return nil, removed, err
		}
		if Lock(f, true, false) == nil {
			if err := os.Remove(p); err == nil {
				removed = append(removed, p)
			}
		}
		f.Close()
	}
	return &TempDir{dir: dir}, removed, nil
}

// Dir is the directory's path.
func (t *TempDir) Dir() string { return t.dir }

// Create creates a temporary file named by pattern (as os.CreateTemp) and
// locks it, so OpenTempDir in another process leaves it alone while it is
// written. The caller closes and removes or renames it.
func (t *TempDir) Create(pattern string) (*os.File, error) {
	f, err := os.CreateTemp(t.dir, pattern)
	if err != nil {
		return nil, err
	}
	if err := Lock(f, true, true); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, fmt.Errorf("lock %s: %w", f.Name(), err)
	}
	return f, nil
}

// WriteFile writes data to path through a fsynced temporary file in t, a
// rename and a fsync of path's directory. t must be on path's filesystem.
func (t *TempDir) WriteFile(path string, data []byte) error {
	f, err := t.Create("file-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	return SyncDir(filepath.Dir(path))
}
