package scheduler

import (
	"fmt"
	"slices"
)

// EndKind says how an attempt of a job ended without finishing it.
type EndKind uint8

// Ways an attempt can end early.
const (
	// Failed: the trainer exited with an error on a live worker.
	Failed EndKind = iota + 1
	// Lost: the worker died or its lease expired while running the job.
	// It counts like a failure, so that a job that kills its worker cannot
	// loop forever, and excludes that node.
	Lost
	// Preempted: the worker got a preemption notice (SIGTERM), checkpointed
	// and handed the job back. Not the job's fault: it neither counts
	// against max_restarts nor excludes the node.
	Preempted
)

// String returns the kind's name.
func (k EndKind) String() string {
	switch k {
	case Failed:
		return "failed"
	case Lost:
		return "lost"
	case Preempted:
		return "preempted"
	}
	return fmt.Sprintf("end(%d)", uint8(k))
}

// AttemptEnd describes the end of one attempt.
type AttemptEnd struct {
	// Kind is how it ended; an unknown kind is treated as [Failed].
	Kind EndKind
	// Node is the node the failing rank ran on; empty when unknown.
	Node string
}

// Retry is a job's retry bookkeeping, kept in the coordinator's state.
type Retry struct {
	// Restarts counts the attempts that failed or were lost so far.
	Restarts int
	// Excluded lists, sorted and without duplicates, the nodes earlier
	// attempts failed on; copy it into [Job.Excluded].
	Excluded []string
}

// Decision is what to do with a job whose attempt ended early.
type Decision struct {
	// Requeue is true when the job goes back to the queue, false when it
	// has used up its restarts and fails for good.
	Requeue bool
	// Retry is the job's bookkeeping after this attempt.
	Retry Retry
	// Reason explains the decision in one line.
	Reason string
}

// NextAttempt decides, after an attempt ended as end, whether the job is
// queued again or gives up. prev is the job's bookkeeping before the
// attempt; maxRestarts is how many failed or lost attempts may be retried
// (0: none; negative counts as 0), so a job runs at most maxRestarts+1
// counted attempts. A failed or lost attempt counts one restart and adds its
// node to the exclusions; a preempted one changes nothing and is always
// requeued. prev is not modified.
func NextAttempt(prev Retry, end AttemptEnd, maxRestarts int) Decision {
	next := Retry{Restarts: prev.Restarts, Excluded: slices.Clone(prev.Excluded)}
	slices.Sort(next.Excluded)
	next.Excluded = slices.Compact(next.Excluded)
	if end.Kind == Preempted {
		return Decision{Requeue: true, Retry: next,
			Reason: fmt.Sprintf("preempted on %s; not counted (%d of %d restarts used)", nodeName(end.Node), next.Restarts, max(maxRestarts, 0))}
	}
	kind := end.Kind
	if kind != Lost {
		kind = Failed
	}
	next.Restarts++
	if end.Node != "" {
		if i, found := slices.BinarySearch(next.Excluded, end.Node); !found {
			next.Excluded = slices.Insert(next.Excluded, i, end.Node)
		}
	}
	if next.Restarts > max(maxRestarts, 0) {
		return Decision{Requeue: false, Retry: next,
			Reason: fmt.Sprintf("%s on %s; giving up after %d restarts (max_restarts %d)", kind, nodeName(end.Node), next.Restarts-1, max(maxRestarts, 0))}
	}
	return Decision{Requeue: true, Retry: next,
		Reason: fmt.Sprintf("%s on %s; restart %d of %d, excluding that node", kind, nodeName(end.Node), next.Restarts, max(maxRestarts, 0))}
}

func nodeName(id string) string {
	if id == "" {
		return "an unknown node"
	}
	return id
}
