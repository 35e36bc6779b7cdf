package main

import (
	"bytes"
	"encoding/json"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/trainctl/trainctl/dataset"
)

// dsRun runs `trainctl --data-dir dir args...` in-process and returns what
// it wrote to stdout and stderr.
func dsRun(t *testing.T, dir string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	app := newApp()
	app.Writer = &out
	app.ErrWriter = &out
	err := app.Run(append([]string{"trainctl", "--data-dir", dir}, args...))
	return out.String(), err
}

func mustRun(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, err := dsRun(t, dir, args...)
	if err != nil {
		t.Fatalf("trainctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func TestDatasetCommands(t *testing.T) {
	dir := t.TempDir()
	gen := []string{"dataset", "gen", "--name", "shapes", "--n", "6", "--size", "32", "--seed", "1"}

	out := mustRun(t, dir, gen...)
	if !strings.Contains(out, "created shapes@v1") || !strings.Contains(out, "6 examples") {
		t.Fatalf("gen output: %q", out)
	}
	if out := mustRun(t, dir, gen...); !strings.Contains(out, "unchanged, same content as shapes@v1") {
		t.Fatalf("second gen output: %q", out)
	}
	gen[len(gen)-1] = "2"
	out = mustRun(t, dir, append([]string{"-o", "json"}, gen...)...)
	var res struct {
		Created  bool
		Manifest dataset.Manifest
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || !res.Created || res.Manifest.Seq != 2 || res.Manifest.Parent == "" {
		t.Fatalf("gen -o json: %v %+v\n%s", err, res, out)
	}

	out = mustRun(t, dir, "dataset", "ls")
	for _, want := range []string{"NAME", "shapes", "v1", "v2", "gen shapes seed=2"} {
		if !strings.Contains(out, want) {
			t.Fatalf("ls lacks %q:\n%s", want, out)
		}
	}
	var ms []dataset.Manifest
	if err := json.Unmarshal([]byte(mustRun(t, dir, "-o", "json", "dataset", "ls")), &ms); err != nil || len(ms) != 2 {
		t.Fatalf("ls -o json: %v %d", err, len(ms))
	}

	out = mustRun(t, dir, "dataset", "show", "shapes@v1")
	for _, want := range []string{"dataset   shapes@v1", "parent    none (first version)", "seed         1", "0 pet", "2 border", "sha256 " + ms[0].FileSHA256} {
		if !strings.Contains(out, want) {
			t.Fatalf("show lacks %q:\n%s", want, out)
		}
	}
	out = mustRun(t, dir, "dataset", "show", "shapes@"+ms[1].ID[:8])
	if !strings.Contains(out, "parent    "+ms[0].ID) {
		t.Fatalf("show v2 by id prefix:\n%s", out)
	}

	if out := mustRun(t, dir, "dataset", "verify", "shapes@v1", "shapes"); strings.Count(out, " ok") != 2 {
		t.Fatalf("verify output: %q", out)
	}
	// Damage v1's file: verify fails and says why.
	obj := filepath.Join(dataset.StoreDir(dir), "objects", ms[0].ID+".arrow")
	data, err := os.ReadFile(obj)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0xff
	if err := os.WriteFile(obj, data, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = dsRun(t, dir, "dataset", "verify", "shapes@v1", "shapes@v2")
	if err == nil || !strings.Contains(err.Error(), "1 of 2 version(s) failed") || !strings.Contains(err.Error(), "file SHA-256 is") || !strings.Contains(out, "FAILED") {
		t.Fatalf("verify of a damaged file: %v\n%s", err, out)
	}

	if out := mustRun(t, dir, "dataset", "rm", "shapes@v1"); !strings.Contains(out, "removed shapes@v1") {
		t.Fatalf("rm output %q", out)
	}
	if _, err := os.Stat(obj); !os.IsNotExist(err) {
		t.Fatalf("object of removed version still there: %v", err)
	}
	_, err = dsRun(t, dir, "dataset", "show", "shapes@v1")
	if err == nil || !strings.Contains(err.Error(), "versions: v2") {
		t.Fatalf("show removed version: %v", err)
	}
	mustRun(t, dir, "dataset", "rm", "--all", "shapes")
	if out := mustRun(t, dir, "dataset", "ls"); strings.Contains(out, "shapes") {
		t.Fatalf("ls after rm --all:\n%s", out)
	}
}

func TestDatasetIngestCommand(t *testing.T) {
	root := t.TempDir()
	imgs, masks := filepath.Join(root, "img"), filepath.Join(root, "lbl")
	for _, d := range []string{imgs, masks} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for i, id := range []string{"a", "b", "c"} {
		img := image.NewRGBA(image.Rect(0, 0, 20, 20))
		for p := range img.Pix {
			img.Pix[p] = byte(60 * i)
		}
		var jb, mb bytes.Buffer
		jpeg.Encode(&jb, img, nil)
		mask := image.NewGray(image.Rect(0, 0, 20, 20))
		mask.SetGray(3, 3, color.Gray{Y: 1})
		png.Encode(&mb, mask)
		os.WriteFile(filepath.Join(imgs, id+".jpg"), jb.Bytes(), 0o644)
		os.WriteFile(filepath.Join(masks, id+".png"), mb.Bytes(), 0o644)
	}
	os.WriteFile(filepath.Join(imgs, "d.jpg"), []byte("junk"), 0o644)
	os.WriteFile(filepath.Join(masks, "d.png"), []byte("junk"), 0o644)
	dir := t.TempDir()
	args := []string{"dataset", "ingest", "--name", "cells", "--images", imgs, "--masks", masks, "--size", "16", "--classes", "cell,bg"}

	_, err := dsRun(t, dir, args...)
	if err == nil || !strings.Contains(err.Error(), filepath.Join(imgs, "d.jpg")+": not a JPEG") || !strings.Contains(err.Error(), "--skip-bad") {
		t.Fatalf("ingest with a bad file: %v", err)
	}
	if out := mustRun(t, dir, "dataset", "ls"); strings.Contains(out, "cells") {
		t.Fatalf("a failed ingest registered something:\n%s", out)
	}
	out := mustRun(t, dir, append(args, "--skip-bad")...)
	if !strings.Contains(out, "created cells@v1") || !strings.Contains(out, "3 examples") || !strings.Contains(out, "skipped 2 bad file(s)") {
		t.Fatalf("ingest --skip-bad output:\n%s", out)
	}
	out = mustRun(t, dir, "dataset", "show", "cells")
	if !strings.Contains(out, "0 cell") || !strings.Contains(out, "d.jpg: not a JPEG") || !strings.Contains(out, "layout       folders") {
		t.Fatalf("show cells:\n%s", out)
	}
}

func TestDatasetCommandErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"dataset", "gen", "--n", "3"}, `"name" not set`},
		{[]string{"dataset", "gen", "--name", "Bad Name", "--n", "3"}, "dataset name"},
		{[]string{"dataset", "gen", "--name", "x", "--n", "0"}, "n=0"},
		{[]string{"dataset", "gen", "--name", "x", "--n", "3", "--kind", "mnist"}, "only generator is shapes"},
		{[]string{"dataset", "gen", "--name", "x", "--n", "3", "--val-fraction", "1.5"}, "--val-fraction 1.5"},
		{[]string{"dataset", "gen", "--name", "x", "--n", "3", "extra"}, "takes no arguments"},
		{[]string{"-o", "yaml", "dataset", "gen", "--name", "x", "--n", "3"}, `-o "yaml"`},
		{[]string{"dataset", "ingest", "--name", "x"}, "--layout oxford-pet ROOT, or --images DIR --masks DIR"},
		{[]string{"dataset", "ingest", "--name", "x", "/some/dir"}, "Say --layout oxford-pet /some/dir"},
		{[]string{"dataset", "ingest", "--name", "x", "--layout", "oxford-pet"}, "one ROOT argument, got 0"},
		{[]string{"dataset", "ingest", "--name", "x", "--layout", "oxford-pet", dir}, "does not exist"},
		{[]string{"dataset", "ingest", "--name", "x", "--images", dir}, "needs both --images DIR and --masks DIR"},
		{[]string{"dataset", "ingest", "--name", "x", "--layout", "coco", dir}, `--layout "coco"`},
		{[]string{"dataset", "show"}, "show wants one argument NAME[@VER], got 0"},
		{[]string{"dataset", "show", "nope"}, `dataset "nope": not found (there are none)`},
		{[]string{"dataset", "show", "nope@v0"}, "not v<N> with N >= 1"},
		{[]string{"dataset", "verify"}, "at least one NAME[@VER]"},
		{[]string{"dataset", "rm", "nope"}, "not found"},
		{[]string{"dataset", "rm", "--all", "x@v1"}, "takes a NAME, not a version"},
		{[]string{"dataset", "ls", "a", "b"}, "at most one NAME"},
		{[]string{"dataset", "ingest", "--name", "x", "--layout", "oxford-pet", dir, "--skip-bad"}, "flag --skip-bad must come before the arguments"},
		{[]string{"dataset", "show", "x", "-o", "json"}, "flag -o must come before the arguments"},
	}
	for _, tt := range tests {
		out, err := dsRun(t, dir, tt.args...)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("trainctl %s: error %v, want %q\n%s", strings.Join(tt.args, " "), err, tt.want, out)
		}
	}
}
