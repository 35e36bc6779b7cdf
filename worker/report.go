package worker

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/trainctl/trainctl/trainer"
)

// Reporter delivers a run's metrics (to the coordinator, which keeps them
// with the job). Report is called from one goroutine per run, never from
// the training loop; it may block on the network, and must return when ctx
// is done. A batch that fails is sent again, merged into the next one.
type Reporter interface {
	Report(ctx context.Context, b MetricsBatch) error
}

// MetricsBatch is the metrics of one run since the previous batch.
type MetricsBatch struct {
	JobID   string `json:"job_id"`
	Attempt int    `json:"attempt"`
	Rank    int    `json:"rank"`
	// Ranks is the attempt's number of ranks: with more than one, only
	// rank 0's metrics are the job's (they are global), and every rank
	// reports its own throughput as its ring status.
	Ranks int `json:"ranks,omitempty"`
	// Steps are per-step metrics in step order.
	Steps []StepMetrics `json:"steps,omitempty"`
	// Epochs are the epoch-end evaluations, in order.
	Epochs []trainer.EpochReport `json:"epochs,omitempty"`
	// Dropped counts step records left out because the reporter fell more
	// than RunnerConfig.MaxPendingSteps behind (the oldest go first).
	Dropped int `json:"dropped,omitempty"`
	// Final marks the run's last batch.
	Final bool `json:"final,omitempty"`
}

// StepMetrics describes one training step.
type StepMetrics struct {
	Step         int64     `json:"step"`
	Epoch        int       `json:"epoch"`
	Loss         float64   `json:"loss"`
	ImagesPerSec float64   `json:"images_per_sec"`
	Time         time.Time `json:"time"`
}

// batcher collects metrics from the training goroutine without blocking it
// (a mutex held for an append) and flushes them to a Reporter from its own
// goroutine: every `every` steps, every `interval`, at every epoch end and
// once at the end.
type batcher struct {
	rep      Reporter
	ident    MetricsBatch // JobID, Attempt, Rank
	every    int
	interval time.Duration
	max      int
	log      *slog.Logger

	kick chan struct{} // cap 1: something to flush
	stop chan struct{} // closed: final flush, then exit
	done chan struct{} // closed when run returns

	mu      sync.Mutex
	steps   []StepMetrics
	epochs  []trainer.EpochReport
	dropped int
	stopped bool
}

func newBatcher(rep Reporter, ident MetricsBatch, every int, interval time.Duration, maxPending int, log *slog.Logger) *batcher {
	return &batcher{
		rep: rep, ident: ident, every: every, interval: interval, max: maxPending, log: log,
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
	}
}

// step records a step (trainer.TrainConfig.OnStep).
func (b *batcher) step(p trainer.Progress) {
	m := StepMetrics{Step: p.Step, Epoch: p.Epoch, Loss: p.Loss, ImagesPerSec: p.ImagesPerSec, Time: time.Now()}
	b.mu.Lock()
	if b.stopped {
		b.mu.Unlock()
		return
	}
	b.steps = append(b.steps, m)
	b.trimLocked()
	n := len(b.steps)
	b.mu.Unlock()
	if n >= b.every {
		b.signal()
	}
}

// epoch records an epoch-end evaluation (trainer.TrainConfig.OnEpoch) and
// asks for a flush.
func (b *batcher) epoch(r trainer.EpochReport) {
	b.mu.Lock()
	if b.stopped {
		b.mu.Unlock()
		return
	}
	b.epochs = append(b.epochs, r)
	b.mu.Unlock()
	b.signal()
}

func (b *batcher) signal() {
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

// trimLocked drops the oldest step records beyond max.
func (b *batcher) trimLocked() {
	if over := len(b.steps) - b.max; over > 0 {
		b.steps = append(b.steps[:0], b.steps[over:]...)
		b.dropped += over
	}
}

// run flushes until finish is called (then flushes a last time) or ctx is
// done.
func (b *batcher) run(ctx context.Context) {
	defer close(b.done)
	tick := time.NewTicker(b.interval)
	defer tick.Stop()
	for {
		select {
		case <-b.kick:
			b.flush(ctx, false)
		case <-tick.C:
			b.flush(ctx, false)
		case <-b.stop:
			if err := b.flush(ctx, true); err != nil {
				b.log.Warn("final metrics not reported", "err", err)
			}
			return
		case <-ctx.Done():
			return
		}
	}
}

// finish stops recording and makes run send the final batch and return.
func (b *batcher) finish() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.stopped {
		b.stopped = true
		close(b.stop)
	}
}

// flush sends what has been collected; on failure it keeps it for the
// next flush.
func (b *batcher) flush(ctx context.Context, final bool) error {
	b.mu.Lock()
	batch := b.ident
	batch.Steps, batch.Epochs, batch.Dropped, batch.Final = b.steps, b.epochs, b.dropped, final
	b.steps, b.epochs, b.dropped = nil, nil, 0
	b.mu.Unlock()
	if len(batch.Steps) == 0 && len(batch.Epochs) == 0 && batch.Dropped == 0 && !final {
		return nil
	}
	err := b.rep.Report(ctx, batch)
	if err == nil {
		return nil
	}
	if !final {
		b.log.Warn("reporting metrics failed; will retry with the next batch", "steps", len(batch.Steps), "err", err)
	}
	b.mu.Lock()
	b.steps = slices.Concat(batch.Steps, b.steps)
	b.epochs = slices.Concat(batch.Epochs, b.epochs)
	b.dropped += batch.Dropped
	b.trimLocked()
	b.mu.Unlock()
	return err
}

// assignment is the part of an Assignment that names the batch's rank.
func (b MetricsBatch) assignment() Assignment {
	return Assignment{JobID: b.JobID, Attempt: b.Attempt, Rank: b.Rank, Ranks: b.Ranks}
}
