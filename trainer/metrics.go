package trainer

import (
	"fmt"
	"math"
)

// Confusion is a class confusion matrix over pixels: Counts[t*Classes+p] is
// the number of pixels whose true class is t and predicted class is p. It
// also accumulates a loss sum, so one Confusion summarises an evaluation.
// The zero value is not usable; call NewConfusion.
type Confusion struct {
	// Classes is the number of classes (the matrix is Classes×Classes).
	Classes int
	// Counts is the row-major matrix, rows truth, columns prediction.
	Counts []int64
	// LossSum is the sum of per-pixel losses added with AddLoss.
	LossSum float64
	// LossPixels is the number of pixels LossSum covers.
	LossPixels int64
	// Examples is the number of examples added.
	Examples int
}

// NewConfusion returns an empty matrix for the given number of classes.
func NewConfusion(classes int) *Confusion {
	return &Confusion{Classes: classes, Counts: make([]int64, classes*classes)}
}

// Reset empties the matrix and the loss sum.
func (c *Confusion) Reset() {
	clear(c.Counts)
	c.LossSum, c.LossPixels, c.Examples = 0, 0, 0
}

// Add counts one mask: truth and pred are class indices of the same pixels.
// It returns an error if the lengths differ or a class is out of range.
func (c *Confusion) Add(truth, pred []uint8) error {
	if len(truth) != len(pred) {
		return fmt.Errorf("confusion: truth has %d pixels, prediction %d", len(truth), len(pred))
	}
	k := c.Classes
	for i, t := range truth {
		p := pred[i]
		if int(t) >= k || int(p) >= k {
			return fmt.Errorf("confusion: pixel %d has class %d/%d, only %d classes", i, t, p, k)
		}
		c.Counts[int(t)*k+int(p)]++
	}
	c.Examples++
	return nil
}

// AddLoss adds a batch's mean per-pixel loss over pixels pixels.
func (c *Confusion) AddLoss(meanLoss float64, pixels int) {
	c.LossSum += meanLoss * float64(pixels)
	c.LossPixels += int64(pixels)
}

// Merge adds the counts and losses of o (same number of classes) into c.
func (c *Confusion) Merge(o *Confusion) {
	for i, v := range o.Counts {
		c.Counts[i] += v
	}
	c.LossSum += o.LossSum
	c.LossPixels += o.LossPixels
	c.Examples += o.Examples
}

// Metrics are the evaluation figures of a model on a split.
//
// IoU of class k is TP/(TP+FP+FN) over all pixels of the split. A class that
// appears neither in the truth nor in the predictions has no defined IoU: its
// entry is 0, its Present entry false, and it is left out of MeanIoU, which is
// the mean over present classes only (0 when none is present). Loss is the
// mean per-pixel softmax cross-entropy (natural log).
type Metrics struct {
	Loss          float64   `json:"loss"`
	PixelAccuracy float64   `json:"pixel_accuracy"`
	MeanIoU       float64   `json:"mean_iou"`
	IoU           []float64 `json:"iou"`
	Present       []bool    `json:"present"`
	Pixels        int64     `json:"pixels"`
	Examples      int       `json:"examples"`
}

// Metrics computes loss, pixel accuracy, per-class IoU and mean IoU from the
// matrix.
func (c *Confusion) Metrics() Metrics {
	k := c.Classes
	m := Metrics{IoU: make([]float64, k), Present: make([]bool, k), Examples: c.Examples}
	var total, correct int64
	for _, v := range c.Counts {
		total += v
	}
	for i := 0; i < k; i++ {
		correct += c.Counts[i*k+i]
	}
	m.Pixels = total
	if total > 0 {
		m.PixelAccuracy = float64(correct) / float64(total)
	}
	if c.LossPixels > 0 {
		m.Loss = c.LossSum / float64(c.LossPixels)
	}
	var sum float64
	var present int
	for i := 0; i < k; i++ {
		var rowSum, colSum int64
		for j := 0; j < k; j++ {
			rowSum += c.Counts[i*k+j]
			colSum += c.Counts[j*k+i]
		}
		tp := c.Counts[i*k+i]
		union := rowSum + colSum - tp
		if union == 0 {
			continue
		}
		m.Present[i] = true
		m.IoU[i] = float64(tp) / float64(union)
		sum += m.IoU[i]
		present++
	}
	if present > 0 {
		m.MeanIoU = sum / float64(present)
	}
	return m
}

// argmaxNCHW writes into mask the index of the largest of the classes logits
// of each of the hw pixels of one image (logits laid out class-major, C×H×W).
// Ties go to the lower class; NaN never wins.
func argmaxNCHW(mask []uint8, logits []float32, classes, hw int) {
	for i := 0; i < hw; i++ {
		best := 0
		bv := float32(math.Inf(-1))
		for k := 0; k < classes; k++ {
			if v := logits[k*hw+i]; v > bv {
				best, bv = k, v
			}
		}
		mask[i] = uint8(best)
	}
}
