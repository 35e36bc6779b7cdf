package trainer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"time"

	"github.com/trainctl/trainctl/dataset"
	"github.com/trainctl/trainctl/trainer/collective"
	"github.com/trainctl/trainctl/trainer/unet"
)

// trainStep computes the gradient of one global batch into the model's
// Grads and returns the batch's mean loss. With exact gradients this rank
// computes its slice of the batch (all of it on one process) and the ranks
// sum exactly; otherwise the whole batch runs as one float32 pass.
func (t *trainRun) trainStep(ctx context.Context, batch []dataset.Example) (float64, error) {
	b := len(batch)
	lo, hi := 0, b
	if t.ex != nil {
		lo, hi = t.rank*b/t.ranks, (t.rank+1)*b/t.ranks
	}
	if err := t.fillBatch(batch, lo, hi); err != nil {
		return 0, err
	}
	var loss float64
	if t.ex == nil {
		hw := t.meta.Height * t.meta.Width
		t.model.Forward(t.x[:b*t.meta.Channels*hw], b)
		loss = float64(t.model.LossAndBackward(t.labels[:b*hw], b))
	} else {
		var err error
		if loss, err = t.exactStep(ctx, hi-lo, b); err != nil {
			return 0, fmt.Errorf("train: step %d: %w", t.step+1, err)
		}
	}
	if math.IsNaN(loss) || math.IsInf(loss, 0) {
		return 0, fmt.Errorf("%w at step %d (loss %v): lower the learning rate", ErrDiverged, t.step+1, loss)
	}
	return loss, nil
}

// exactStep runs this rank's n examples (filled in t.x) one at a time,
// sums their quantised gradients across the ranks and writes the mean over
// the global batch of b examples into Grads. A step without scales yet, or
// whose values overflowed the scales anywhere, is computed again with the
// scales its maxima give: every rank decides so from the same reduced
// numbers.
func (t *trainRun) exactStep(ctx context.Context, n, b int) (float64, error) {
	hw := t.meta.Height * t.meta.Width
	chw := t.meta.Channels * hw
	for {
		calibrating := !t.ex.ready
		t.ex.reset()
		if t.replicas != nil {
			addExamples(t.replicas, t.ex, t.model.Params, t.x, t.labels, n, chw, hw, calibrating)
		} else {
			for i := range n {
				t.model.Forward(t.x[i*chw:(i+1)*chw], 1)
				loss := t.model.LossAndBackward(t.labels[i*hw:(i+1)*hw], 1)
				t.ex.add(t.model.Grads, float64(loss), calibrating)
			}
		}
		if err := t.ex.reduce(ctx, t.coll, t.step+1, calibrating); err != nil {
			return 0, err
		}
		if nf := t.ex.slot(slotNonFinite); nf > 0 {
			return math.NaN(), nil // diverged on some rank: trainStep reports it
		}
		if calibrating || t.ex.slot(slotSaturated) > 0 {
			if !calibrating {
				t.log.Info("gradient outgrew its fixed-point scale; recomputing the step", "step", t.step+1, "saturated", t.ex.slot(slotSaturated))
			}
			t.ex.rescale()
			continue
		}
		loss := t.ex.gradients(t.model.Grads, b)
		t.ex.rescale() // the next step's scales
		return loss, nil
	}
}

// gradScales are the exact gradient's scales for a checkpoint.
func (t *trainRun) gradScales() []int {
	if t.ex == nil {
		return nil
	}
	return t.ex.scales()
}

// agreeOnStart makes sure every rank starts from rank 0's state: rank 0
// broadcasts its weights, optimizer state and gradient scales (the
// collective checks the transfer by digest) and every rank compares them
// with its own, built from the seed or the same checkpoint.
func (t *trainRun) agreeOnStart(ctx context.Context) error {
	if t.coll == nil || t.ranks == 1 {
		return nil
	}
	mine, err := t.startState()
	if err != nil {
		return err
	}
	// The length first, so that ranks with different models fail as a
	// mismatch instead of reading each other's bytes.
	n := []int64{int64(len(mine))}
	if err := t.coll.AllReduceInt64(ctx, collective.Tag{Step: t.step, Bucket: -2}, n, collective.Max); err != nil {
		return fmt.Errorf("train: agree on the starting state: %w", err)
	}
	if n[0] != int64(len(mine)) {
		return fmt.Errorf("%w: rank %d's starting state is %d bytes, another rank's %d: the ranks build different models", ErrTrainConfig, t.rank, len(mine), n[0])
	}
	root := mine
	if t.rank != 0 {
		root = make([]byte, len(mine))
	}
	if err := t.coll.Broadcast(ctx, collective.Tag{Step: t.step, Bucket: -3}, root, 0); err != nil {
		return fmt.Errorf("train: broadcast the starting state: %w", err)
	}
	if !bytes.Equal(root, mine) {
		a, b := sha256.Sum256(root), sha256.Sum256(mine)
		return fmt.Errorf("%w: rank %d's starting state (digest %x) differs from rank 0's (%x): different seed, checkpoint or model",
			ErrTrainConfig, t.rank, b[:8], a[:8])
	}
	return nil
}

// startState is the state every rank must share at the start: weights,
// optimizer state, gradient scales, step and data position.
func (t *trainRun) startState() ([]byte, error) {
	opt, err := t.opt.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("train: optimizer state: %w", err)
	}
	buf := binary.LittleEndian.AppendUint64(nil, uint64(t.step))
	pos := t.reader.Position()
	buf = binary.LittleEndian.AppendUint64(buf, uint64(pos.Epoch))
	buf = binary.LittleEndian.AppendUint64(buf, uint64(pos.Offset))
	for _, s := range t.ex.scale {
		buf = binary.LittleEndian.AppendUint64(buf, uint64(int64(s)))
	}
	for _, p := range t.model.Params {
		buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(p))
	}
	return append(buf, opt...), nil
}

// evaluateExact evaluates this rank's share of the split's examples and
// combines the ranks' confusion counts and fixed-point losses exactly:
// every rank returns the metrics one process would compute.
func (t *trainRun) evaluateExact(ctx context.Context, model *unet.Model, v *dataset.Version, split string, batch int, x []float32) (Metrics, error) {
	rows := v.SplitIndices(split)
	if len(rows) == 0 {
		return Metrics{}, fmt.Errorf("evaluate: split %q of the dataset is empty", split)
	}
	lo, hi := t.rank*len(rows)/t.ranks, (t.rank+1)*len(rows)/t.ranks
	conf, lossQ, err := evaluateRows(ctx, model, v, rows[lo:hi], min(batch, model.MaxBatch()), x)
	if err != nil {
		return Metrics{}, err
	}
	sums := append(append([]int64(nil), conf.Counts...), lossQ, int64(conf.Examples))
	if t.coll != nil && t.ranks > 1 {
		if err := t.coll.AllReduceInt64(ctx, collective.Tag{Step: t.step, Bucket: -4}, sums, collective.Sum); err != nil {
			return Metrics{}, fmt.Errorf("evaluate: all-reduce: %w", err)
		}
	}
	copy(conf.Counts, sums)
	conf.Examples = int(sums[len(sums)-1])
	meta := v.Meta()
	conf.setFixedLoss(sums[len(sums)-2], len(rows), meta.Height*meta.Width)
	return conf.Metrics(), nil
}

// timeUp reports whether MaxTime has passed. With several ranks they
// decide together (a Max all-reduce of their verdicts) before every step,
// so that all stop after the same step instead of one leaving the others
// waiting in a collective.
func (t *trainRun) timeUp(ctx context.Context, start time.Time) (bool, error) {
	if t.cfg.MaxTime <= 0 {
		return false, nil
	}
	up := time.Since(start) >= t.cfg.MaxTime
	if t.coll == nil || t.ranks == 1 {
		return up, nil
	}
	v := []int64{0}
	if up {
		v[0] = 1
	}
	if err := t.coll.AllReduceInt64(ctx, collective.Tag{Step: t.step + 1, Bucket: -5}, v, collective.Max); err != nil {
		return false, fmt.Errorf("train: step %d: agree on max time: %w", t.step+1, err)
	}
	return v[0] == 1, nil
}
