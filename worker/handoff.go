package worker

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/trainctl/trainctl/trainer"
)

// CheckpointSink takes the checkpoints a run writes (the coordinator upload
// implements it). Put is called from one goroutine per run, never from the
// training loop, one checkpoint at a time in the order they were written.
// The file at c.Path belongs to the runner and is removed when Put returns,
// so Put must copy or upload it first. Put must return when ctx is done.
// A failed Put is not retried by the runner: the next checkpoint
// supersedes it, and an outcome whose checkpoint was not accepted fails
// with ErrHandoff.
type CheckpointSink interface {
	Put(ctx context.Context, c Checkpoint) error
}

// Checkpoint is one checkpoint handed to a CheckpointSink.
type Checkpoint struct {
	JobID   string `json:"job_id"`
	Attempt int    `json:"attempt"`
	Rank    int    `json:"rank"`
	// Step is the global step the checkpoint was taken at, and Epoch the
	// 0-based epoch of that step.
	Step  int64 `json:"step"`
	Epoch int   `json:"epoch"`
	// Latest marks the newest training state: where a next attempt
	// resumes. Best marks the best val mean IoU so far: what serving
	// loads. One checkpoint can be both.
	Latest bool `json:"latest"`
	Best   bool `json:"best"`
	// Path is a trainer checkpoint file (trainer.ReadCheckpoint), readable
	// until Put returns.
	Path string `json:"path"`
}

// handoff queues checkpoints from the training goroutine to a sink without
// blocking it: each file the trainer writes is hard-linked (copied where
// links fail) under a unique name, since the trainer rewrites latest.ckpt
// in place, and handed to the sink from handoff's own goroutine. A newer
// checkpoint of a kind supersedes a pending older one, so a slow sink
// receives the newest state rather than a backlog.
type handoff struct {
	sink  CheckpointSink
	ident Checkpoint // JobID, Attempt, Rank
	dir   string
	log   *slog.Logger

	wake chan struct{} // cap 1
	done chan struct{} // closed when run returns

	mu      sync.Mutex
	pending []Checkpoint
	closed  bool
	seq     int
	latest  int64 // newest step queued as Latest (-1: none)
	best    int64 // newest step queued as Best (-1: none)
	ackedL  int64 // newest Latest step the sink accepted (-1: none)
	ackedB  int64
	lastErr error
}

func newHandoff(sink CheckpointSink, ident Checkpoint, dir string, log *slog.Logger) *handoff {
	return &handoff{
		sink: sink, ident: ident, dir: dir, log: log,
		wake: make(chan struct{}, 1), done: make(chan struct{}),
		latest: -1, best: -1, ackedL: -1, ackedB: -1,
	}
}

// add is trainer.TrainConfig.OnCheckpoint: it queues the file just
// written at path.
func (h *handoff) add(path string, step int64, epoch int) {
	best := filepath.Base(path) == trainer.BestCheckpoint
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	if best {
		h.best = step
		// The trainer writes best.ckpt right after latest.ckpt from the
		// same state: mark the pending latest of that step instead of
		// sending the same bytes twice.
		sameStep := func(p Checkpoint) bool { return p.Step == step && p.Latest }
		if slices.ContainsFunc(h.pending, sameStep) {
			h.supersedeLocked(false, true) // keeps it: it is a Latest
			h.pending[slices.IndexFunc(h.pending, sameStep)].Best = true
			return
		}
	} else {
		h.latest = step
	}
	h.seq++
	link := filepath.Join(h.dir, fmt.Sprintf(".handoff-%04d-step-%d.ckpt", h.seq, step))
	if err := linkOrCopy(path, link); err != nil {
		h.lastErr = fmt.Errorf("keep checkpoint step %d for handoff: %w", step, err)
		h.log.Warn("checkpoint not queued for handoff", "step", step, "err", err)
		return
	}
	h.supersedeLocked(!best, best)
	c := h.ident
	c.Step, c.Epoch, c.Latest, c.Best, c.Path = step, epoch, !best, best, link
	h.pending = append(h.pending, c)
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// supersedeLocked clears the Latest or Best mark of pending checkpoints and
// drops those left with neither.
func (h *handoff) supersedeLocked(latest, best bool) {
	kept := h.pending[:0]
	for _, p := range h.pending {
		if latest {
			p.Latest = false
		}
		if best {
			p.Best = false
		}
		if p.Latest || p.Best {
			kept = append(kept, p)
			continue
		}
		os.Remove(p.Path)
	}
	clear(h.pending[len(kept):])
	h.pending = kept
}

// run hands queued checkpoints to the sink until close is called and the
// queue is empty, or ctx is done (pending files are then removed).
func (h *handoff) run(ctx context.Context) {
	defer close(h.done)
	for {
		h.mu.Lock()
		for len(h.pending) == 0 && !h.closed {
			h.mu.Unlock()
			select {
			case <-h.wake:
			case <-ctx.Done():
				h.discard()
				return
			}
			h.mu.Lock()
		}
		if len(h.pending) == 0 {
			h.mu.Unlock()
			return
		}
		c := h.pending[0]
		h.pending = h.pending[1:]
		h.mu.Unlock()

		err := h.sink.Put(ctx, c)
		os.Remove(c.Path)
		h.mu.Lock()
		if err != nil {
			h.lastErr = fmt.Errorf("checkpoint step %d: %w", c.Step, err)
			h.log.Warn("checkpoint handoff failed", "step", c.Step, "latest", c.Latest, "best", c.Best, "err", err)
		} else {
			if c.Latest {
				h.ackedL = max(h.ackedL, c.Step)
			}
			if c.Best {
				h.ackedB = max(h.ackedB, c.Step)
			}
		}
		h.mu.Unlock()
		if ctx.Err() != nil {
			h.discard()
			return
		}
	}
}

// discard drops the pending checkpoints and stops queueing.
func (h *handoff) discard() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for _, p := range h.pending {
		os.Remove(p.Path)
	}
	h.pending = nil
}

// close stops queueing; run returns once the queue is empty.
func (h *handoff) close() {
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// check reports, wrapping ErrHandoff, whether the newest checkpoint of the
// kind (best or latest) that was queued has not been accepted. It is nil
// when none was queued.
func (h *handoff) check(best bool) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	queued, acked, kind := h.latest, h.ackedL, "latest"
	if best {
		queued, acked, kind = h.best, h.ackedB, "best"
	}
	if queued < 0 || acked >= queued {
		return nil
	}
	if h.lastErr != nil {
		return fmt.Errorf("%w: %s checkpoint of step %d: %w", ErrHandoff, kind, queued, h.lastErr)
	}
	return fmt.Errorf("%w: %s checkpoint of step %d", ErrHandoff, kind, queued)
}

// linkOrCopy makes dst a hard link to src, or a copy where links fail.
func linkOrCopy(src, dst string) error {
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		os.Remove(dst)
		return err
	}
	return out.Close()
}

// latestStep is the step of the newest checkpoint queued as Latest (0 if
// none).
func (h *handoff) latestStep() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return max(h.latest, 0)
}

// bestStep is the step of the newest checkpoint queued as Best (0 if none).
func (h *handoff) bestStep() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return max(h.best, 0)
}
