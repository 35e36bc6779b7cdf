package main

import (
	"errors"
	"fmt"
	"image"
	"image/png"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/trainctl/trainctl/dataset"
	"github.com/trainctl/trainctl/trainer"
	"github.com/trainctl/trainctl/trainer/optim"
)

// trainCommands are `trainctl train`, `eval` and `predict`. Owned by the
// trainer work.
func trainCommands() []*cli.Command {
	return []*cli.Command{trainCommand(), evalCommand(), predictCommand()}
}

func threadsFlag() cli.Flag {
	return &cli.IntFlag{Name: "threads", Usage: "engine goroutines (results do not depend on it)", Value: runtime.GOMAXPROCS(0)}
}

func trainCommand() *cli.Command {
	return &cli.Command{
		Name:  "train",
		Usage: "train a UNet segmentation model on a dataset version",
		Description: "Trains UNet-S (docs/architecture.md), sized to the dataset's images and classes, on the train split,\n" +
			"evaluating on the val split after every epoch. Checkpoints go to --checkpoint-dir as\n" +
			"latest.ckpt (every --checkpoint-every steps, every epoch end, and on stop or Ctrl-C) and\n" +
			"best.ckpt (best val mean IoU). --resume auto continues from latest.ckpt there, bit-identically.\n" +
			"With --max-time and no --epochs, training runs until the time is up, then evaluates.\n" +
			"Images are scaled to [0,1] (value/255).",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "dataset", Aliases: []string{"d"}, Usage: "dataset `NAME[@VER]` to train on", Required: true},
			&cli.IntFlag{Name: "epochs", Usage: "passes over the train split", Value: 10},
			&cli.IntFlag{Name: "batch", Usage: "examples per step", Value: 8},
			&cli.Float64Flag{Name: "lr", Usage: "learning rate", Value: 1e-3},
			&cli.StringFlag{Name: "optimizer", Usage: "adam or sgd", Value: "adam"},
			&cli.Float64Flag{Name: "momentum", Usage: "SGD momentum", Value: 0.9},
			&cli.Float64Flag{Name: "weight-decay", Usage: "weight decay (decoupled for adam, L2 for sgd)"},
			&cli.Uint64Flag{Name: "seed", Usage: "seed of weight init, data order and augmentation", Value: 1},
			&cli.BoolFlag{Name: "flip", Usage: "augment with random horizontal flips"},
			&cli.StringFlag{Name: "checkpoint-dir", Usage: "`DIR` for latest.ckpt and best.ckpt (default DATA_DIR/runs/NAME)"},
			&cli.IntFlag{Name: "checkpoint-every", Usage: "also checkpoint every `N` steps (0: epoch ends only)"},
			&cli.StringFlag{Name: "resume", Usage: "continue from checkpoint `FILE`, or auto: latest.ckpt in --checkpoint-dir if present"},
			threadsFlag(),
			&cli.DurationFlag{Name: "max-time", Usage: "stop after this `DURATION` of training (then evaluate)"},
			&cli.Int64Flag{Name: "max-steps", Usage: "stop once the global step count reaches `N`"},
		},
		Action: runTrain,
	}
}

func runTrain(c *cli.Context) error {
	p, err := newPrinter(c)
	if err != nil {
		return err
	}
	store, err := dataset.OpenStore(dataset.StoreDir(dataDir(c)))
	if err != nil {
		return err
	}
	ref := c.String("dataset")
	v, man, err := store.Open(ref)
	if err != nil {
		return err
	}
	defer v.Close()

	cfg := trainer.TrainConfig{
		Epochs:          c.Int("epochs"),
		Batch:           c.Int("batch"),
		Seed:            c.Uint64("seed"),
		Flip:            c.Bool("flip"),
		Threads:         c.Int("threads"),
		CheckpointEvery: c.Int("checkpoint-every"),
		MaxSteps:        c.Int64("max-steps"),
		MaxTime:         c.Duration("max-time"),
		Dataset:         man.Name,
		DatasetVersion:  man.ID,
		CheckpointDir:   c.String("checkpoint-dir"),
	}
	if cfg.CheckpointDir == "" {
		cfg.CheckpointDir = filepath.Join(dataDir(c), "runs", man.Name)
	}
	if cfg.MaxTime > 0 && !c.IsSet("epochs") {
		cfg.Epochs = 0 // until the time is up
	}
	kind := optim.Kind(strings.ToLower(c.String("optimizer")))
	cfg.Optimizer = optim.Config{Kind: kind, LR: c.Float64("lr"), WeightDecay: c.Float64("weight-decay")}
	if kind == optim.SGD {
		cfg.Optimizer.Momentum = c.Float64("momentum")
	}
	if err := cfg.Optimizer.Validate(); err != nil {
		return err
	}
	meta := v.Meta()
	if err := checkTrainable(meta); err != nil {
		return fmt.Errorf("dataset %s: %w", man.Ref(), err)
	}

	out := c.App.Writer
	if p.JSON() {
		out = c.App.ErrWriter
	}
	if r := c.String("resume"); r != "" {
		ck, path, err := loadResume(r, cfg.CheckpointDir)
		if err != nil {
			return err
		}
		if ck != nil {
			// Hyperparameters come from the checkpoint unless given.
			if !c.IsSet("batch") {
				cfg.Batch = 0
			}
			if !c.IsSet("seed") {
				cfg.Seed = 0
			}
			if !c.IsSet("flip") {
				cfg.Flip = false
			}
			if !c.IsSet("optimizer") && !c.IsSet("lr") && !c.IsSet("momentum") && !c.IsSet("weight-decay") {
				cfg.Optimizer = optim.Config{}
			} else {
				cfg.Optimizer = withDefaults(cfg.Optimizer)
			}
			if !c.IsSet("epochs") && cfg.MaxTime == 0 {
				cfg.Epochs = ck.Hyper.Epochs
			}
			cfg.Resume = ck
			fmt.Fprintf(out, "resuming from %s: step %d, epoch %d, example %d\n", path, ck.Step, ck.Position.Epoch, ck.Position.Offset)
		} else {
			fmt.Fprintf(out, "no checkpoint in %s; starting from scratch\n", cfg.CheckpointDir)
		}
	}

	prog := newProgress(out, meta.Classes)
	cfg.OnStep = prog.step
	cfg.OnEpoch = prog.epoch
	fmt.Fprintf(out, "training on %s (%s): %d train / %d val examples, %dx%dx%d, %d classes; checkpoints in %s\n",
		man.Ref(), dataset.ShortID(man.ID), man.Counts[dataset.SplitTrain], man.Counts[dataset.SplitVal],
		meta.Width, meta.Height, meta.Channels, len(meta.Classes), cfg.CheckpointDir)
	res, err := trainer.Train(c.Context, v, cfg)
	prog.done()
	if err != nil {
		if errors.Is(err, c.Context.Err()) && res.LastCheckpoint != "" {
			return fmt.Errorf("interrupted at step %d; checkpoint %s; continue with: trainctl train --dataset %s --checkpoint-dir %s --resume auto",
				res.Step, res.LastCheckpoint, man.Ref(), cfg.CheckpointDir)
		}
		return err
	}
	summary := trainSummary{Dataset: man.Ref(), DatasetID: man.ID, Result: res, Classes: meta.Classes}
	rows := [][]string{
		{"dataset", man.Ref() + " (" + dataset.ShortID(man.ID) + ")"},
		{"stop", res.Stop},
		{"steps", fmt.Sprintf("%d (%d this run)", res.Step, res.Steps)},
		{"position", fmt.Sprintf("epoch %d, example %d", res.Position.Epoch, res.Position.Offset)},
		{"elapsed", res.Elapsed.Round(time.Second).String()},
		{"images/s", fmt.Sprintf("%.2f", res.ImagesPerSec)},
		{"train loss", fmt.Sprintf("%.4f", res.TrainLoss)},
	}
	rows = append(rows, metricRows("val ", res.Val, meta.Classes)...)
	rows = append(rows, []string{"checkpoint", res.LastCheckpoint}, []string{"best checkpoint", res.BestCheckpoint})
	return p.Result(summary, []string{"SUMMARY", ""}, rows)
}

// trainSummary is `train -o json` output.
type trainSummary struct {
	Dataset   string   `json:"dataset"`
	DatasetID string   `json:"dataset_id"`
	Classes   []string `json:"classes"`
	trainer.Result
}

// withDefaults fills the Adam constants the way optim.New will, so a config
// given on the command line compares equal to the one a checkpoint stores.
func withDefaults(c optim.Config) optim.Config {
	if c.Kind == optim.Adam {
		d := optim.DefaultConfig()
		c.Beta1, c.Beta2, c.Eps = d.Beta1, d.Beta2, d.Eps
	}
	return c
}

// checkTrainable reports whether UNet-S can take the dataset's images: sides
// must be multiples of 16 (four 2×2 poolings).
func checkTrainable(m dataset.Meta) error {
	if m.Height%16 != 0 || m.Width%16 != 0 {
		return fmt.Errorf("%w: images are %dx%d; UNet-S needs sides that are multiples of 16", trainer.ErrGeometry, m.Width, m.Height)
	}
	return nil
}

// loadResume reads the checkpoint --resume names. "auto" means latest.ckpt
// in dir when it exists (nil, not an error, when it does not).
func loadResume(arg, dir string) (*trainer.Checkpoint, string, error) {
	path := arg
	if arg == "auto" {
		path = filepath.Join(dir, trainer.LatestCheckpoint)
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			return nil, "", nil
		}
	}
	ck, err := trainer.ReadCheckpoint(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, "", fmt.Errorf("--resume %s: no such checkpoint", path)
		}
		return nil, "", err
	}
	return ck, path, nil
}

// metricRows formats metrics as table rows.
func metricRows(prefix string, m trainer.Metrics, classes []string) [][]string {
	rows := [][]string{
		{prefix + "loss", fmt.Sprintf("%.4f", m.Loss)},
		{prefix + "pixel accuracy", fmt.Sprintf("%.4f", m.PixelAccuracy)},
		{prefix + "mIoU", fmt.Sprintf("%.4f", m.MeanIoU)},
	}
	for k, iou := range m.IoU {
		name := strconv.Itoa(k)
		if k < len(classes) {
			name = classes[k]
		}
		val := fmt.Sprintf("%.4f", iou)
		if k < len(m.Present) && !m.Present[k] {
			val = "- (absent)"
		}
		rows = append(rows, []string{prefix + "IoU " + name, val})
	}
	return rows
}

// progress prints training progress: one refreshing line on a terminal,
// plain lines (at most one per progressEvery) otherwise, and a line per epoch.
type progress struct {
	w       io.Writer
	tty     bool
	classes []string
	last    time.Time
	open    bool // a refreshing line is on screen
}

const progressEvery = 10 * time.Second

func newProgress(w io.Writer, classes []string) *progress {
	tty := false
	if f, ok := w.(*os.File); ok {
		tty = term.IsTerminal(int(f.Fd()))
	}
	return &progress{w: w, tty: tty, classes: classes}
}

func (p *progress) line(s trainer.Progress) string {
	epochs := "?"
	if s.Epochs > 0 {
		epochs = strconv.Itoa(s.Epochs)
	}
	total := ""
	if s.TotalSteps > 0 {
		total = "/" + strconv.FormatInt(s.TotalSteps, 10)
	}
	eta := "?"
	if s.ETA >= 0 {
		eta = s.ETA.Round(time.Second).String()
	}
	return fmt.Sprintf("epoch %d/%s  step %d%s  loss %.4f (epoch avg %.4f)  %.1f img/s  ETA %s",
		s.Epoch+1, epochs, s.Step, total, s.Loss, s.EpochLoss, s.ImagesPerSec, eta)
}

func (p *progress) step(s trainer.Progress) {
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s", p.line(s))
		p.open = true
		return
	}
	if now := time.Now(); p.last.IsZero() || now.Sub(p.last) >= progressEvery {
		p.last = now
		fmt.Fprintln(p.w, p.line(s))
	}
}

func (p *progress) epoch(r trainer.EpochReport) {
	p.done()
	var ious []string
	for k, v := range r.Val.IoU {
		if k < len(r.Val.Present) && r.Val.Present[k] && k < len(p.classes) {
			ious = append(ious, fmt.Sprintf("%s %.3f", p.classes[k], v))
		}
	}
	fmt.Fprintf(p.w, "epoch %d done at step %d: train loss %.4f  val loss %.4f  pixel acc %.4f  mIoU %.4f  (%s)\n",
		r.Epoch+1, r.Step, r.TrainLoss, r.Val.Loss, r.Val.PixelAccuracy, r.Val.MeanIoU, strings.Join(ious, ", "))
}

// done ends a refreshing line.
func (p *progress) done() {
	if p.open {
		fmt.Fprintln(p.w)
		p.open = false
	}
}

func evalCommand() *cli.Command {
	return &cli.Command{
		Name:      "eval",
		Usage:     "evaluate a checkpoint on a dataset split",
		ArgsUsage: " ",
		Description: "Prints loss (mean per-pixel cross-entropy), pixel accuracy, per-class IoU and mean IoU.\n" +
			"Classes absent from both truth and prediction are shown as absent and left out of the mean.\n" +
			"Without --dataset, the dataset version the checkpoint was trained on is used.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "checkpoint", Aliases: []string{"c"}, Usage: "checkpoint `FILE`", Required: true},
			&cli.StringFlag{Name: "dataset", Aliases: []string{"d"}, Usage: "dataset `NAME[@VER]` (default: the checkpoint's)"},
			&cli.StringFlag{Name: "split", Usage: "train or val", Value: dataset.SplitVal},
			&cli.IntFlag{Name: "batch", Usage: "images per forward pass", Value: 8},
			threadsFlag(),
		},
		Action: runEval,
	}
}

// evalResult is `eval -o json` output.
type evalResult struct {
	Checkpoint string   `json:"checkpoint"`
	Dataset    string   `json:"dataset"`
	DatasetID  string   `json:"dataset_id"`
	Split      string   `json:"split"`
	Classes    []string `json:"classes"`
	Step       int64    `json:"step"`
	trainer.Metrics
}

func runEval(c *cli.Context) error {
	p, err := newPrinter(c)
	if err != nil {
		return err
	}
	if c.NArg() > 0 {
		return fmt.Errorf("eval takes no arguments (got %q); use --checkpoint and --dataset", c.Args().Slice())
	}
	path := c.String("checkpoint")
	ck, err := readCheckpoint(path)
	if err != nil {
		return err
	}
	ref := c.String("dataset")
	if ref == "" {
		if ck.Dataset == "" || ck.DatasetVersion == "" {
			return fmt.Errorf("checkpoint %s does not name its dataset; pass --dataset", path)
		}
		ref = ck.Dataset + "@" + ck.DatasetVersion
	}
	split := c.String("split")
	if split != dataset.SplitTrain && split != dataset.SplitVal {
		return fmt.Errorf("--split %q: want %s or %s", split, dataset.SplitTrain, dataset.SplitVal)
	}
	store, err := dataset.OpenStore(dataset.StoreDir(dataDir(c)))
	if err != nil {
		return err
	}
	v, man, err := store.Open(ref)
	if err != nil {
		return err
	}
	defer v.Close()
	if err := trainer.CheckGeometry(ck.Model, v.Meta()); err != nil {
		return fmt.Errorf("checkpoint %s vs dataset %s: %w", path, man.Ref(), err)
	}
	pred, err := trainer.NewPredictor(ck, c.Int("threads"), c.Int("batch"))
	if err != nil {
		return fmt.Errorf("checkpoint %s: %w", path, err)
	}
	defer pred.Close()
	m, err := pred.Evaluate(c.Context, v, split)
	if err != nil {
		return err
	}
	classes := v.Meta().Classes
	res := evalResult{Checkpoint: path, Dataset: man.Ref(), DatasetID: man.ID, Split: split, Classes: classes, Step: ck.Step, Metrics: m}
	rows := [][]string{
		{"checkpoint", fmt.Sprintf("%s (step %d)", path, ck.Step)},
		{"dataset", fmt.Sprintf("%s (%s) split %s, %d examples", man.Ref(), dataset.ShortID(man.ID), split, m.Examples)},
	}
	rows = append(rows, metricRows("", m, classes)...)
	return p.Result(res, []string{"METRIC", "VALUE"}, rows)
}

// readCheckpoint reads a checkpoint, turning a missing file into a short
// message.
func readCheckpoint(path string) (*trainer.Checkpoint, error) {
	ck, err := trainer.ReadCheckpoint(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("checkpoint %s: no such file", path)
	}
	return ck, err
}

func predictCommand() *cli.Command {
	return &cli.Command{
		Name:      "predict",
		Usage:     "write segmentation masks for images",
		ArgsUsage: "IMAGE...",
		Description: "Decodes each JPEG or PNG image (any size), resizes it to the model input (bilinear),\n" +
			"predicts a class per pixel and resizes the mask back to the image's size (nearest).\n" +
			"Masks are written to --out as NAME.png: paletted PNGs whose pixel values are the class\n" +
			"indices (0, 1, 2, ... in the checkpoint's class order) and whose palette shows class 0\n" +
			"black, 1 white, 2 grey, then distinct colours.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "checkpoint", Aliases: []string{"c"}, Usage: "checkpoint `FILE`", Required: true},
			&cli.StringFlag{Name: "out", Usage: "output `DIR` for the masks (created if missing)", Required: true},
			threadsFlag(),
		},
		Action: runPredict,
	}
}

// predictResult is one row of `predict` output.
type predictResult struct {
	Image     string    `json:"image"`
	Mask      string    `json:"mask"`
	Width     int       `json:"width"`
	Height    int       `json:"height"`
	Fractions []float64 `json:"class_fractions"`
}

func runPredict(c *cli.Context) error {
	p, err := newPrinter(c)
	if err != nil {
		return err
	}
	images := c.Args().Slice()
	if len(images) == 0 {
		return errors.New("predict: no images given (usage: trainctl predict --checkpoint FILE --out DIR IMAGE...)")
	}
	outDir := c.String("out")
	outs := make(map[string]string, len(images))
	for _, img := range images {
		name := strings.TrimSuffix(filepath.Base(img), filepath.Ext(img)) + ".png"
		if prev, dup := outs[name]; dup {
			return fmt.Errorf("predict: %s and %s would both write %s", prev, img, name)
		}
		outs[name] = img
	}
	ck, err := readCheckpoint(c.String("checkpoint"))
	if err != nil {
		return err
	}
	pred, err := trainer.NewPredictor(ck, c.Int("threads"), 1)
	if err != nil {
		return fmt.Errorf("checkpoint %s: %w", c.String("checkpoint"), err)
	}
	defer pred.Close()
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return fmt.Errorf("predict: %w", err)
	}
	_, _, _, classes := pred.Geometry()
	var results []predictResult
	var rows [][]string
	for _, path := range images {
		r, err := predictOne(c, pred, path, outDir, classes)
		if err != nil {
			return err
		}
		results = append(results, r)
		var fr []string
		for k, f := range r.Fractions {
			name := strconv.Itoa(k)
			if k < len(ck.Classes) {
				name = ck.Classes[k]
			}
			fr = append(fr, fmt.Sprintf("%s %.1f%%", name, 100*f))
		}
		rows = append(rows, []string{path, fmt.Sprintf("%dx%d", r.Width, r.Height), r.Mask, strings.Join(fr, ", ")})
	}
	return p.Result(results, []string{"IMAGE", "SIZE", "MASK", "CLASSES"}, rows)
}

func predictOne(c *cli.Context, pred *trainer.Predictor, path, outDir string, classes int) (predictResult, error) {
	f, err := os.Open(path)
	if err != nil {
		return predictResult{}, fmt.Errorf("predict: %w", err)
	}
	img, err := trainer.DecodeImage(f)
	f.Close()
	if err != nil {
		return predictResult{}, fmt.Errorf("predict %s: %w", path, err)
	}
	mask, err := pred.PredictImage(c.Context, img)
	if err != nil {
		return predictResult{}, fmt.Errorf("predict %s: %w", path, err)
	}
	b := img.Bounds()
	out := filepath.Join(outDir, strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))+".png")
	if err := writePNG(out, trainer.MaskImage(mask, b.Dx(), b.Dy(), classes)); err != nil {
		return predictResult{}, fmt.Errorf("predict %s: %w", path, err)
	}
	counts := make([]int, classes)
	for _, k := range mask {
		counts[k]++
	}
	fr := make([]float64, classes)
	for k, n := range counts {
		fr[k] = float64(n) / float64(len(mask))
	}
	return predictResult{Image: path, Mask: out, Width: b.Dx(), Height: b.Dy(), Fractions: fr}, nil
}

// writePNG encodes img to path.
func writePNG(path string, img image.Image) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
