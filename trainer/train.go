package trainer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"time"

	"github.com/trainctl/trainctl/dataset"
	"github.com/trainctl/trainctl/trainer/gemm"
	"github.com/trainctl/trainctl/trainer/optim"
	"github.com/trainctl/trainctl/trainer/unet"
)

// Checkpoint file names inside TrainConfig.CheckpointDir.
const (
	// LatestCheckpoint is rewritten every CheckpointEvery steps, at each
	// epoch end and when training stops; `--resume auto` picks it.
	LatestCheckpoint = "latest.ckpt"
	// BestCheckpoint is rewritten at an epoch end (or the final
	// evaluation) whose val mean IoU beats every earlier one.
	BestCheckpoint = "best.ckpt"
)

// Stop reasons reported in Result.Stop.
const (
	StopEpochs   = "epochs"    // all epochs done
	StopMaxSteps = "max-steps" // TrainConfig.MaxSteps reached
	StopMaxTime  = "max-time"  // TrainConfig.MaxTime elapsed
	StopCanceled = "canceled"  // the context was canceled
)

// Errors callers branch on.
var (
	// ErrGeometry: a dataset's image size, channels or classes do not match
	// the model's.
	ErrGeometry = errors.New("dataset does not match the model")
	// ErrResume: a checkpoint cannot resume this run (other dataset
	// version, other hyperparameters).
	ErrResume = errors.New("cannot resume")
	// ErrDiverged: the training loss became NaN or infinite.
	ErrDiverged = errors.New("training diverged")
	// ErrTrainConfig: an invalid TrainConfig.
	ErrTrainConfig = errors.New("invalid training config")
)

// InputNormalizeUnit is the only input scaling this package uses: each
// uint8 value divided by 255, giving floats in [0, 1].
const InputNormalizeUnit = "unit"

// InputSpec records how images become model input.
type InputSpec struct {
	// Normalize is InputNormalizeUnit.
	Normalize string `json:"normalize"`
}

// TrainConfig configures Train. Zero values take the defaults noted; when
// resuming, zero hyperparameters are taken from the checkpoint and non-zero
// ones must match it.
type TrainConfig struct {
	// Model is the network. Zero means unet.DefaultConfig() with the input
	// size, channels and classes of the dataset.
	Model unet.Config
	// Optimizer defaults to optim.DefaultConfig() (Adam, lr 1e-3).
	Optimizer optim.Config
	// Batch is the number of examples per step (default 8). The last batch
	// of an epoch holds the remainder and may be smaller.
	Batch int
	// Epochs is the number of passes over the train split (default 10). Zero
	// with MaxSteps or MaxTime set means no epoch limit.
	Epochs int
	// Seed fixes weight initialisation, the data order of every epoch and
	// the augmentation draws.
	Seed uint64
	// Flip applies a random horizontal flip to each training example.
	Flip bool
	// Threads is the number of goroutines the engine uses (default
	// GOMAXPROCS). Results are bit-identical for any value.
	Threads int
	// InexactGrads computes each step's gradient over the whole batch in
	// float32, as before data-parallel training: a little faster on one
	// process, but its result depends on how the batch is split, so it is
	// refused with a Collective. The default, exact gradients, sums
	// per-example gradients in fixed point (docs/architecture.md,
	// "Data-parallel training").
	InexactGrads bool
	// Collective, when set, makes this run one rank of a data-parallel
	// job of Collective.Size() ranks: each step's global batch of Batch
	// examples is split across the ranks (Batch must divide by their
	// number) and their gradients are summed exactly, so the weights equal
	// a single process's bit for bit. Every rank starts from rank 0's
	// state (checked by digest); rank 0 alone writes checkpoints and calls
	// OnCheckpoint. Nil is a single process.
	Collective Collective

	// CheckpointDir, when set, receives LatestCheckpoint and
	// BestCheckpoint (created if missing).
	CheckpointDir string
	// CheckpointEvery writes LatestCheckpoint every that many steps, besides
	// epoch ends and the stop (0: only those).
	CheckpointEvery int
	// MaxSteps stops training once the global step count reaches it (0: no
	// limit). A resumed run counts the steps before the checkpoint.
	MaxSteps int64
	// MaxTime stops training after this much wall time in this run (0: no
	// limit). The final evaluation runs after it.
	MaxTime time.Duration
	// Resume continues from a checkpoint: weights, optimizer state, RNG,
	// data position and step.
	Resume *Checkpoint
	// SkipFinalEval leaves out the val evaluation when training stops
	// between epoch ends (MaxSteps, MaxTime).
	SkipFinalEval bool

	// Dataset and DatasetVersion name the data, recorded in checkpoints;
	// DatasetVersion is checked against a resumed checkpoint's.
	Dataset, DatasetVersion string

	// OnStep is called after every step; OnEpoch after every epoch-end
	// evaluation; OnCheckpoint after every checkpoint write, with the global
	// step and the 0-based epoch of the last step taken (as Progress.Epoch).
	// They run on the training goroutine, so they should be quick.
	OnStep       func(Progress)
	OnEpoch      func(EpochReport)
	OnCheckpoint func(path string, step int64, epoch int)
	// Logger receives structured logs (default: discarded).
	Logger *slog.Logger
}

// Progress describes the step just taken.
type Progress struct {
	// Epoch is the 0-based epoch of the step; Epochs the planned count (0
	// when unbounded).
	Epoch, Epochs int
	// Step is the global number of steps taken, including those before a
	// resume. EpochStep is the 1-based step within the epoch, of
	// StepsPerEpoch.
	Step                     int64
	EpochStep, StepsPerEpoch int
	// TotalSteps is the planned number of steps (0 when unknown).
	TotalSteps int64
	// Loss is this batch's mean loss; EpochLoss the mean over the epoch's
	// steps so far (in this run).
	Loss, EpochLoss float64
	// ImagesPerSec is the training throughput of this run, evaluation
	// excluded; RankImagesPerSec the part this rank computed (ImagesPerSec
	// over the number of ranks).
	ImagesPerSec, RankImagesPerSec float64
	// Elapsed is the wall time of this run; ETA the estimated time to the
	// end (including the remaining epoch-end evaluations' share), or -1
	// when unknown.
	Elapsed, ETA time.Duration
}

// EpochReport is the evaluation at the end of an epoch.
type EpochReport struct {
	Epoch     int           `json:"epoch"` // the epoch just finished, 0-based
	Step      int64         `json:"step"`
	TrainLoss float64       `json:"train_loss"` // mean over the epoch's steps in this run
	Val       Metrics       `json:"val"`
	Elapsed   time.Duration `json:"elapsed_ns"`
}

// Result summarises a Train call.
type Result struct {
	// Stop is why training ended (StopEpochs, StopMaxSteps, StopMaxTime,
	// StopCanceled).
	Stop string `json:"stop"`
	// Step is the global step count at the end; Steps those taken in this
	// run.
	Step  int64 `json:"step"`
	Steps int64 `json:"steps"`
	// Position is where the train reader stands.
	Position dataset.Position `json:"position"`
	// Epochs are the epoch-end reports of this run.
	Epochs []EpochReport `json:"epochs"`
	// Val is the last evaluation (zero if none ran).
	Val Metrics `json:"val"`
	// BestMeanIoU is the best val mean IoU seen in this run.
	BestMeanIoU float64 `json:"best_mean_iou"`
	// TrainLoss is the mean loss over the last (partial) epoch of this run.
	TrainLoss float64 `json:"train_loss"`
	// ImagesPerSec is the training throughput, evaluation excluded.
	ImagesPerSec float64 `json:"images_per_sec"`
	// Elapsed is this run's wall time.
	Elapsed time.Duration `json:"elapsed_ns"`
	// LastCheckpoint and BestCheckpoint are the files written (empty
	// without CheckpointDir).
	LastCheckpoint string `json:"last_checkpoint,omitempty"`
	BestCheckpoint string `json:"best_checkpoint,omitempty"`
	// Params is the model's parameter count.
	Params int `json:"params"`
	// Model and Hyper are the configuration trained.
	Model unet.Config `json:"model"`
	Hyper Hyperparams `json:"hyper"`
	// Params holds the final weights (not in JSON).
	Weights []float32 `json:"-"`
}

// Train trains a UNet on the train split of v and evaluates it on the val
// split at every epoch end, as cfg says. It returns when the epochs are done,
// MaxSteps or MaxTime is reached, or ctx is canceled; in that last case it
// writes a final checkpoint (with CheckpointDir) and returns the Result so far
// with an error wrapping ctx.Err().
func Train(ctx context.Context, v *dataset.Version, cfg TrainConfig) (Result, error) {
	t, err := newTrainRun(v, cfg)
	if err != nil {
		return Result{}, err
	}
	defer t.model.Close()
	defer closeReplicas(t.replicas)
	return t.run(ctx)
}

// trainRun is the state of one Train call.
type trainRun struct {
	cfg   TrainConfig
	hyper Hyperparams
	v     *dataset.Version
	meta  dataset.Meta
	log   *slog.Logger

	model    *unet.Model
	ex       *exactGrads // nil with InexactGrads
	replicas []*replica  // single-threaded models for the examples (exact, threads > 1)
	coll     Collective  // nil for one process
	rank     int
	ranks    int
	opt      *optim.Optimizer
	rng      *rand.PCG
	reader   *dataset.Reader
	step     int64

	batchBuf []dataset.Example
	x        []float32
	labels   []uint8
	best     float64
	val      *Metrics
	res      Result
}

func newTrainRun(v *dataset.Version, cfg TrainConfig) (*trainRun, error) {
	meta := v.Meta()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Threads <= 0 {
		cfg.Threads = runtime.GOMAXPROCS(0)
	}
	if r := cfg.Resume; r != nil {
		if err := resumeDefaults(&cfg, r); err != nil {
			return nil, err
		}
	}
	if isZeroModel(cfg.Model) {
		cfg.Model = modelFor(meta)
	}
	if cfg.Optimizer.Kind == "" {
		cfg.Optimizer = optim.DefaultConfig()
	}
	if cfg.Batch == 0 {
		cfg.Batch = 8
	}
	if cfg.Epochs == 0 && cfg.MaxSteps == 0 && cfg.MaxTime == 0 {
		cfg.Epochs = 10
	}
	switch {
	case cfg.Batch < 0 || cfg.Batch > 4096:
		return nil, fmt.Errorf("%w: batch %d (want 1..4096)", ErrTrainConfig, cfg.Batch)
	case cfg.Epochs < 0:
		return nil, fmt.Errorf("%w: epochs %d", ErrTrainConfig, cfg.Epochs)
	case cfg.CheckpointEvery < 0:
		return nil, fmt.Errorf("%w: checkpoint every %d steps", ErrTrainConfig, cfg.CheckpointEvery)
	case cfg.MaxSteps < 0 || cfg.MaxTime < 0:
		return nil, fmt.Errorf("%w: negative max steps or max time", ErrTrainConfig)
	}
	ranks, rank := 1, 0
	if c := cfg.Collective; c != nil {
		ranks, rank = c.Size(), c.Rank()
		switch {
		case cfg.InexactGrads:
			return nil, fmt.Errorf("%w: inexact gradients depend on how the batch is split: not with %d ranks", ErrTrainConfig, ranks)
		case ranks < 1 || rank < 0 || rank >= ranks:
			return nil, fmt.Errorf("%w: rank %d of %d", ErrTrainConfig, rank, ranks)
		case cfg.Batch%ranks != 0:
			return nil, fmt.Errorf("%w: a batch of %d examples does not split across %d ranks (each rank computes batch/ranks examples)", ErrTrainConfig, cfg.Batch, ranks)
		}
	}
	if err := CheckGeometry(cfg.Model, meta); err != nil {
		return nil, err
	}
	t := &trainRun{
		cfg:  cfg,
		v:    v,
		meta: meta,
		log:  cfg.Logger,
		hyper: Hyperparams{
			Optimizer: cfg.Optimizer, Batch: cfg.Batch, Epochs: cfg.Epochs, Seed: cfg.Seed, Flip: cfg.Flip,
		},
		best:  -1,
		coll:  cfg.Collective,
		rank:  rank,
		ranks: ranks,
	}
	var start dataset.Position
	if r := cfg.Resume; r != nil {
		start = r.Position
		t.step = r.Step
		t.val = r.Val
		t.best = r.BestMeanIoU
		t.res.BestMeanIoU = r.BestMeanIoU
	}
	reader, err := dataset.NewReader(v, dataset.ReaderConfig{
		// Every rank reads the whole order and takes its slice of each batch.
		Split: dataset.SplitTrain, Shard: 0, NumShards: 1, Seed: cfg.Seed, Start: start,
	})
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	t.reader = reader

	modelBatch := cfg.Batch
	if !cfg.InexactGrads {
		modelBatch = 1 // exact gradients: one example at a time
	}
	model, err := unet.New(cfg.Model, gemm.New(cfg.Threads), modelBatch)
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	t.model = model
	if !cfg.InexactGrads {
		t.ex = newExactGrads(model.ParamViews(), cfg.Batch, cfg.Threads)
		if t.replicas, err = newReplicas(cfg.Model, cfg.Batch, min(cfg.Threads, cfg.Batch/ranks)); err != nil {
			model.Close()
			return nil, fmt.Errorf("train: %w", err)
		}
	}
	opt, err := optim.New(cfg.Optimizer, len(model.Params))
	if err != nil {
		model.Close()
		closeReplicas(t.replicas)
		return nil, fmt.Errorf("train: %w", err)
	}
	t.opt = opt
	t.rng = rand.NewPCG(cfg.Seed, 0x6a09e667f3bcc908) // augmentation stream, independent of data order
	if r := cfg.Resume; r != nil {
		if err := t.restore(r); err != nil {
			model.Close()
			closeReplicas(t.replicas)
			return nil, err
		}
		t.hyper.Optimizer = opt.Config()
	} else {
		model.Init(cfg.Seed)
		t.hyper.Optimizer = opt.Config()
	}
	hw := meta.Height * meta.Width
	t.batchBuf = make([]dataset.Example, cfg.Batch)
	t.x = make([]float32, cfg.Batch*meta.Channels*hw)
	t.labels = make([]uint8, cfg.Batch*hw)
	return t, nil
}

// resumeDefaults fills cfg's zero hyperparameters from r and checks the
// non-zero ones against it.
func resumeDefaults(cfg *TrainConfig, r *Checkpoint) error {
	mismatch := func(what string, have, want any) error {
		return fmt.Errorf("%w: the checkpoint was trained with %s %v, this run asks for %v", ErrResume, what, want, have)
	}
	if cfg.DatasetVersion != "" && r.DatasetVersion != "" && cfg.DatasetVersion != r.DatasetVersion {
		return fmt.Errorf("%w: the checkpoint was trained on dataset version %s, this run reads %s",
			ErrResume, dataset.ShortID(r.DatasetVersion), dataset.ShortID(cfg.DatasetVersion))
	}
	if isZeroModel(cfg.Model) {
		cfg.Model = r.Model
	} else if !sameModel(cfg.Model, r.Model) {
		return mismatch("model", cfg.Model, r.Model)
	}
	h := r.Hyper
	if cfg.Optimizer.Kind == "" {
		cfg.Optimizer = h.Optimizer
	} else if cfg.Optimizer != h.Optimizer {
		return mismatch("optimizer", cfg.Optimizer, h.Optimizer)
	}
	if cfg.Batch == 0 {
		cfg.Batch = h.Batch
	} else if cfg.Batch != h.Batch {
		return mismatch("batch", cfg.Batch, h.Batch)
	}
	if cfg.Seed == 0 {
		cfg.Seed = h.Seed
	} else if cfg.Seed != h.Seed {
		return mismatch("seed", cfg.Seed, h.Seed)
	}
	if cfg.Epochs == 0 && cfg.MaxSteps == 0 && cfg.MaxTime == 0 {
		cfg.Epochs = h.Epochs
	}
	cfg.Flip = cfg.Flip || h.Flip
	if cfg.Flip != h.Flip {
		return mismatch("flip", cfg.Flip, h.Flip)
	}
	return nil
}

// restore loads a checkpoint's weights, optimizer state and RNG.
func (t *trainRun) restore(r *Checkpoint) error {
	if len(r.Params) != len(t.model.Params) {
		return fmt.Errorf("%w: checkpoint has %d parameters, the model %d", ErrResume, len(r.Params), len(t.model.Params))
	}
	copy(t.model.Params, r.Params)
	if err := t.opt.UnmarshalBinary(r.Optimizer); err != nil {
		return fmt.Errorf("%w: %w", ErrResume, err)
	}
	if err := t.rng.UnmarshalBinary(r.RNG); err != nil {
		return fmt.Errorf("%w: RNG state: %v", ErrResume, err)
	}
	if t.ex != nil {
		return t.ex.restore(r.GradScales)
	}
	return nil
}

// CheckGeometry reports, wrapping ErrGeometry, whether a dataset with meta
// cannot feed model cfg.
func CheckGeometry(cfg unet.Config, meta dataset.Meta) error {
	h, w, c, k := modelGeometry(cfg)
	if meta.Height != h || meta.Width != w || meta.Channels != c || len(meta.Classes) != k {
		return fmt.Errorf("%w: the dataset has %dx%d images with %d channels and %d classes; the model takes %dx%dx%d and predicts %d classes",
			ErrGeometry, meta.Width, meta.Height, meta.Channels, len(meta.Classes), w, h, c, k)
	}
	return nil
}

func (t *trainRun) run(ctx context.Context) (Result, error) {
	cfg := t.cfg
	start := time.Now()
	t.res = Result{Model: cfg.Model, Hyper: t.hyper, Params: len(t.model.Params), Step: t.step, BestMeanIoU: t.res.BestMeanIoU}
	epochLen := t.reader.EpochLen()
	stepsPerEpoch := (epochLen + cfg.Batch - 1) / cfg.Batch
	var totalSteps int64
	if cfg.Epochs > 0 {
		totalSteps = int64(cfg.Epochs) * int64(stepsPerEpoch)
	}
	if cfg.MaxSteps > 0 && (totalSteps == 0 || cfg.MaxSteps < totalSteps) {
		totalSteps = cfg.MaxSteps
	}
	if cfg.CheckpointDir != "" {
		if err := os.MkdirAll(cfg.CheckpointDir, 0o755); err != nil {
			return t.res, fmt.Errorf("train: checkpoint dir: %w", err)
		}
	}
	t.log.Info("training", "params", len(t.model.Params), "batch", cfg.Batch, "epochs", cfg.Epochs,
		"steps_per_epoch", stepsPerEpoch, "start", t.reader.Position(), "step", t.step, "threads", cfg.Threads)

	var (
		trainTime  time.Duration // time in training steps, evaluation excluded
		evalTime   time.Duration
		evals      int
		images     int64
		epochLoss  float64
		epochSteps int
		lastSaved  = t.step
		stop       string
		stepsRun   int64
	)
	if err := t.agreeOnStart(ctx); err != nil {
		return t.finish(start, "", 0, 0), err
	}
	done := func() bool { return cfg.Epochs > 0 && t.reader.Position().Epoch >= cfg.Epochs }
	if done() {
		stop = StopEpochs
	}
	for stop == "" {
		if err := ctx.Err(); err != nil {
			stop = StopCanceled
			break
		}
		if cfg.MaxSteps > 0 && t.step >= cfg.MaxSteps {
			stop = StopMaxSteps
			break
		}
		if up, err := t.timeUp(ctx, start); err != nil {
			return t.finish(start, stop, trainTime, images), err
		} else if up {
			stop = StopMaxTime
			break
		}
		t0 := time.Now()
		pos := t.reader.Position()
		b := min(cfg.Batch, epochLen-pos.Offset)
		batch := t.reader.NextBatch(t.batchBuf[:b])
		loss, err := t.trainStep(ctx, batch)
		if err != nil {
			return t.finish(start, stop, trainTime, images), err
		}
		t.opt.Step(t.model.Params, t.model.Grads)
		t.step++
		stepsRun++
		images += int64(b)
		epochLoss += loss
		epochSteps++
		trainTime += time.Since(t0)
		t.res.Steps = stepsRun

		if cfg.OnStep != nil {
			ips := float64(images) / trainTime.Seconds()
			p := Progress{
				Epoch: pos.Epoch, Epochs: cfg.Epochs, Step: t.step,
				EpochStep: (pos.Offset + b + cfg.Batch - 1) / cfg.Batch, StepsPerEpoch: stepsPerEpoch,
				TotalSteps: totalSteps, Loss: loss, EpochLoss: epochLoss / float64(epochSteps),
				ImagesPerSec: ips, RankImagesPerSec: ips / float64(t.ranks), Elapsed: time.Since(start), ETA: -1,
			}
			if totalSteps > 0 {
				perStep := trainTime / time.Duration(stepsRun)
				left := time.Duration(totalSteps-t.step) * perStep
				if evals > 0 {
					epochsLeft := int64(cfg.Epochs - pos.Epoch)
					if cfg.Epochs == 0 || (cfg.MaxSteps > 0 && cfg.MaxSteps < int64(cfg.Epochs)*int64(stepsPerEpoch)) {
						epochsLeft = (totalSteps - t.step) / int64(stepsPerEpoch)
					}
					left += time.Duration(epochsLeft) * (evalTime / time.Duration(evals))
				}
				p.ETA = left
			}
			if cfg.MaxTime > 0 {
				if rem := cfg.MaxTime - p.Elapsed; p.ETA < 0 || rem < p.ETA {
					p.ETA = max(rem, 0)
				}
			}
			cfg.OnStep(p)
		}

		epochEnd := t.reader.Position().Offset == 0
		if epochEnd {
			e0 := time.Now()
			m, err := t.evaluate(ctx)
			if err != nil {
				if ctx.Err() != nil {
					stop = StopCanceled
					break
				}
				return t.finish(start, stop, trainTime, images), err
			}
			evalTime += time.Since(e0)
			evals++
			rep := EpochReport{Epoch: pos.Epoch, Step: t.step, TrainLoss: epochLoss / float64(epochSteps), Val: m, Elapsed: time.Since(start)}
			t.res.Epochs = append(t.res.Epochs, rep)
			t.res.TrainLoss = rep.TrainLoss
			epochLoss, epochSteps = 0, 0
			t.log.Info("epoch", "epoch", pos.Epoch, "step", t.step, "train_loss", rep.TrainLoss,
				"val_loss", m.Loss, "val_miou", m.MeanIoU, "val_acc", m.PixelAccuracy)
			if cfg.OnEpoch != nil {
				cfg.OnEpoch(rep)
			}
			if err := t.checkpoint(&m); err != nil {
				return t.finish(start, stop, trainTime, images), err
			}
			lastSaved = t.step
			if done() {
				stop = StopEpochs
			}
			continue
		}
		if cfg.CheckpointEvery > 0 && t.step%int64(cfg.CheckpointEvery) == 0 {
			if err := t.checkpoint(nil); err != nil {
				return t.finish(start, stop, trainTime, images), err
			}
			lastSaved = t.step
		}
	}
	if epochSteps > 0 {
		t.res.TrainLoss = epochLoss / float64(epochSteps)
	}
	// Stopped between epoch ends: a final evaluation (unless canceled), and a
	// checkpoint at the stop.
	var final *Metrics
	if stop != StopEpochs && stop != StopCanceled && !cfg.SkipFinalEval && lastSaved != t.step {
		m, err := t.evaluate(ctx)
		if err != nil && ctx.Err() == nil {
			return t.finish(start, stop, trainTime, images), err
		}
		if err == nil {
			final = &m
		}
	}
	if lastSaved != t.step {
		if err := t.checkpoint(final); err != nil {
			return t.finish(start, stop, trainTime, images), err
		}
	}
	res := t.finish(start, stop, trainTime, images)
	if stop == StopCanceled {
		return res, fmt.Errorf("train: stopped at step %d: %w", t.step, ctx.Err())
	}
	return res, nil
}

// finish fills the Result's summary fields.
func (t *trainRun) finish(start time.Time, stop string, trainTime time.Duration, images int64) Result {
	r := &t.res
	r.Stop = stop
	r.Step = t.step
	r.Position = t.reader.Position()
	r.Elapsed = time.Since(start)
	if trainTime > 0 {
		r.ImagesPerSec = float64(images) / trainTime.Seconds()
	}
	if t.val != nil {
		r.Val = *t.val
	}
	r.Weights = t.model.Params
	return *r
}

// fillBatch converts examples [lo, hi) of the batch into the model's NCHW
// float input (values /255) and labels, flipping each example horizontally
// with probability 1/2 when Flip is set. The flips of the whole batch are
// drawn, in order, whatever the range, so that every rank's generator
// stays the same. It fails for a mask value that is not a class.
func (t *trainRun) fillBatch(batch []dataset.Example, lo, hi int) error {
	m := t.meta
	hw := m.Height * m.Width
	for _, e := range batch {
		if err := checkMask(e, len(m.Classes)); err != nil {
			return err
		}
	}
	for j, e := range batch {
		flip := t.cfg.Flip && t.rng.Uint64()&1 == 1
		if j < lo || j >= hi {
			continue
		}
		i := j - lo
		x := t.x[i*m.Channels*hw : (i+1)*m.Channels*hw]
		lab := t.labels[i*hw : (i+1)*hw]
		if !flip {
			imageToCHW(x, e.Image, m.Height, m.Width, m.Channels)
			copy(lab, e.Mask)
			continue
		}
		for y := 0; y < m.Height; y++ {
			row := y * m.Width
			for xx := 0; xx < m.Width; xx++ {
				src := row + m.Width - 1 - xx
				lab[row+xx] = e.Mask[src]
				for c := 0; c < m.Channels; c++ {
					x[c*hw+row+xx] = unitScale[e.Image[src*m.Channels+c]]
				}
			}
		}
	}
	return nil
}

// checkMask reports a mask value that is not below classes (a damaged
// version; the store verifies masks, opening a version does not).
func checkMask(e dataset.Example, classes int) error {
	var seen [256]bool
	for _, v := range e.Mask {
		seen[v] = true
	}
	for v := classes; v < 256; v++ {
		if seen[v] {
			return fmt.Errorf("example %s: mask value %d is not one of the %d classes (verify the dataset)", e.ID, v, classes)
		}
	}
	return nil
}

// unitScale maps a byte to its [0, 1] input value.
var unitScale = func() (t [256]float32) {
	for i := range t {
		t[i] = float32(i) / 255
	}
	return t
}()

// imageToCHW writes one H×W×C byte image into dst as C×H×W floats in [0, 1].
func imageToCHW(dst []float32, img []byte, h, w, c int) {
	hw := h * w
	if c == 1 {
		for i, v := range img[:hw] {
			dst[i] = unitScale[v]
		}
		return
	}
	for i := 0; i < hw; i++ {
		for ch := 0; ch < c; ch++ {
			dst[ch*hw+i] = unitScale[img[i*c+ch]]
		}
	}
}

// evaluate runs the model over the val split.
func (t *trainRun) evaluate(ctx context.Context) (Metrics, error) {
	eval := evaluate
	if t.ex != nil {
		eval = t.evaluateExact
	}
	m, err := eval(ctx, t.model, t.v, dataset.SplitVal, t.cfg.Batch, t.x)
	if err != nil {
		return m, err
	}
	t.val = &m
	t.res.Val = m
	return m, nil
}

// checkpoint writes LatestCheckpoint, and BestCheckpoint when val is a new
// best; without CheckpointDir it only tracks the best.
func (t *trainRun) checkpoint(val *Metrics) error {
	isBest := val != nil && val.MeanIoU > t.best
	if isBest {
		t.best = val.MeanIoU
		t.res.BestMeanIoU = val.MeanIoU
	}
	if t.cfg.CheckpointDir == "" || t.rank != 0 {
		return nil
	}
	c, err := t.snapshot()
	if err != nil {
		return err
	}
	epoch := lastEpoch(c.Position)
	latest := filepath.Join(t.cfg.CheckpointDir, LatestCheckpoint)
	if err := WriteCheckpoint(latest, c); err != nil {
		return fmt.Errorf("train: %w", err)
	}
	t.res.LastCheckpoint = latest
	t.log.Info("checkpoint", "path", latest, "step", t.step)
	if t.cfg.OnCheckpoint != nil {
		t.cfg.OnCheckpoint(latest, t.step, epoch)
	}
	if isBest {
		best := filepath.Join(t.cfg.CheckpointDir, BestCheckpoint)
		if err := WriteCheckpoint(best, c); err != nil {
			return fmt.Errorf("train: %w", err)
		}
		t.res.BestCheckpoint = best
		if t.cfg.OnCheckpoint != nil {
			t.cfg.OnCheckpoint(best, t.step, epoch)
		}
	}
	return nil
}

// snapshot captures the run's state as a Checkpoint.
func (t *trainRun) snapshot() (*Checkpoint, error) {
	st, err := t.opt.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("train: optimizer state: %w", err)
	}
	rng, err := t.rng.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("train: RNG state: %w", err)
	}
	return &Checkpoint{
		Created:        time.Now().UTC(),
		Model:          t.cfg.Model,
		Input:          InputSpec{Normalize: InputNormalizeUnit},
		Hyper:          t.hyper,
		Dataset:        t.cfg.Dataset,
		DatasetVersion: t.cfg.DatasetVersion,
		Classes:        t.meta.Classes,
		Step:           t.step,
		Position:       t.reader.Position(),
		RNG:            rng,
		Val:            t.val,
		BestMeanIoU:    max(t.best, 0),
		Params:         t.model.Params,
		Optimizer:      st,
		GradScales:     t.gradScales(),
	}, nil
}

// modelFor is UNet-S (unet.DefaultConfig) sized for a dataset's images,
// channels and classes.
func modelFor(meta dataset.Meta) unet.Config {
	c := unet.DefaultConfig()
	c.Height, c.Width, c.InChannels, c.Classes = meta.Height, meta.Width, meta.Channels, len(meta.Classes)
	return c
}

// isZeroModel reports whether c is the zero Config ("choose for me").
func isZeroModel(c unet.Config) bool {
	return c.InChannels == 0 && c.Classes == 0 && c.Height == 0 && c.Width == 0 && len(c.Widths) == 0 && c.Bottleneck == 0
}

// sameModel reports whether two configurations describe the same network.
func sameModel(a, b unet.Config) bool {
	return a.InChannels == b.InChannels && a.Classes == b.Classes && a.Height == b.Height && a.Width == b.Width &&
		a.Bottleneck == b.Bottleneck && slices.Equal(a.Widths, b.Widths)
}

// modelGeometry returns the input height, width, channels and class count of
// a model configuration.
func modelGeometry(c unet.Config) (h, w, ch, classes int) {
	return c.Height, c.Width, c.InChannels, c.Classes
}
