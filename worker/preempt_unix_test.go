//go:build unix

package worker

import (
	"context"
	"os"
	"syscall"
	"testing"
	"time"
)

// TestHandlePreemption sends this process SIGTERM: Notice must end at
// once, Deadline a grace period later, and the process must live on.
func TestHandlePreemption(t *testing.T) {
	const grace = 50 * time.Millisecond
	p := HandlePreemption(context.Background(), grace)
	defer p.Stop()
	if p.Grace() != grace {
		t.Errorf("Grace() = %v", p.Grace())
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Notice().Done():
	case <-time.After(30 * time.Second):
		t.Fatal("no notice 30 s after SIGTERM")
	}
	<-p.Deadline().Done()
	at, signaled := p.Noticed()
	if !signaled || at.IsZero() {
		t.Errorf("Noticed() = %v, %v; want the signal's time", at, signaled)
	}
	if took := time.Since(at); took < grace {
		t.Errorf("deadline %v after the notice, want at least %v", took, grace)
	}
}
