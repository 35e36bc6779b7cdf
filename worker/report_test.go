package worker

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/trainctl/trainctl/trainer"
)

func progress(step int64) trainer.Progress {
	return trainer.Progress{Step: step, Loss: float64(step) / 10}
}

// TestBatcher checks when batches go out: every `every` steps, at every
// epoch end, on the interval, and finally; and that a failed batch is sent
// again with the next one, and overflow drops the oldest steps.
func TestBatcher(t *testing.T) {
	ident := MetricsBatch{JobID: "j", Attempt: 1}
	start := func(t *testing.T, rep Reporter, every int, interval time.Duration, maxPending int) (*batcher, context.CancelFunc) {
		b := newBatcher(rep, ident, every, interval, maxPending, quietLogger())
		ctx, cancel := context.WithCancel(context.Background())
		go b.run(ctx)
		t.Cleanup(func() { cancel(); <-b.done })
		return b, cancel
	}
	steps := func(b MetricsBatch) []int64 {
		var out []int64
		for _, s := range b.Steps {
			out = append(out, s.Step)
		}
		return out
	}

	t.Run("every n steps and epoch ends", func(t *testing.T) {
		rep := &recordingReporter{}
		b, _ := start(t, rep, 3, time.Hour, 100)
		n := 0
		for round := 1; round <= 3; round++ {
			for range 3 {
				n++
				b.step(progress(int64(n)))
			}
			waitFor(t, "a batch", func() bool { return len(rep.batches()) == round })
		}
		b.step(progress(10))
		b.epoch(trainer.EpochReport{Epoch: 0, Step: 10})
		waitFor(t, "the epoch batch", func() bool { return len(rep.batches()) == 4 })
		b.finish()
		<-b.done
		got := rep.batches()
		want := [][]int64{{1, 2, 3}, {4, 5, 6}, {7, 8, 9}, {10}, nil}
		if len(got) != len(want) {
			t.Fatalf("%d batches, want %d", len(got), len(want))
		}
		for i, w := range want {
			if s := steps(got[i]); len(s) != len(w) || (len(w) > 0 && s[0] != w[0]) {
				t.Errorf("batch %d: steps %v, want %v", i, s, w)
			}
		}
		if len(got[3].Epochs) != 1 || got[3].Epochs[0].Step != 10 {
			t.Errorf("epoch batch: %+v", got[3])
		}
		if !got[4].Final || got[4].JobID != "j" || got[4].Attempt != 1 {
			t.Errorf("final batch: %+v", got[4])
		}
	})

	t.Run("interval", func(t *testing.T) {
		rep := &recordingReporter{}
		b, _ := start(t, rep, 1000, 5*time.Millisecond, 100)
		b.step(progress(1))
		waitFor(t, "a timed batch", func() bool { return len(rep.batches()) == 1 })
		if s := steps(rep.batches()[0]); len(s) != 1 || s[0] != 1 {
			t.Errorf("timed batch steps %v", s)
		}
	})

	t.Run("failed batch is resent and overflow drops the oldest", func(t *testing.T) {
		fail := make(chan bool, 1)
		fail <- true
		rep := &recordingReporter{before: func(context.Context, MetricsBatch) error {
			select {
			case <-fail:
				return errors.New("coordinator unreachable")
			default:
				return nil
			}
		}}
		b, _ := start(t, rep, 2, time.Hour, 3)
		b.step(progress(1))
		b.step(progress(2)) // flush fails; 1 and 2 are kept
		waitFor(t, "the failed flush", func() bool { return len(fail) == 0 })
		for s := int64(3); s <= 4; s++ {
			b.step(progress(s))
		}
		b.finish()
		<-b.done
		var all []int64
		dropped := 0
		for _, bt := range rep.batches() {
			all = append(all, steps(bt)...)
			dropped += bt.Dropped
		}
		// 1..4 with room for 3: step 1 may have been dropped (if the failed
		// batch came back after step 4 was recorded), never 2..4.
		if len(all)+dropped != 4 || all[len(all)-1] != 4 || all[len(all)-3] != 2 {
			t.Errorf("steps delivered %v, %d dropped", all, dropped)
		}
	})
}
