package trainer

import (
	"context"
	"fmt"
	"image"
	"math"
	"runtime"

	"github.com/trainctl/trainctl/dataset"
	"github.com/trainctl/trainctl/trainer/gemm"
	"github.com/trainctl/trainctl/trainer/unet"
)

// Predictor runs a trained model: evaluation over a dataset split and mask
// prediction for images. It is not safe for concurrent use; give each
// goroutine its own (serving builds one per loaded model and runs one
// forward pass on it at a time).
type Predictor struct {
	ckpt  *Checkpoint
	eng   *gemm.Engine
	model *unet.Model
	x     []float32
}

// NewPredictor builds the model a checkpoint describes and loads its
// weights. threads is the engine's goroutine count (<= 0: GOMAXPROCS);
// maxBatch the most images per forward pass (<= 0: 8). Close releases it.
func NewPredictor(c *Checkpoint, threads, maxBatch int) (*Predictor, error) {
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	if maxBatch <= 0 {
		maxBatch = 8
	}
	if c.Input.Normalize != "" && c.Input.Normalize != InputNormalizeUnit {
		return nil, fmt.Errorf("checkpoint input normalisation %q is not supported (want %q)", c.Input.Normalize, InputNormalizeUnit)
	}
	eng := gemm.New(threads)
	model, err := unet.New(c.Model, eng, maxBatch)
	if err != nil {
		eng.Close()
		return nil, fmt.Errorf("checkpoint model: %w", err)
	}
	if len(c.Params) != len(model.Params) {
		model.Close()
		eng.Close()
		return nil, fmt.Errorf("%w: checkpoint holds %d parameters, its model config needs %d", ErrCorruptCheckpoint, len(c.Params), len(model.Params))
	}
	copy(model.Params, c.Params)
	h, w, ch, _ := modelGeometry(c.Model)
	return &Predictor{
		ckpt:  c,
		eng:   eng,
		model: model,
		x:     make([]float32, maxBatch*ch*h*w),
	}, nil
}

// Close stops the model's helper goroutines and its engine's workers, so
// that a server swapping models does not leak them.
func (p *Predictor) Close() {
	p.model.Close()
	p.eng.Close()
}

// Checkpoint is the checkpoint the predictor was built from.
func (p *Predictor) Checkpoint() *Checkpoint { return p.ckpt }

// Geometry is the model's input height, width and channels, and its class
// count.
func (p *Predictor) Geometry() (h, w, channels, classes int) { return modelGeometry(p.ckpt.Model) }

// Evaluate runs the model over a split of v (in row order) and returns its
// metrics. The dataset's geometry must match the model's (ErrGeometry).
func (p *Predictor) Evaluate(ctx context.Context, v *dataset.Version, split string) (Metrics, error) {
	if err := CheckGeometry(p.ckpt.Model, v.Meta()); err != nil {
		return Metrics{}, err
	}
	return evaluate(ctx, p.model, v, split, p.model.MaxBatch(), p.x)
}

// Predict returns the argmax class mask (H×W bytes) of each image, which
// must be H×W×C bytes at the model's input geometry (as dataset examples
// are); images are processed up to the predictor's maxBatch at a time.
func (p *Predictor) Predict(ctx context.Context, images [][]byte) ([][]byte, error) {
	h, w, c, k := modelGeometry(p.ckpt.Model)
	hw := h * w
	for i, img := range images {
		if len(img) != hw*c {
			return nil, fmt.Errorf("%w: image %d is %d bytes, the model takes %dx%dx%d = %d", ErrGeometry, i, len(img), w, h, c, hw*c)
		}
	}
	out := make([][]byte, len(images))
	mb := p.model.MaxBatch()
	for lo := 0; lo < len(images); lo += mb {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		b := min(mb, len(images)-lo)
		for i := 0; i < b; i++ {
			imageToCHW(p.x[i*c*hw:(i+1)*c*hw], images[lo+i], h, w, c)
		}
		logits := p.model.Forward(p.x[:b*c*hw], b)
		for i := 0; i < b; i++ {
			m := make([]byte, hw)
			argmaxNCHW(m, logits[i*k*hw:(i+1)*k*hw], k, hw)
			out[lo+i] = m
		}
	}
	return out, nil
}

// PredictImage resizes img (any size) to the model input with bilinear
// interpolation, predicts, and returns the class mask resized back to the
// image's size by nearest neighbour (row-major, Dx×Dy bytes).
func (p *Predictor) PredictImage(ctx context.Context, img image.Image) ([]byte, error) {
	h, w, c, _ := modelGeometry(p.ckpt.Model)
	in := ResizeToHWC(img, w, h, c)
	masks, err := p.Predict(ctx, [][]byte{in})
	if err != nil {
		return nil, err
	}
	b := img.Bounds()
	return ResizeMaskNearest(masks[0], w, h, b.Dx(), b.Dy()), nil
}

// evaluate runs model over split of v in batches of up to batch examples,
// using x (at least batch×C×H×W floats) for the input, and returns loss,
// pixel accuracy and IoUs.
func evaluate(ctx context.Context, model *unet.Model, v *dataset.Version, split string, batch int, x []float32) (Metrics, error) {
	rows := v.SplitIndices(split)
	if len(rows) == 0 {
		return Metrics{}, fmt.Errorf("evaluate: split %q of the dataset is empty", split)
	}
	conf, lossQ, err := evaluateRows(ctx, model, v, rows, batch, x)
	if err != nil {
		return Metrics{}, err
	}
	meta := v.Meta()
	conf.setFixedLoss(lossQ, len(rows), meta.Height*meta.Width)
	return conf.Metrics(), nil
}

// evaluateRows runs model over the given rows of v in batches of up to
// batch examples and returns their confusion matrix and the fixed-point
// sum of their mean losses (fixedLoss), which callers combine: one
// process sets it as the split's loss, data-parallel ranks sum theirs.
func evaluateRows(ctx context.Context, model *unet.Model, v *dataset.Version, rows []int, batch int, x []float32) (*Confusion, int64, error) {
	meta := v.Meta()
	k := len(meta.Classes)
	hw := meta.Height * meta.Width
	chw := meta.Channels * hw
	conf := NewConfusion(k)
	pred := make([]uint8, hw)
	var lossQ int64
	for lo := 0; lo < len(rows); lo += batch {
		if err := ctx.Err(); err != nil {
			return nil, 0, fmt.Errorf("evaluate: %w", err)
		}
		b := min(batch, len(rows)-lo)
		for i := 0; i < b; i++ {
			e := v.Example(rows[lo+i])
			imageToCHW(x[i*chw:(i+1)*chw], e.Image, meta.Height, meta.Width, meta.Channels)
		}
		logits := model.Forward(x[:b*chw], b)
		for i := 0; i < b; i++ {
			e := v.Example(rows[lo+i])
			l := logits[i*k*hw : (i+1)*k*hw]
			argmaxNCHW(pred, l, k, hw)
			if err := conf.Add(e.Mask, pred); err != nil { // checks the mask values first
				return nil, 0, fmt.Errorf("evaluate: example %s: %w", e.ID, err)
			}
			lossQ += fixedLoss(crossEntropy(l, e.Mask, k, hw))
		}
	}
	return conf, lossQ, nil
}

// crossEntropy is the mean softmax cross-entropy (natural log) of one image's
// class-major logits against its labels, in float64.
func crossEntropy(logits []float32, labels []uint8, classes, hw int) float64 {
	var sum float64
	for i := 0; i < hw; i++ {
		mx := math.Inf(-1)
		for c := 0; c < classes; c++ {
			mx = math.Max(mx, float64(logits[c*hw+i]))
		}
		var z float64
		for c := 0; c < classes; c++ {
			z += math.Exp(float64(logits[c*hw+i]) - mx)
		}
		sum += math.Log(z) + mx - float64(logits[int(labels[i])*hw+i])
	}
	return sum / float64(hw)
}

// fixedLoss is one example's mean loss in fixed point: summed so, the
// losses of a split add up to the same value in any order and grouping,
// which lets ranks that each evaluate part of it agree with one process.
func fixedLoss(l float64) int64 { return int64(l * (1 << lossFracBits)) }

// setFixedLoss sets the loss of c from the fixed-point sum of n examples'
// mean losses over hw pixels each.
func (c *Confusion) setFixedLoss(sum int64, n, hw int) {
	c.LossSum = float64(sum) / (1 << lossFracBits) * float64(hw)
	c.LossPixels = int64(n) * int64(hw)
}
