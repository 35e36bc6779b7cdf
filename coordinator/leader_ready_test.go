package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trainctl/trainctl/api"
)

// TestNewLeaderRefusesWritesUntilReady holds a new leader before its
// barrier: a write it receives over HTTP is answered 503 no_leader (which
// clients retry) and commits nothing; once the leader has caught up the
// same write is served.
func TestNewLeaderRefusesWritesUntilReady(t *testing.T) {
	release := make(chan struct{})
	cfg := testConfig("c0", t.TempDir())
	cfg.Bootstrap = true
	cfg.leaderHook = func() { <-release }
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	srv, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	open := func() { once.Do(func() { close(release) }) }
	t.Cleanup(func() {
		open() // a failed test leaves the leader held
		srv.Shutdown()
	})
	waitFor(t, 10*time.Second, "leadership", func() error {
		if !srv.IsLeader() {
			return errors.New("not the leader yet")
		}
		return nil
	})
	const body = `{"id":"w1","addr":"127.0.0.1:1","meta":{"cores":1}}`
	register := func() (int, api.ErrorBody) {
		resp, err := http.Post("http://"+srv.HTTPAddr()+"/v1/workers/register", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		var eb api.ErrorBody
		_ = json.Unmarshal(data, &eb)
		return resp.StatusCode, eb
	}
	// A new leader appends a no-op entry (index 2, after the bootstrap
	// configuration) just after it wins; that entry is not the write's.
	waitFor(t, 10*time.Second, "the new leader's no-op entry", func() error {
		if i := srv.raft.LastIndex(); i < 2 {
			return fmt.Errorf("log at %d", i)
		}
		return nil
	})
	last := srv.raft.LastIndex()
	status, eb := register()
	if status != http.StatusServiceUnavailable || eb.Code != api.CodeNoLeader {
		t.Fatalf("write to a leader before its barrier: status %d %+v, want 503 %s", status, eb, api.CodeNoLeader)
	}
	if got := srv.raft.LastIndex(); got != last {
		t.Fatalf("the refused write moved the log from %d to %d", last, got)
	}
	open()
	waitFor(t, 10*time.Second, "the write served", func() error {
		if status, eb := register(); status != http.StatusOK {
			return fmt.Errorf("status %d %+v", status, eb)
		}
		return nil
	})
}
