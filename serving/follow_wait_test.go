package serving

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"
)

// TestFollowDefaultWait: without FollowConfig.Wait, an idle follower's
// blocking queries wait DefaultFollowWait (30 s), not minutes: a
// coordinator cut off from the cluster holds a query its whole wait.
func TestFollowDefaultWait(t *testing.T) {
	f := newFakeCoordinator(t)
	f.index = 7
	srv := startServer(t, Config{}, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Follow(ctx, srv.Server, FollowConfig{API: f.client(), Target: Target{Model: "pets"}, Dir: t.TempDir(),
			Interval: time.Millisecond, Logger: quietLogger()})
	}()
	defer func() {
		cancel()
		<-done
	}()
	want := fmt.Sprint(DefaultFollowWait)
	deadline := time.Now().Add(10 * time.Second)
	for {
		f.mu.Lock()
		ok := slices.Contains(f.waits, want)
		waits := slices.Clone(f.waits)
		f.mu.Unlock()
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no blocking query waited %s within 10s; waits %v", want, waits)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if DefaultFollowWait != 30*time.Second {
		t.Errorf("DefaultFollowWait %v, want 30s", DefaultFollowWait)
	}
}
