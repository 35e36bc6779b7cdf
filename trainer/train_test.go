package trainer

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/color"
	"math"
	"path/filepath"
	"testing"

	"github.com/trainctl/trainctl/dataset"
	"github.com/trainctl/trainctl/trainer/optim"
	"github.com/trainctl/trainctl/trainer/unet"
)

// tinyModel is a two-level UNet small enough for unit tests.
func tinyModel() unet.Config {
	return unet.Config{InChannels: 3, Classes: 3, Height: 16, Width: 16, Widths: []int{4, 8}, Bottleneck: 8}
}

// shapesVersion registers n generated 16×16 shapes examples in a temporary
// store and opens the version.
func shapesVersion(t testing.TB, n int, seed uint64) (*dataset.Version, dataset.Manifest) {
	t.Helper()
	store, err := dataset.OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg := dataset.ShapesConfig{N: n, Size: 16, Seed: seed, Workers: 1}
	ctx := context.Background()
	if _, _, err := store.Register(ctx, "shapes", cfg.Meta(), func(yield func(dataset.Example) error) (dataset.Provenance, error) {
		return dataset.Provenance{Source: cfg.Source()}, dataset.GenerateShapes(ctx, cfg, yield)
	}); err != nil {
		t.Fatal(err)
	}
	v, m, err := store.Open("shapes")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	return v, m
}

func baseConfig(m dataset.Manifest) TrainConfig {
	return TrainConfig{
		Model:          tinyModel(),
		Optimizer:      optim.Config{Kind: optim.Adam, LR: 1e-2},
		Batch:          4,
		Epochs:         2,
		Seed:           3,
		Flip:           true,
		Threads:        2,
		Dataset:        m.Name,
		DatasetVersion: m.ID,
	}
}

// TestTrainResumeBitIdentical interrupts a run (by MaxSteps, or by
// canceling its context), resumes it from the checkpoint it left, and checks
// that the final weights, optimizer state and RNG are bit-identical to a run
// that was never interrupted.
func TestTrainResumeBitIdentical(t *testing.T) {
	v, man := shapesVersion(t, 24, 1) // 19 train: 5 steps per epoch, the last of 3
	ctx := context.Background()

	fullDir := t.TempDir()
	full := baseConfig(man)
	full.CheckpointDir = fullDir
	fullRes, err := Train(ctx, v, full)
	if err != nil {
		t.Fatal(err)
	}
	if fullRes.Stop != StopEpochs || fullRes.Step != 10 || len(fullRes.Epochs) != 2 {
		t.Fatalf("full run: stop %s step %d epochs %d, want epochs/10/2", fullRes.Stop, fullRes.Step, len(fullRes.Epochs))
	}
	want, err := ReadCheckpoint(filepath.Join(fullDir, LatestCheckpoint))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(f32bytes(want.Params), f32bytes(fullRes.Weights)) {
		t.Fatal("final checkpoint weights differ from Result.Weights")
	}

	tests := []struct {
		name          string
		stopAt        int64 // interrupt after this many steps
		cancel        bool  // by canceling the context instead of MaxSteps
		resumeThreads int
	}{
		{name: "mid-epoch max-steps", stopAt: 3},
		{name: "mid-epoch cancel", stopAt: 7, cancel: true},
		{name: "epoch boundary", stopAt: 5},
		{name: "after last partial batch cancel", stopAt: 5, cancel: true},
		{name: "resume with other thread count", stopAt: 2, resumeThreads: 1},
		{name: "twice", stopAt: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := baseConfig(man)
			cfg.CheckpointDir = dir
			runCtx, cancel := context.WithCancel(ctx)
			defer cancel()
			if tt.cancel {
				cfg.OnStep = func(p Progress) {
					if p.Step == tt.stopAt {
						cancel()
					}
				}
			} else {
				cfg.MaxSteps = tt.stopAt
			}
			res, err := Train(runCtx, v, cfg)
			if tt.cancel {
				if !errors.Is(err, context.Canceled) || res.Stop != StopCanceled {
					t.Fatalf("interrupted run: stop %q err %v, want canceled", res.Stop, err)
				}
			} else if err != nil || res.Stop != StopMaxSteps {
				t.Fatalf("interrupted run: stop %q err %v", res.Stop, err)
			}
			if res.Step != tt.stopAt {
				t.Fatalf("interrupted at step %d, want %d", res.Step, tt.stopAt)
			}
			ck, err := ReadCheckpoint(filepath.Join(dir, LatestCheckpoint))
			if err != nil {
				t.Fatal(err)
			}
			if ck.Step != tt.stopAt {
				t.Fatalf("checkpoint step %d, want %d", ck.Step, tt.stopAt)
			}
			if tt.name == "twice" {
				// Interrupt the resumed run once more, at step 6.
				c2 := TrainConfig{Resume: ck, CheckpointDir: dir, MaxSteps: 6, Threads: 2, DatasetVersion: man.ID, Epochs: 2}
				if _, err := Train(ctx, v, c2); err != nil {
					t.Fatal(err)
				}
				if ck, err = ReadCheckpoint(filepath.Join(dir, LatestCheckpoint)); err != nil || ck.Step != 6 {
					t.Fatalf("second checkpoint: %v step %v", err, ck)
				}
			}
			// Resume with only the run-level settings: the checkpoint
			// supplies the model and hyperparameters.
			rc := TrainConfig{Resume: ck, CheckpointDir: dir, Threads: 2, DatasetVersion: man.ID}
			if tt.resumeThreads > 0 {
				rc.Threads = tt.resumeThreads
			}
			rres, err := Train(ctx, v, rc)
			if err != nil {
				t.Fatal(err)
			}
			if rres.Step != 10 || rres.Steps != 10-ck.Step || rres.Stop != StopEpochs {
				t.Fatalf("resumed run: step %d steps %d stop %s", rres.Step, rres.Steps, rres.Stop)
			}
			got, err := ReadCheckpoint(filepath.Join(dir, LatestCheckpoint))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(f32bytes(got.Params), f32bytes(want.Params)) {
				t.Fatal("resumed weights differ from the uninterrupted run")
			}
			if !bytes.Equal(got.Optimizer, want.Optimizer) || !bytes.Equal(got.RNG, want.RNG) || got.Position != want.Position {
				t.Fatal("resumed optimizer state, RNG or position differ from the uninterrupted run")
			}
			if got.Val.MeanIoU != want.Val.MeanIoU || got.Val.Loss != want.Val.Loss {
				t.Fatalf("val metrics differ: %+v vs %+v", got.Val, want.Val)
			}
		})
	}
}

func f32bytes(p []float32) []byte {
	b := make([]byte, 0, 4*len(p))
	for _, v := range p {
		u := math.Float32bits(v)
		b = append(b, byte(u), byte(u>>8), byte(u>>16), byte(u>>24))
	}
	return b
}

// TestTrainLearns checks that training lowers the loss and that progress,
// epoch and checkpoint callbacks report what happened.
func TestTrainLearns(t *testing.T) {
	v, man := shapesVersion(t, 40, 2) // 32 train, 8 val
	cfg := baseConfig(man)
	cfg.Model = unet.Config{InChannels: 3, Classes: 3, Height: 16, Width: 16, Widths: []int{8, 16}, Bottleneck: 16}
	cfg.Epochs = 6
	cfg.Flip = false
	cfg.CheckpointDir = t.TempDir()
	cfg.CheckpointEvery = 3
	var steps []Progress
	var epochs []EpochReport
	var saved []int64
	var savedEpochs []int
	cfg.OnStep = func(p Progress) { steps = append(steps, p) }
	cfg.OnEpoch = func(r EpochReport) { epochs = append(epochs, r) }
	cfg.OnCheckpoint = func(path string, step int64, epoch int) {
		if filepath.Base(path) == LatestCheckpoint {
			saved = append(saved, step)
			savedEpochs = append(savedEpochs, epoch)
		}
	}
	res, err := Train(context.Background(), v, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(steps) != 48 || len(epochs) != 6 {
		t.Fatalf("%d steps and %d epoch reports, want 48 and 6", len(steps), len(epochs))
	}
	last := steps[len(steps)-1]
	if last.Step != 48 || last.Epoch != 5 || last.EpochStep != 8 || last.StepsPerEpoch != 8 || last.TotalSteps != 48 || last.ETA < 0 || last.ETA > last.Elapsed || last.ImagesPerSec <= 0 {
		t.Fatalf("last progress %+v", last)
	}
	// Every 3 steps, and at each epoch end (every 8).
	wantSaved := []int64{3, 6, 8, 9, 12, 15, 16, 18, 21, 24, 27, 30, 32, 33, 36, 39, 40, 42, 45, 48}
	// Each checkpoint's epoch is that of its last step (8 steps an epoch).
	for i, step := range saved {
		if want := int((step - 1) / 8); i < len(savedEpochs) && savedEpochs[i] != want {
			t.Errorf("checkpoint at step %d reported epoch %d, want %d", step, savedEpochs[i], want)
		}
	}
	if !equalInts(saved, wantSaved) {
		t.Fatalf("checkpoints at steps %v, want %v", saved, wantSaved)
	}
	if first, lastE := epochs[0], epochs[5]; !(lastE.TrainLoss < 0.8*first.TrainLoss) || !(lastE.Val.Loss < first.Val.Loss) {
		t.Fatalf("loss did not fall: epoch 0 train %.4f val %.4f, epoch 5 train %.4f val %.4f",
			first.TrainLoss, first.Val.Loss, lastE.TrainLoss, lastE.Val.Loss)
	}
	if res.Val.PixelAccuracy < 0.5 || res.Val.Examples != 8 {
		t.Fatalf("final val %+v", res.Val)
	}
	best, err := ReadCheckpoint(res.BestCheckpoint)
	if err != nil {
		t.Fatal(err)
	}
	if best.Val == nil || best.Val.MeanIoU != res.BestMeanIoU {
		t.Fatalf("best checkpoint val %+v, best mIoU %v", best.Val, res.BestMeanIoU)
	}

	// A Predictor on the final checkpoint reproduces the final evaluation
	// exactly, and its masks agree with it.
	ck, err := ReadCheckpoint(res.LastCheckpoint)
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewPredictor(ck, 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	m, err := p.Evaluate(context.Background(), v, dataset.SplitVal)
	if err != nil {
		t.Fatal(err)
	}
	if m.Loss != res.Val.Loss || m.MeanIoU != res.Val.MeanIoU || m.PixelAccuracy != res.Val.PixelAccuracy {
		t.Fatalf("Predictor.Evaluate %+v, training's final eval %+v", m, res.Val)
	}
	var imgs [][]byte
	conf := NewConfusion(3)
	rows := v.SplitIndices(dataset.SplitVal)
	for _, r := range rows {
		imgs = append(imgs, v.Example(r).Image)
	}
	masks, err := p.Predict(context.Background(), imgs)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range rows {
		if err := conf.Add(v.Example(r).Mask, masks[i]); err != nil {
			t.Fatal(err)
		}
	}
	if pm := conf.Metrics(); pm.PixelAccuracy != m.PixelAccuracy || pm.MeanIoU != m.MeanIoU {
		t.Fatalf("Predict masks give %+v, Evaluate %+v", pm, m)
	}
	// PredictImage on an upscaled example returns a mask of the image's size
	// whose downscaled view mostly matches the 16×16 prediction.
	e := v.Example(rows[0])
	big := image.NewNRGBA(image.Rect(0, 0, 48, 32))
	for y := 0; y < 32; y++ {
		for x := 0; x < 48; x++ {
			o := ((y/2)*16 + x/3) * 3
			big.SetNRGBA(x, y, color.NRGBA{e.Image[o], e.Image[o+1], e.Image[o+2], 255})
		}
	}
	mask, err := p.PredictImage(context.Background(), big)
	if err != nil || len(mask) != 48*32 {
		t.Fatalf("PredictImage: %d bytes, err %v", len(mask), err)
	}
}

func equalInts(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestTrainRejects(t *testing.T) {
	v, man := shapesVersion(t, 12, 1)
	ctx := context.Background()
	dir := t.TempDir()
	cfg := baseConfig(man)
	cfg.CheckpointDir = dir
	cfg.MaxSteps = 1
	cfg.SkipFinalEval = true
	if _, err := Train(ctx, v, cfg); err != nil {
		t.Fatal(err)
	}
	ck, err := ReadCheckpoint(filepath.Join(dir, LatestCheckpoint))
	if err != nil {
		t.Fatal(err)
	}
	other := tinyModel()
	other.Height, other.Width = 32, 32
	tests := []struct {
		name string
		cfg  TrainConfig
		want error
	}{
		{"model geometry", TrainConfig{Model: other}, ErrGeometry},
		{"classes", TrainConfig{Model: func() unet.Config { c := tinyModel(); c.Classes = 2; return c }()}, ErrGeometry},
		{"resume other dataset version", TrainConfig{Resume: ck, DatasetVersion: "ff" + man.ID[2:]}, ErrResume},
		{"resume other batch", TrainConfig{Resume: ck, Batch: 2}, ErrResume},
		{"resume other optimizer", TrainConfig{Resume: ck, Optimizer: optim.Config{Kind: optim.SGD, LR: 0.1}}, ErrResume},
		{"resume other seed", TrainConfig{Resume: ck, Seed: 99}, ErrResume},
		{"resume other model", TrainConfig{Resume: ck, Model: func() unet.Config { c := tinyModel(); c.Bottleneck = 4; return c }()}, ErrResume},
		{"resume damaged params", TrainConfig{Resume: func() *Checkpoint { c := *ck; c.Params = c.Params[1:]; return &c }()}, ErrResume},
		{"bad batch", TrainConfig{Model: tinyModel(), Batch: -1}, ErrTrainConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Threads = 1
			if _, err := Train(ctx, v, tt.cfg); !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
	// A diverging run stops with ErrDiverged.
	bad := baseConfig(man)
	bad.Optimizer = optim.Config{Kind: optim.SGD, LR: 1e30}
	bad.Threads = 1
	if _, err := Train(ctx, v, bad); !errors.Is(err, ErrDiverged) {
		t.Fatalf("huge lr: err = %v, want ErrDiverged", err)
	}
}
