package durable

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestOpenTempDirRemovesOnlyAbandoned(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tmp")
	td, removed, err := OpenTempDir(dir)
	if err != nil || len(removed) != 0 {
		t.Fatalf("OpenTempDir on a new dir: removed %v, err %v", removed, err)
	}
	live, err := td.Create("live-*")
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	abandoned := filepath.Join(dir, "abandoned-1")
	if err := os.WriteFile(abandoned, []byte("half"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, removed, err = OpenTempDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 1 || removed[0] != abandoned {
		t.Fatalf("removed %v, want only %s", removed, abandoned)
	}
	if _, err := os.Stat(live.Name()); err != nil {
		t.Fatalf("a locked temporary file was removed: %v", err)
	}
}

func TestWriteFile(t *testing.T) {
	root := t.TempDir()
	td, _, err := OpenTempDir(filepath.Join(root, "tmp"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(root, "out.json")
	for _, content := range []string{"first", "second, longer"} {
		if err := td.WriteFile(path, []byte(content)); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != content {
			t.Fatalf("read back %q, %v; want %q", got, err, content)
		}
	}
	left, err := os.ReadDir(td.Dir())
	if err != nil || len(left) != 0 {
		t.Fatalf("temporary files left behind: %v (%v)", left, err)
	}
	if err := td.WriteFile(filepath.Join(root, "missing", "x"), []byte("x")); err == nil {
		t.Fatal("WriteFile into a missing directory succeeded")
	}
}

func TestFileSHA256(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		content []byte // nil: no file
		want    string
	}{
		{"empty", []byte{}, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
		{"abc", []byte("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
		{"missing", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, tt.name)
			if tt.content != nil {
				if err := os.WriteFile(path, tt.content, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			sum, size, err := FileSHA256(path)
			if tt.content == nil {
				if !errors.Is(err, fs.ErrNotExist) {
					t.Fatalf("FileSHA256 of a missing file: %q, %d, %v; want fs.ErrNotExist", sum, size, err)
				}
				return
			}
			if err != nil || sum != tt.want || size != int64(len(tt.content)) {
				t.Fatalf("FileSHA256 = %q, %d, %v; want %q, %d", sum, size, err, tt.want, len(tt.content))
			}
		})
	}
}
