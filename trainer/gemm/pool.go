package gemm

import (
	"runtime"
	"sync/atomic"
	"time"
)

// The worker goroutines. Each multiply that is split moves engine.seq on;
// the workers and the caller take its blocks from engine.claim, and whoever
// finishes the last one reports on engine.done. Between multiplies a worker
// spins (PAUSE, letting other goroutines of its P run now and then) for
// spinWait before it parks on its wake channel: a training step calls Sgemm
// again within tens to hundreds of microseconds, and a parked worker wakes
// late (tens of microseconds, more on a virtual machine whose idle vCPU has
// halted) and then runs slowly for a while. Measured on a 2-vCPU Zen 4 VM: a
// spinning worker makes a 64×512×288 multiply 1.7× faster than one thread;
// waking a parked one for it makes it slower than one thread (hence
// wakeFlops).
const spinWait = time.Millisecond

// Worker states.
const (
	workerAwake  int32 = iota // spinning or running: seq reaches it
	workerParked              // blocked, or about to block, on wake
)

// worker is one worker goroutine's parking place.
type worker struct {
	state atomic.Int32
	wake  chan struct{} // capacity 1: one token per wake-up; closed by stop
}

// work is worker goroutine t: it runs its share of each job until stop.
func (in *engine) work(t int, w *worker) {
	var last uint64
	for {
		seq, cold, ok := in.await(w, last)
		if !ok {
			return
		}
		last = seq
		in.run(t, seq, cold)
	}
}

// await returns the sequence number of the next job after last, spinning
// for a while and then parking (cold reports that it parked); ok is false
// once the engine is stopped.
func (in *engine) await(w *worker, last uint64) (seq uint64, cold, ok bool) {
	deadline := time.Now().Add(in.spin)
	for i := 0; ; i++ {
		if in.closed.Load() {
			return 0, false, false
		}
		if s := in.seq.Load(); s != last {
			return s, false, true
		}
		if i%64 == 63 {
			if time.Now().After(deadline) {
				break
			}
			if i%1024 == 1023 {
				runtime.Gosched()
			}
		}
		spinPause()
	}
	w.state.Store(workerParked)
	// A job (or stop) may have come before the dispatcher could see us
	// parked: take it back unless the dispatcher has already claimed us, in
	// which case its token is (or will be) in wake.
	if in.seq.Load() != last || in.closed.Load() {
		if w.state.CompareAndSwap(workerParked, workerAwake) {
			if in.closed.Load() {
				return 0, false, false
			}
			return in.seq.Load(), false, true
		}
	}
	if _, open := <-w.wake; !open {
		return 0, false, false
	}
	return in.seq.Load(), true, true
}

// dispatch offers the blocks of the job in engine.job to the workers and
// returns its sequence number. Spinning workers see it at once; parked ones
// are woken only when wake is set.
func (in *engine) dispatch(blocks int, wake bool) uint64 {
	seq := in.seq.Load() + 1
	in.doneN.Store(0)
	in.claim.Store(seq<<32 | uint64(blocks)<<16)
	in.seq.Store(seq)
	for i := range in.workers {
		if !wake {
			break
		}
		w := &in.workers[i]
		if w.state.CompareAndSwap(workerParked, workerAwake) {
			w.wake <- struct{}{}
		}
	}
	return seq
}

// wait returns when every block of the current job is finished: it spins
// for a while (the workers usually finish together with the caller), then
// blocks. Workers that never got a block are not waited for.
func (in *engine) wait() {
	deadline := time.Now().Add(in.spin)
	for i := 0; len(in.done) == 0; i++ {
		if i%64 == 63 && time.Now().After(deadline) {
			break
		}
		spinPause()
	}
	<-in.done
}

// stop ends the worker goroutines.
func (in *engine) stop() {
	in.stopped.Do(func() {
		in.closed.Store(true)
		for i := range in.workers {
			close(in.workers[i].wake)
		}
	})
}
