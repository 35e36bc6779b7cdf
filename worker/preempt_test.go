package worker

import (
	"context"
	"testing"
	"time"
)

func TestPreemptionContexts(t *testing.T) {
	t.Run("parent canceled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		p := HandlePreemption(ctx, 10*time.Millisecond)
		defer p.Stop()
		cancel()
		<-p.Notice().Done()
		<-p.Deadline().Done()
		if at, signaled := p.Noticed(); signaled || at.IsZero() {
			t.Errorf("Noticed() = %v, %v; want a time and no signal", at, signaled)
		}
	})
	t.Run("stop", func(t *testing.T) {
		p := HandlePreemption(context.Background(), 0)
		if p.Grace() != DefaultGrace {
			t.Errorf("default grace %v", p.Grace())
		}
		p.Stop()
		<-p.Deadline().Done()
		if at, _ := p.Noticed(); !at.IsZero() {
			t.Errorf("Stop counted as a notice at %v", at)
		}
	})
}
