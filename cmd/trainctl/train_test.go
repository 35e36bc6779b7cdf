package main

import (
	"bytes"
	"context"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/trainctl/trainctl/dataset"
	"github.com/trainctl/trainctl/trainer"
)

// genShapes registers n generated size×size shapes examples as name in the
// data directory's store.
func genShapes(t *testing.T, dataDir, name string, n, size int) dataset.Manifest {
	t.Helper()
	store, err := dataset.OpenStore(dataset.StoreDir(dataDir))
	if err != nil {
		t.Fatal(err)
	}
	cfg := dataset.ShapesConfig{N: n, Size: size, Seed: 5, Workers: 1}
	ctx := context.Background()
	m, _, err := store.Register(ctx, name, cfg.Meta(), func(yield func(dataset.Example) error) (dataset.Provenance, error) {
		return dataset.Provenance{Source: cfg.Source()}, dataset.GenerateShapes(ctx, cfg, yield)
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// runApp runs trainctl in-process with args after the global --data-dir and
// returns its standard output and error.
func runApp(t *testing.T, dataDir string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	app := newApp()
	app.Writer = &out
	app.ErrWriter = &out
	err := app.Run(append([]string{"trainctl", "--data-dir", dataDir}, args...))
	return out.String(), err
}

func TestTrainEvalPredictCommands(t *testing.T) {
	dir := t.TempDir()
	man := genShapes(t, dir, "shapes", 20, 16) // 16 train, 4 val
	ckDir := filepath.Join(dir, "runs", "shapes")
	latest := filepath.Join(ckDir, trainer.LatestCheckpoint)

	// An interrupted run (max steps), then resumed to the end.
	out, err := runApp(t, dir, "train", "--dataset", "shapes", "--epochs", "2", "--batch", "4", "--threads", "2", "--max-steps", "3")
	if err != nil {
		t.Fatalf("train: %v\n%s", err, out)
	}
	for _, want := range []string{"training on shapes@v1", "stop", "max-steps", "val mIoU", latest} {
		if !strings.Contains(out, want) {
			t.Fatalf("train output lacks %q:\n%s", want, out)
		}
	}
	out, err = runApp(t, dir, "-o", "json", "train", "--dataset", "shapes@v1", "--epochs", "2", "--threads", "2", "--resume", "auto")
	if err != nil {
		t.Fatalf("resume: %v\n%s", err, out)
	}
	if !strings.Contains(out, "resuming from "+latest+": step 3") || !strings.Contains(out, "epoch 2 done at step 8") {
		t.Fatalf("resume output:\n%s", out)
	}
	var sum struct {
		Dataset string
		Step    int64
		Stop    string
		Hyper   trainer.Hyperparams
		Val     trainer.Metrics
	}
	if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &sum); err != nil {
		t.Fatalf("json summary: %v\n%s", err, out)
	}
	if sum.Step != 8 || sum.Stop != trainer.StopEpochs || sum.Hyper.Batch != 4 || sum.Dataset != "shapes@v1" || sum.Val.Examples != 4 {
		t.Fatalf("summary %+v", sum)
	}

	// eval reproduces the final validation metrics of training.
	out, err = runApp(t, dir, "-o", "json", "eval", "--checkpoint", latest, "--threads", "1")
	if err != nil {
		t.Fatalf("eval: %v\n%s", err, out)
	}
	var ev struct {
		DatasetID string  `json:"dataset_id"`
		MeanIoU   float64 `json:"mean_iou"`
		Loss      float64 `json:"loss"`
		Step      int64   `json:"step"`
	}
	if err := json.Unmarshal([]byte(out), &ev); err != nil {
		t.Fatal(err)
	}
	if ev.DatasetID != man.ID || ev.MeanIoU != sum.Val.MeanIoU || ev.Loss != sum.Val.Loss || ev.Step != 8 {
		t.Fatalf("eval %+v, training's val %+v", ev, sum.Val)
	}
	out, err = runApp(t, dir, "eval", "--checkpoint", latest, "--dataset", "shapes", "--split", "train")
	if err != nil || !strings.Contains(out, "split train, 16 examples") || !strings.Contains(out, "IoU border") {
		t.Fatalf("eval table: %v\n%s", err, out)
	}

	// predict: masks at each image's own size, pixel values class indices.
	imgDir := t.TempDir()
	var paths []string
	for i, sz := range []image.Point{{40, 24}, {16, 16}} {
		img := image.NewRGBA(image.Rect(0, 0, sz.X, sz.Y))
		for y := 0; y < sz.Y; y++ {
			for x := 0; x < sz.X; x++ {
				img.Set(x, y, color.RGBA{uint8(x * 6), uint8(y * 9), 128, 255})
			}
		}
		p := filepath.Join(imgDir, []string{"a.png", "b.png"}[i])
		f, _ := os.Create(p)
		if err := png.Encode(f, img); err != nil {
			t.Fatal(err)
		}
		f.Close()
		paths = append(paths, p)
	}
	outDir := filepath.Join(t.TempDir(), "masks")
	out, err = runApp(t, dir, append([]string{"predict", "--checkpoint", latest, "--out", outDir}, paths...)...)
	if err != nil {
		t.Fatalf("predict: %v\n%s", err, out)
	}
	for i, want := range []image.Point{{40, 24}, {16, 16}} {
		f, err := os.Open(filepath.Join(outDir, []string{"a.png", "b.png"}[i]))
		if err != nil {
			t.Fatal(err)
		}
		m, err := png.Decode(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		pm, ok := m.(*image.Paletted)
		if !ok || m.Bounds().Size() != want {
			t.Fatalf("mask %d: %T %v, want paletted %v", i, m, m.Bounds(), want)
		}
		for _, v := range pm.Pix {
			if v > 2 {
				t.Fatalf("mask %d holds class %d", i, v)
			}
		}
	}
}

func TestTrainCommandErrors(t *testing.T) {
	dir := t.TempDir()
	genShapes(t, dir, "small", 10, 16)
	genShapes(t, dir, "big", 10, 32)
	genShapes(t, dir, "odd", 10, 24)
	out, err := runApp(t, dir, "train", "--dataset", "small", "--epochs", "1", "--batch", "8", "--threads", "1")
	if err != nil {
		t.Fatalf("train: %v\n%s", err, out)
	}
	ck := filepath.Join(dir, "runs", "small", trainer.LatestCheckpoint)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"missing checkpoint", []string{"eval", "--checkpoint", filepath.Join(dir, "nope.ckpt")}, "no such file"},
		{"geometry mismatch", []string{"eval", "--checkpoint", ck, "--dataset", "big"}, "dataset does not match the model"},
		{"unknown dataset", []string{"train", "--dataset", "nope"}, "not found"},
		{"size not a multiple of 16", []string{"train", "--dataset", "odd"}, "multiples of 16"},
		{"missing resume file", []string{"train", "--dataset", "small", "--resume", filepath.Join(dir, "x.ckpt")}, "no such checkpoint"},
		{"resume other dataset", []string{"train", "--dataset", "big", "--resume", ck}, "cannot resume"},
		{"resume other batch", []string{"train", "--dataset", "small", "--resume", ck, "--batch", "2"}, "batch"},
		{"bad optimizer", []string{"train", "--dataset", "small", "--optimizer", "rmsprop"}, "rmsprop"},
		{"no images", []string{"predict", "--checkpoint", ck, "--out", dir}, "no images"},
		{"corrupt checkpoint", []string{"eval", "--checkpoint", filepath.Join(dir, "datasets")}, "corrupt checkpoint"},
		{"bad split", []string{"eval", "--checkpoint", ck, "--split", "test"}, "--split"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := runApp(t, dir, tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to mention %q\n%s", err, tt.want, out)
			}
		})
	}
}
