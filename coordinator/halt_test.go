package coordinator

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/trainctl/trainctl/coordinator/structs"
)

// TestNodeHaltsOnUndecodableEntry: a real single-node server whose log
// gets an entry its FSM cannot decode stops (the process dies with the
// halt's message) instead of skipping the entry, and restarted on its data
// directory it replays its log and stops at the same entry again. The
// server runs in a child process: this test binary, run again.
func TestNodeHaltsOnUndecodableEntry(t *testing.T) {
	if dir := os.Getenv("TRAINCTL_HALT_CHILD_DIR"); dir != "" {
		haltChild(t, dir, os.Getenv("TRAINCTL_HALT_CHILD_APPLY") == "1")
		return
	}
	dir := t.TempDir()
	for _, apply := range []bool{true, false} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestNodeHaltsOnUndecodableEntry$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), "TRAINCTL_HALT_CHILD_DIR="+dir, "TRAINCTL_HALT_CHILD_APPLY="+map[bool]string{true: "1", false: "0"}[apply])
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		if !errors.As(err, &exit) {
			t.Fatalf("apply %v: the server did not stop (%v):\n%s", apply, err, out)
		}
		if !strings.Contains(string(out), "cannot apply log entry") || !strings.Contains(string(out), "type MessageType(99)") {
			t.Fatalf("apply %v: the server stopped without the halt's message:\n%s", apply, out)
		}
		_, halt, _ := strings.Cut(string(out), "panic: ")
		halt, _, _ = strings.Cut(halt, "\n")
		t.Logf("apply %v: %s", apply, halt)
	}
}

// haltChild is the child of TestNodeHaltsOnUndecodableEntry: it starts a
// server on dir and, with apply, commits a job and then an entry of an
// unknown type. Either way the FSM should end the process; returning is a
// failure.
func haltChild(t *testing.T, dir string, apply bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cfg := testConfig("c0", dir)
	cfg.Bootstrap = apply // the first run creates the cluster
	srv, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "leadership", func() error {
		if srv.raft.State() != raft.Leader {
			return errors.New("not the leader")
		}
		return nil
	})
	if apply {
		if _, err := srv.raftApply(ctx, structs.JobSubmitRequestType, &structs.JobSubmitRequest{
			JobID: "j1", Spec: structs.NewJobSpec(testSpec("one")), SubmitTime: time.Now().UTC(),
		}); err != nil {
			t.Fatal(err)
		}
		f := srv.raft.Apply([]byte{99, '{', '}'}, 5*time.Second)
		t.Logf("apply returned: %v %v", f.Error(), f.Response())
	}
	<-ctx.Done()
	t.Fatal("the server is still running")
}
