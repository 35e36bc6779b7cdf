package main

import (
	"context"
	"strings"
	"testing"

	"github.com/trainctl/trainctl/api"
)

// TestGenPushesWhenCoordinatorSet checks the issue's "dataset commands
// upload to the coordinator when it is set": gen with --coordinator
// registers the version in the cluster, gen without it stays local.
func TestGenPushesWhenCoordinatorSet(t *testing.T) {
	addr := startTestCoordinator(t)
	t.Setenv("TRAINCTL_COORDINATOR", "") // only the explicit flag below

	out := mustCtl(t, "dataset", "gen", "--name", "local", "-n", "4", "--size", "16")
	if strings.Contains(out, "pushed") {
		t.Fatalf("gen without --coordinator pushed:\n%s", out)
	}
	out = mustCtl(t, "dataset", "gen", "--name", "pushed", "-n", "4", "--size", "16", "--seed", "3", "--coordinator", addr)
	if !strings.Contains(out, "pushed pushed@v1 to the cluster as pushed@v1") {
		t.Fatalf("gen --coordinator output lacks the push line:\n%s", out)
	}

	vs, err := api.New(addr).Datasets(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, v := range vs {
		names[v.Name] = true
	}
	if !names["pushed"] || names["local"] {
		t.Fatalf("cluster datasets %v: want pushed and not local", names)
	}

	// A push that cannot reach the cluster says the version is local and
	// how to retry.
	wantErr(t, []string{"dataset", "gen", "--name", "lost", "-n", "2", "--size", "16",
		"--coordinator", "127.0.0.1:1", "--timeout", "0s"},
		"lost@v1 was registered locally", "trainctl dataset push lost@v1")
}
