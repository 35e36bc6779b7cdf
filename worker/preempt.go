package worker

import (
	"context"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

// DefaultGrace is the time between a preemption notice and the worker's
// exit: spot providers give about 30 s (Kubernetes' default termination
// grace period is 30 s too).
const DefaultGrace = 30 * time.Second

// Preemption turns a preemption notice (SIGTERM, as a spot instance or a
// Kubernetes pod receives) into two contexts for the agent:
//
//   - Notice is canceled when the notice arrives (or the parent context is
//     canceled). Runs use it as their context: Runner.Run stops training,
//     has the trainer write its final checkpoint, hands it to the sink and
//     returns Preempted, all within RunnerConfig.Grace.
//   - Deadline is canceled Grace after the notice: the agent leaves gossip
//     and exits by then, whatever is still running.
type Preemption struct {
	notice     context.Context
	stopSignal context.CancelFunc
	deadline   context.Context
	cancel     context.CancelFunc
	stopAfter  func() bool

	mu       sync.Mutex
	noticed  time.Time
	timer    *time.Timer
	stopped  bool
	grace    time.Duration
	signaled bool
}

// HandlePreemption starts listening for SIGTERM; see Preemption. grace <= 0
// means DefaultGrace. Call Stop to stop listening (a later SIGTERM then
// terminates the process as usual).
func HandlePreemption(ctx context.Context, grace time.Duration) *Preemption {
	return handlePreemption(ctx, grace, syscall.SIGTERM)
}

func handlePreemption(ctx context.Context, grace time.Duration, sigs ...os.Signal) *Preemption {
	if grace <= 0 {
		grace = DefaultGrace
	}
	p := &Preemption{grace: grace}
	p.notice, p.stopSignal = signal.NotifyContext(ctx, sigs...)
	p.deadline, p.cancel = context.WithCancel(context.WithoutCancel(ctx))
	p.stopAfter = context.AfterFunc(p.notice, func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.stopped {
			return
		}
		p.noticed = time.Now()
		p.signaled = ctx.Err() == nil
		p.timer = time.AfterFunc(p.grace, p.cancel)
	})
	return p
}

// Notice is canceled when the preemption notice arrives.
func (p *Preemption) Notice() context.Context { return p.notice }

// Deadline is canceled Grace after the notice, or by Stop.
func (p *Preemption) Deadline() context.Context { return p.deadline }

// Grace is the time between the notice and the deadline.
func (p *Preemption) Grace() time.Duration { return p.grace }

// Noticed reports when the notice arrived and whether it was a signal
// (rather than the parent context ending); zero and false before.
func (p *Preemption) Noticed() (at time.Time, signaled bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.noticed, p.signaled
}

// Stop stops listening for the signal and cancels both contexts.
func (p *Preemption) Stop() {
	p.stopAfter()
	p.stopSignal()
	p.mu.Lock()
	p.stopped = true
	if p.timer != nil {
		p.timer.Stop()
	}
	p.mu.Unlock()
	p.cancel()
}
