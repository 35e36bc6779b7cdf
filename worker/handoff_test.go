package worker

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/trainctl/trainctl/trainer"
)

// TestHandoff checks the queue between trainer and sink with a sink that
// is busy: newer checkpoints supersede pending ones, a best checkpoint of
// the same step rides on its latest one, files stay readable until Put
// returns and are removed after, and check reports what was not accepted.
func TestHandoff(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, step int64) string {
		// As the trainer does: a new file renamed over the old one.
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p+".tmp", []byte("step "+strconv.FormatInt(step, 10)), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(p+".tmp", p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	release := make(chan struct{})
	busy := make(chan struct{})
	sink := &recordingSink{t: t, hook: func(ctx context.Context, c Checkpoint) error {
		data, err := os.ReadFile(c.Path)
		if err != nil || string(data) != "step "+strconv.FormatInt(c.Step, 10) {
			t.Errorf("Put(step %d) reads %q, %v", c.Step, data, err)
		}
		if c.Step == 1 {
			close(busy)
			<-release
		}
		if c.Step == 7 {
			return errors.New("upload failed")
		}
		return nil
	}}
	h := newHandoff(sink, Checkpoint{JobID: "j", Attempt: 2}, dir, quietLogger())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go h.run(ctx)

	h.add(write(trainer.LatestCheckpoint, 1), 1, 0)
	<-busy // the sink is uploading step 1
	for s := int64(2); s <= 4; s++ {
		h.add(write(trainer.LatestCheckpoint, s), s, int(s/2))
	}
	h.add(write(trainer.BestCheckpoint, 4), 4, 2) // rides on latest 4
	h.add(write(trainer.LatestCheckpoint, 5), 5, 2)
	h.add(write(trainer.LatestCheckpoint, 6), 6, 3)
	close(release)
	h.close()
	<-h.done

	got := sink.checkpoints()
	type ck struct {
		step         int64
		epoch        int
		latest, best bool
	}
	want := []ck{{1, 0, true, false}, {4, 2, false, true}, {6, 3, true, false}}
	if len(got) != len(want) {
		t.Fatalf("sink got %+v, want steps %v", got, want)
	}
	for i, w := range want {
		if c := got[i]; c.Step != w.step || c.Epoch != w.epoch || c.Latest != w.latest || c.Best != w.best || c.JobID != "j" || c.Attempt != 2 {
			t.Errorf("checkpoint %d: %+v, want %+v", i, c, w)
		}
	}
	if err := h.check(false); err != nil {
		t.Error(err)
	}
	if err := h.check(true); err != nil {
		t.Error(err)
	}
	assertNoHandoffFiles(t, dir)

	// A failed Put leaves the newest latest unaccepted.
	h2 := newHandoff(sink, Checkpoint{JobID: "j", Attempt: 2}, dir, quietLogger())
	go h2.run(ctx)
	h2.add(write(trainer.LatestCheckpoint, 7), 7, 3)
	h2.close()
	<-h2.done
	if err := h2.check(false); !errors.Is(err, ErrHandoff) {
		t.Errorf("check after a failed Put: %v, want ErrHandoff", err)
	} else {
		t.Logf("error: %v", err)
	}
	if err := h2.check(true); err != nil {
		t.Errorf("check(best) with no best queued: %v", err)
	}
	assertNoHandoffFiles(t, dir)
}
