package scheduler

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ErrInvalidInput is returned by [Schedule] when its inputs are inconsistent
// (duplicate job or node IDs, impossible node capacity). Such input means the
// caller's state is wrong, so no decision is taken.
var ErrInvalidInput = errors.New("scheduler: invalid input")

// ErrInvalidJob is wrapped by [Job.Validate] for a job whose resource request
// cannot be scheduled at all.
var ErrInvalidJob = errors.New("invalid job")

// NodeStatus is a node's liveness as the coordinator's state records it.
type NodeStatus string

// Node statuses. Only [StatusAlive] nodes take new ranks.
const (
	// StatusAlive is a member in good standing.
	StatusAlive NodeStatus = "alive"
	// StatusFailed is a member gossip declared dead; its lease may not have
	// expired yet.
	StatusFailed NodeStatus = "failed"
	// StatusLeft is a member that left the cluster gracefully.
	StatusLeft NodeStatus = "left"
)

// Job is a queued job as the scheduler sees it.
type Job struct {
	// ID identifies the job; unique within one call.
	ID string
	// Priority orders jobs; higher runs first.
	Priority int
	// Index is the submit order (for example the Raft index of the
	// submission); lower runs first within a priority.
	Index uint64
	// Ranks is the gang size: all ranks are placed at once or none.
	Ranks int
	// CPUsPerRank is the number of CPU cores each rank needs; at least 1.
	CPUsPerRank int
	// GPUsPerRank is the number of GPUs each rank needs; 0 for CPU jobs.
	GPUsPerRank int
	// SpotOK says the job tolerates spot (preemptible) nodes.
	SpotOK bool
	// Excluded lists node IDs the job must not run on, typically nodes
	// earlier attempts failed on (see [NextAttempt]).
	Excluded []string
}

// Validate reports whether j's request is well formed: at least one rank,
// at least one CPU per rank and no negative GPU count. The coordinator
// should call it at submission; [Schedule] reports invalid jobs as
// [Invalid] rather than failing the whole pass.
func (j Job) Validate() error {
	switch {
	case j.ID == "":
		return fmt.Errorf("%w: empty id", ErrInvalidJob)
	case j.Ranks < 1:
		return fmt.Errorf("%w %s: ranks %d, want at least 1", ErrInvalidJob, j.ID, j.Ranks)
	case j.CPUsPerRank < 1:
		return fmt.Errorf("%w %s: cpus per rank %d, want at least 1", ErrInvalidJob, j.ID, j.CPUsPerRank)
	case j.GPUsPerRank < 0:
		return fmt.Errorf("%w %s: gpus per rank %d, want 0 or more", ErrInvalidJob, j.ID, j.GPUsPerRank)
	}
	return nil
}

// Node is a worker's capacity as the scheduler sees it.
type Node struct {
	// ID identifies the node; unique within one call.
	ID string
	// CPUs and GPUs are the node's total capacity.
	CPUs, GPUs int
	// FreeCPUs and FreeGPUs are what running assignments leave free.
	FreeCPUs, FreeGPUs int
	// Spot marks preemptible capacity.
	Spot bool
	// Zone is the node's failure domain; carried, not yet used.
	Zone string
	// Status is the node's liveness; only [StatusAlive] nodes are eligible.
	Status NodeStatus
	// Draining nodes keep running jobs but take no new ones.
	Draining bool
}

func (n Node) validate() error {
	switch {
	case n.ID == "":
		return errors.New("node with empty id")
	case n.CPUs < 0, n.GPUs < 0, n.FreeCPUs < 0, n.FreeGPUs < 0:
		return fmt.Errorf("node %s: negative capacity", n.ID)
	case n.FreeCPUs > n.CPUs, n.FreeGPUs > n.GPUs:
		return fmt.Errorf("node %s: free capacity exceeds total", n.ID)
	}
	return nil
}

// Placement assigns every rank of one job to a node.
type Placement struct {
	// JobID is the placed job.
	JobID string
	// Nodes holds the node ID of each rank: Nodes[r] runs rank r. Ranks on
	// the same node are contiguous, so a ring over ranks crosses the
	// network as few times as possible.
	Nodes []string
}

// Cause says why a job stays queued.
type Cause uint8

// Causes of a job staying queued.
const (
	// NoCapacity: the job's nodes are up but too busy right now.
	NoCapacity Cause = iota + 1
	// Blocked: some of the job's nodes are held for a job earlier in the
	// order that does not fit either (head-of-line blocking).
	Blocked
	// Unsatisfiable: even empty, the job's eligible nodes hold fewer rank
	// slots than it needs (too few nodes up, too many excluded, or ranks
	// larger than any node). It waits, but reserves nothing.
	Unsatisfiable
	// Invalid: the job fails [Job.Validate].
	Invalid
)

// String returns the cause's name.
func (c Cause) String() string {
	switch c {
	case NoCapacity:
		return "no-capacity"
	case Blocked:
		return "blocked"
	case Unsatisfiable:
		return "unsatisfiable"
	case Invalid:
		return "invalid"
	}
	return fmt.Sprintf("cause(%d)", uint8(c))
}

// Pending is a job left queued by a pass, with the reason.
type Pending struct {
	// JobID is the queued job.
	JobID string
	// Cause classifies the reason.
	Cause Cause
	// Fit is how many of its ranks fit right now on nodes not held for
	// another job (fewer than it needs).
	Fit int
	// BlockedBy is the first job, in scheduling order, holding nodes this
	// job could use; set when Cause is [Blocked].
	BlockedBy string
	// Reason is a one-line explanation for users, such as
	// "needs 4 ranks of 1 GPU and 2 CPUs, 2 fit".
	Reason string
}

// Result is the outcome of one scheduling pass. Both lists are in
// scheduling order.
type Result struct {
	// Placements are the jobs to start now.
	Placements []Placement
	// Pending are the jobs that stay queued.
	Pending []Pending
}

// Less reports whether job a is considered before job b: higher priority
// first, then lower submit index, then lower ID.
func Less(a, b Job) bool { return compareJobs(a, b) < 0 }

func compareJobs(a, b Job) int {
	if c := cmp.Compare(b.Priority, a.Priority); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Index, b.Index); c != 0 {
		return c
	}
	return cmp.Compare(a.ID, b.ID)
}

// nodeState is a node's capacity as the pass consumes it.
type nodeState struct {
	Node
	heldBy string // job that reserved this node during the pass, if any
}

// Schedule runs one scheduling pass over the queued jobs and the nodes'
// current free capacity and returns which jobs to start where and why the
// others wait; see the package documentation for the policy. The inputs
// are not modified, and their order does not matter. It fails with
// [ErrInvalidInput] only for inconsistent input: duplicate IDs or impossible
// node capacity.
func Schedule(jobs []Job, nodes []Node) (Result, error) {
	ns := make([]nodeState, len(nodes))
	for i, n := range nodes {
		if err := n.validate(); err != nil {
			return Result{}, fmt.Errorf("%w: %w", ErrInvalidInput, err)
		}
		ns[i] = nodeState{Node: n}
	}
	slices.SortFunc(ns, func(a, b nodeState) int { return cmp.Compare(a.ID, b.ID) })
	for i := 1; i < len(ns); i++ {
		if ns[i].ID == ns[i-1].ID {
			return Result{}, fmt.Errorf("%w: duplicate node %s", ErrInvalidInput, ns[i].ID)
		}
	}
	js := slices.Clone(jobs)
	slices.SortFunc(js, compareJobs)
	for i := 1; i < len(js); i++ {
		if js[i].ID == js[i-1].ID {
			return Result{}, fmt.Errorf("%w: duplicate job %s", ErrInvalidInput, js[i].ID)
		}
	}

	var res Result
	p := planner{nodes: ns}
	for _, j := range js {
		placed, pend := p.place(j)
		if placed != nil {
			res.Placements = append(res.Placements, Placement{JobID: j.ID, Nodes: placed})
			continue
		}
		res.Pending = append(res.Pending, pend)
	}
	return res, nil
}

// planner holds the scratch state of one pass.
type planner struct {
	nodes []nodeState
	cand  []int // indices of the current job's eligible, unreserved nodes
	spot  []int
	slots []int // per node: rank slots for the current job, -1 when unused
}

// place places j or explains why not, reserving j's nodes in that case.
func (p *planner) place(j Job) ([]string, Pending) {
	if err := j.Validate(); err != nil {
		return nil, Pending{JobID: j.ID, Cause: Invalid, Reason: err.Error()}
	}
	excluded := func(string) bool { return false }
	if len(j.Excluded) > 0 {
		set := make(map[string]struct{}, len(j.Excluded))
		for _, id := range j.Excluded {
			set[id] = struct{}{}
		}
		excluded = func(id string) bool { _, ok := set[id]; return ok }
	}

	// Eligible nodes, and how many ranks they could hold if empty.
	p.cand, p.spot = p.cand[:0], p.spot[:0]
	capacity, blockedBy, held := 0, "", 0
	for i := range p.nodes {
		n := &p.nodes[i]
		if n.Status != StatusAlive || n.Draining || (n.Spot && !j.SpotOK) || excluded(n.ID) {
			continue
		}
		s := slotsFor(n.CPUs, n.GPUs, j)
		if s == 0 {
			continue
		}
		capacity += s
		if n.heldBy != "" {
			held++
			if blockedBy == "" {
				blockedBy = n.heldBy
			}
			continue
		}
		p.cand = append(p.cand, i)
		if n.Spot {
			p.spot = append(p.spot, i)
		}
	}
	if capacity < j.Ranks {
		return nil, Pending{
			JobID: j.ID, Cause: Unsatisfiable, Fit: p.fit(j),
			Reason: fmt.Sprintf("needs %s, eligible nodes hold %d even when idle", want(j), capacity),
		}
	}

	if j.SpotOK && len(p.spot) > 0 && len(p.spot) < len(p.cand) {
		if r := p.pack(j, p.spot); r != nil {
			return r, Pending{}
		}
	}
	if r := p.pack(j, p.cand); r != nil {
		return r, Pending{}
	}

	fit := p.fit(j)
	// Hold every node this job could use so that later jobs cannot take
	// capacity it is waiting for.
	for _, i := range p.cand {
		p.nodes[i].heldBy = j.ID
	}
	if blockedBy != "" {
		return nil, Pending{
			JobID: j.ID, Cause: Blocked, Fit: fit, BlockedBy: blockedBy,
			Reason: fmt.Sprintf("needs %s, %d fit; %d of its nodes held for job %s", want(j), fit, held, blockedBy),
		}
	}
	return nil, Pending{
		JobID: j.ID, Cause: NoCapacity, Fit: fit,
		Reason: fmt.Sprintf("needs %s, %d fit", want(j), fit),
	}
}

// fit returns how many of j's ranks fit now on the candidate nodes.
func (p *planner) fit(j Job) int {
	fit := 0
	for _, i := range p.cand {
		fit += slotsFor(p.nodes[i].FreeCPUs, p.nodes[i].FreeGPUs, j)
	}
	return min(fit, j.Ranks)
}

// pack places all of j's ranks on the nodes cand (indices into p.nodes,
// ascending by ID) and deducts their resources, or returns nil and changes
// nothing when they do not all fit.
func (p *planner) pack(j Job, cand []int) []string {
	if cap(p.slots) < len(p.nodes) {
		p.slots = make([]int, len(p.nodes))
	}
	p.slots = p.slots[:len(p.nodes)]
	total := 0
	for _, i := range cand {
		s := slotsFor(p.nodes[i].FreeCPUs, p.nodes[i].FreeGPUs, j)
		p.slots[i] = s
		total += s
	}
	if total < j.Ranks {
		return nil
	}
	// better reports whether node a wins a tie against node b: fewer free
	// GPUs, then fewer free CPUs, then the lower ID (lower index).
	better := func(a, b int) bool {
		na, nb := &p.nodes[a], &p.nodes[b]
		if na.FreeGPUs != nb.FreeGPUs {
			return na.FreeGPUs < nb.FreeGPUs
		}
		if na.FreeCPUs != nb.FreeCPUs {
			return na.FreeCPUs < nb.FreeCPUs
		}
		return a < b
	}
	out := make([]string, 0, j.Ranks)
	take := func(i, n int) {
		for range n {
			out = append(out, p.nodes[i].ID)
		}
		p.nodes[i].FreeCPUs -= n * j.CPUsPerRank
		p.nodes[i].FreeGPUs -= n * j.GPUsPerRank
		p.slots[i] = 0
	}
	remaining := j.Ranks
	for remaining > 0 {
		fit, most := -1, -1
		for _, i := range cand {
			s := p.slots[i]
			if s == 0 {
				continue
			}
			if s >= remaining && (fit < 0 || s < p.slots[fit] || (s == p.slots[fit] && better(i, fit))) {
				fit = i
			}
			if most < 0 || s > p.slots[most] || (s == p.slots[most] && better(i, most)) {
				most = i
			}
		}
		if fit >= 0 {
			take(fit, remaining)
			break
		}
		n := p.slots[most]
		take(most, n)
		remaining -= n
	}
	return out
}

// slotsFor returns how many ranks of j fit in the given CPUs and GPUs.
func slotsFor(cpus, gpus int, j Job) int {
	n := cpus / j.CPUsPerRank
	if j.GPUsPerRank > 0 {
		n = min(n, gpus/j.GPUsPerRank)
	}
	return max(n, 0)
}

// want describes j's request, as in "4 ranks of 1 GPU and 2 CPUs".
func want(j Job) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d %s of ", j.Ranks, plural(j.Ranks, "rank"))
	if j.GPUsPerRank > 0 {
		fmt.Fprintf(&b, "%d %s and ", j.GPUsPerRank, plural(j.GPUsPerRank, "GPU"))
	}
	fmt.Fprintf(&b, "%d %s", j.CPUsPerRank, plural(j.CPUsPerRank, "CPU"))
	return b.String()
}

func plural(n int, s string) string {
	if n == 1 {
		return s
	}
	return s + "s"
}
