package worker

import (
	"testing"
	"time"

	"github.com/trainctl/trainctl/api"
)

// TestAgentWokenByAssignment: an idle agent blocked in its assignments
// query is woken by a placement, not by its wait running out or a poll:
// with the query's wait and every other pace of the agent an hour long,
// the assignment must still arrive, well within the test's deadline.
func TestAgentWokenByAssignment(t *testing.T) {
	srv := startCoordinator(t)
	ac := api.New(srv.HTTPAddr())
	uploadShapes(t, ac)
	queries := make(chan api.QueryOptions, 16)
	got := make(chan api.WorkerAssignment, 1)
	startAgentDir(t, "w1", t.TempDir(), srv, nil, nil, func(c *AgentConfig) {
		c.AssignmentWait, c.PollInterval = time.Hour, time.Hour
		c.onQuery = func(q api.QueryOptions) {
			select {
			case queries <- q:
			default: // the test reads only the first few
			}
		}
		c.onAssignment = func(wa api.WorkerAssignment) { got <- wa }
	})
	// The first query answers at once (index 0); the second one blocks.
	deadline := time.After(10 * time.Second)
	for blocked := false; !blocked; {
		select {
		case q := <-queries:
			if q.WaitIndex > 0 {
				if q.WaitTime != time.Hour {
					t.Fatalf("the agent's query waits %v, want 1h", q.WaitTime)
				}
				blocked = true
			}
		case <-deadline:
			t.Fatal("the agent sent no blocking query within 10s")
		}
	}
	j := submit(t, ac, 1)
	select {
	case wa := <-got:
		if wa.JobID != j.ID || wa.Attempt != 1 {
			t.Fatalf("assignment %s attempt %d, want %s attempt 1", wa.JobID, wa.Attempt, j.ID)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the placement did not wake the agent's blocking query within 10s")
	}
	waitJob(t, ac, j.ID, api.JobSucceeded)
}

// TestAgentDefaultAssignmentWait: an agent's assignments query waits 30 s
// by default, not the coordinators' minutes: a coordinator cut off from the
// cluster holds a query its whole wait while the leader places jobs here.
func TestAgentDefaultAssignmentWait(t *testing.T) {
	a, err := NewAgent(AgentConfig{ID: "w1", Coordinators: []string{"127.0.0.1:1"}, WorkDir: t.TempDir(), Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if a.cfg.AssignmentWait != 30*time.Second || DefaultAssignmentWait != 30*time.Second {
		t.Fatalf("default assignment wait %v (DefaultAssignmentWait %v), want 30s", a.cfg.AssignmentWait, DefaultAssignmentWait)
	}
}
