package durable

import (
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
