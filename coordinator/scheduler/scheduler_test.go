package scheduler

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
)

// node returns an idle, alive node with the given totals.
func node(id string, cpus, gpus int) Node {
	return Node{ID: id, CPUs: cpus, GPUs: gpus, FreeCPUs: cpus, FreeGPUs: gpus, Status: StatusAlive}
}

// busy returns n with only the given capacity free.
func busy(n Node, freeCPUs, freeGPUs int) Node {
	n.FreeCPUs, n.FreeGPUs = freeCPUs, freeGPUs
	return n
}

func spot(n Node) Node { n.Spot = true; return n }

func job(id string, prio int, index uint64, ranks, cpus, gpus int) Job {
	return Job{ID: id, Priority: prio, Index: index, Ranks: ranks, CPUsPerRank: cpus, GPUsPerRank: gpus}
}

func TestSchedule(t *testing.T) {
	tests := []struct {
		name    string
		jobs    []Job
		nodes   []Node
		placed  map[string][]string // job -> node per rank
		pending map[string]Cause
		reasons map[string]string // exact reasons to check, where given
		blocked map[string]string // job -> BlockedBy, where given
	}{
		{
			name:   "single job on the only node",
			jobs:   []Job{job("a", 0, 1, 1, 2, 1)},
			nodes:  []Node{node("n1", 8, 2)},
			placed: map[string][]string{"a": {"n1"}},
		},
		{
			name: "higher priority first even when submitted later",
			jobs: []Job{
				job("low", 0, 1, 2, 1, 1),
				job("high", 5, 2, 2, 1, 1),
			},
			nodes:   []Node{node("n1", 8, 2)},
			placed:  map[string][]string{"high": {"n1", "n1"}},
			pending: map[string]Cause{"low": NoCapacity},
		},
		{
			name: "FIFO within a priority",
			jobs: []Job{
				job("second", 1, 20, 1, 4, 0),
				job("first", 1, 10, 1, 4, 0),
			},
			nodes:   []Node{node("n1", 4, 0)},
			placed:  map[string][]string{"first": {"n1"}},
			pending: map[string]Cause{"second": NoCapacity},
			reasons: map[string]string{"second": "needs 1 rank of 4 CPUs, 0 fit"},
		},
		{
			name:    "gang that does not fit is not partially placed",
			jobs:    []Job{job("g", 0, 1, 4, 1, 1)},
			nodes:   []Node{busy(node("n1", 8, 4), 7, 1), busy(node("n2", 8, 4), 8, 1)},
			pending: map[string]Cause{"g": NoCapacity},
			reasons: map[string]string{"g": "needs 4 ranks of 1 GPU and 1 CPU, 2 fit"},
		},
		{
			name: "blocked head holds its nodes against smaller lower jobs",
			jobs: []Job{
				job("big", 5, 1, 4, 1, 1),
				job("small", 1, 2, 1, 1, 1),
			},
			nodes:   []Node{busy(node("n1", 8, 4), 8, 2), busy(node("n2", 8, 4), 8, 1)},
			pending: map[string]Cause{"big": NoCapacity, "small": Blocked},
			blocked: map[string]string{"small": "big"},
			reasons: map[string]string{"small": "needs 1 rank of 1 GPU and 1 CPU, 0 fit; 2 of its nodes held for job big"},
		},
		{
			name: "lower jobs backfill onto nodes the blocked job cannot use",
			jobs: []Job{
				job("gpu-big", 5, 1, 4, 1, 1),
				job("cpu", 1, 2, 1, 4, 0),        // fits the CPU-only node
				job("cpu-on-gpu", 1, 3, 1, 2, 0), // only the GPU node has room: held
			},
			nodes:   []Node{busy(node("g1", 8, 4), 8, 2), node("c1", 4, 0)},
			placed:  map[string][]string{"cpu": {"c1"}},
			pending: map[string]Cause{"gpu-big": NoCapacity, "cpu-on-gpu": Blocked},
		},
		{
			name: "unsatisfiable job waits without blocking",
			jobs: []Job{
				job("huge", 9, 1, 16, 1, 1),
				job("ok", 0, 2, 2, 1, 1),
			},
			nodes:   []Node{node("n1", 8, 4), node("n2", 8, 4)},
			placed:  map[string][]string{"ok": {"n1", "n1"}},
			pending: map[string]Cause{"huge": Unsatisfiable},
			reasons: map[string]string{"huge": "needs 16 ranks of 1 GPU and 1 CPU, eligible nodes hold 8 even when idle"},
		},
		{
			name:    "rank larger than any node is unsatisfiable",
			jobs:    []Job{job("wide", 0, 1, 1, 1, 8)},
			nodes:   []Node{node("n1", 8, 4), node("n2", 8, 4)},
			pending: map[string]Cause{"wide": Unsatisfiable},
		},
		{
			name: "excluded node is avoided",
			jobs: []Job{{ID: "r", Ranks: 1, CPUsPerRank: 1, GPUsPerRank: 1, Excluded: []string{"n1"}}},
			// n1 would be the best fit (fewest free GPUs).
			nodes:  []Node{busy(node("n1", 8, 4), 8, 1), node("n2", 8, 4)},
			placed: map[string][]string{"r": {"n2"}},
		},
		{
			name:    "excluding every node makes the job unsatisfiable",
			jobs:    []Job{{ID: "r", Ranks: 1, CPUsPerRank: 1, Excluded: []string{"n1", "n2"}}},
			nodes:   []Node{node("n1", 8, 0), node("n2", 8, 0)},
			pending: map[string]Cause{"r": Unsatisfiable},
		},
		{
			name: "draining and dead nodes take nothing",
			jobs: []Job{job("a", 0, 1, 2, 1, 1)},
			nodes: []Node{
				func() Node { n := node("drain", 8, 4); n.Draining = true; return n }(),
				func() Node { n := node("dead", 8, 4); n.Status = StatusFailed; return n }(),
				func() Node { n := node("left", 8, 4); n.Status = StatusLeft; return n }(),
				node("up", 8, 1),
			},
			pending: map[string]Cause{"a": Unsatisfiable},
			reasons: map[string]string{"a": "needs 2 ranks of 1 GPU and 1 CPU, eligible nodes hold 1 even when idle"},
		},
		{
			name: "spot nodes only for jobs that tolerate them, and preferred by those",
			jobs: []Job{
				job("strict", 1, 1, 1, 1, 1),
				func() Job { j := job("tolerant", 1, 2, 1, 1, 1); j.SpotOK = true; return j }(),
			},
			nodes:  []Node{spot(node("s1", 8, 4)), node("o1", 8, 4)},
			placed: map[string][]string{"strict": {"o1"}, "tolerant": {"s1"}},
		},
		{
			name:   "spot-tolerant job spills onto on-demand when spot is too small",
			jobs:   []Job{func() Job { j := job("t", 0, 1, 3, 1, 1); j.SpotOK = true; return j }()},
			nodes:  []Node{spot(node("s1", 8, 1)), node("o1", 8, 2)},
			placed: map[string][]string{"t": {"o1", "o1", "s1"}},
		},
		{
			name:   "best fit: the smallest node that holds the whole gang",
			jobs:   []Job{job("g", 0, 1, 4, 1, 1)},
			nodes:  []Node{node("n8", 16, 8), node("n4", 16, 4), node("n2", 16, 2)},
			placed: map[string][]string{"g": {"n4", "n4", "n4", "n4"}},
		},
		{
			name: "fewest nodes: fill the largest, then best fit the rest",
			jobs: []Job{job("g", 0, 1, 6, 1, 1)},
			// slots: a 4, b 4, c 2, d 3. Largest first (a, tie with b broken
			// by ID), then the 2 remaining on c, the smallest that holds 2.
			nodes:  []Node{node("a", 16, 4), node("b", 16, 4), node("c", 16, 2), node("d", 16, 3)},
			placed: map[string][]string{"g": {"a", "a", "a", "a", "c", "c"}},
		},
		{
			name:   "CPU jobs prefer nodes without free GPUs on a tie",
			jobs:   []Job{job("c", 0, 1, 1, 4, 0)},
			nodes:  []Node{node("a-gpu", 4, 2), node("b-cpu", 4, 0)},
			placed: map[string][]string{"c": {"b-cpu"}},
		},
		{
			name: "capacity is consumed across jobs in one pass",
			jobs: []Job{
				job("j1", 0, 1, 2, 2, 1),
				job("j2", 0, 2, 2, 2, 1),
				job("j3", 0, 3, 1, 2, 1),
			},
			nodes:   []Node{node("n1", 8, 4)},
			placed:  map[string][]string{"j1": {"n1", "n1"}, "j2": {"n1", "n1"}},
			pending: map[string]Cause{"j3": NoCapacity},
			reasons: map[string]string{"j3": "needs 1 rank of 1 GPU and 2 CPUs, 0 fit"},
		},
		{
			name:    "CPU limit binds before GPUs",
			jobs:    []Job{job("j", 0, 1, 3, 4, 1)},
			nodes:   []Node{node("n1", 8, 4)},
			pending: map[string]Cause{"j": Unsatisfiable},
		},
		{
			name: "invalid job is reported and blocks nothing",
			jobs: []Job{
				job("bad", 9, 1, 0, 1, 0),
				job("good", 0, 2, 1, 1, 0),
			},
			nodes:   []Node{node("n1", 1, 0)},
			placed:  map[string][]string{"good": {"n1"}},
			pending: map[string]Cause{"bad": Invalid},
		},
		{
			name:    "no nodes",
			jobs:    []Job{job("a", 0, 1, 1, 1, 0)},
			pending: map[string]Cause{"a": Unsatisfiable},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Schedule(tt.jobs, tt.nodes)
			if err != nil {
				t.Fatalf("Schedule: %v", err)
			}
			checkInvariants(t, tt.jobs, tt.nodes, res)
			placed := map[string][]string{}
			for _, p := range res.Placements {
				placed[p.JobID] = p.Nodes
			}
			if tt.placed == nil {
				tt.placed = map[string][]string{}
			}
			if !reflect.DeepEqual(placed, tt.placed) {
				t.Errorf("placements = %v, want %v", placed, tt.placed)
			}
			pending := map[string]Cause{}
			for _, p := range res.Pending {
				pending[p.JobID] = p.Cause
				if want, ok := tt.reasons[p.JobID]; ok && p.Reason != want {
					t.Errorf("reason for %s = %q, want %q", p.JobID, p.Reason, want)
				}
				if want, ok := tt.blocked[p.JobID]; ok && p.BlockedBy != want {
					t.Errorf("%s blocked by %q, want %q", p.JobID, p.BlockedBy, want)
				}
			}
			if tt.pending == nil {
				tt.pending = map[string]Cause{}
			}
			if !reflect.DeepEqual(pending, tt.pending) {
				t.Errorf("pending = %v, want %v", pending, tt.pending)
			}
		})
	}
}

func TestScheduleInvalidInput(t *testing.T) {
	tests := []struct {
		name  string
		jobs  []Job
		nodes []Node
	}{
		{"duplicate node", nil, []Node{node("n", 1, 0), node("n", 2, 0)}},
		{"duplicate job", []Job{job("j", 0, 1, 1, 1, 0), job("j", 1, 2, 1, 1, 0)}, nil},
		{"free above total", nil, []Node{busy(node("n", 1, 0), 2, 0)}},
		{"negative", nil, []Node{busy(node("n", 1, 0), -1, 0)}},
		{"empty id", nil, []Node{node("", 1, 0)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Schedule(tt.jobs, tt.nodes); !errors.Is(err, ErrInvalidInput) {
				t.Fatalf("err = %v, want ErrInvalidInput", err)
			}
		})
	}
}

// TestHeadOfLineNoStarvation plays a cluster forward: a big gang queued
// behind running small jobs must start once they finish, even though new
// small jobs keep arriving that would fit in the freed capacity.
func TestHeadOfLineNoStarvation(t *testing.T) {
	// One 4-GPU node, fully used by four 1-GPU jobs that finish one per round.
	n := busy(node("n1", 16, 4), 12, 0)
	big := job("big", 0, 10, 1, 4, 4) // one rank that needs the whole node
	for round := 1; round <= 4; round++ {
		n.FreeGPUs++ // a running small job finishes
		n.FreeCPUs++
		small := job(fmt.Sprintf("small-%d", round), 0, uint64(100+round), 1, 1, 1)
		res, err := Schedule([]Job{big, small}, []Node{n})
		if err != nil {
			t.Fatal(err)
		}
		if round < 4 {
			if len(res.Placements) != 0 {
				t.Fatalf("round %d: placed %v while big waits", round, res.Placements)
			}
			continue
		}
		if len(res.Placements) != 1 || res.Placements[0].JobID != "big" {
			t.Fatalf("round 4: placements %v, want big", res.Placements)
		}
	}
}

func TestScheduleDeterministicUnderPermutation(t *testing.T) {
	jobs, nodes := workload(rand.New(rand.NewPCG(1, 2)), 300, 30)
	want, err := Schedule(jobs, nodes)
	if err != nil {
		t.Fatal(err)
	}
	if len(want.Placements) == 0 || len(want.Pending) == 0 {
		t.Fatalf("workload should place some jobs and queue others: %d placed, %d pending",
			len(want.Placements), len(want.Pending))
	}
	checkInvariants(t, jobs, nodes, want)
	r := rand.New(rand.NewPCG(3, 4))
	for i := range 20 {
		js, ns := slices.Clone(jobs), slices.Clone(nodes)
		r.Shuffle(len(js), func(a, b int) { js[a], js[b] = js[b], js[a] })
		r.Shuffle(len(ns), func(a, b int) { ns[a], ns[b] = ns[b], ns[a] })
		got, err := Schedule(js, ns)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("permutation %d: result differs", i)
		}
	}
	// The inputs are not modified.
	again, _ := Schedule(jobs, nodes)
	if !reflect.DeepEqual(again, want) {
		t.Fatal("second call on the same input differs")
	}
}

// checkInvariants verifies gang placement and capacity: every job appears
// exactly once, placed jobs have all their ranks on eligible nodes, and no
// node gives out more than it had free.
func checkInvariants(t *testing.T, jobs []Job, nodes []Node, res Result) {
	t.Helper()
	byJob := map[string]Job{}
	for _, j := range jobs {
		byJob[j.ID] = j
	}
	byNode := map[string]Node{}
	for _, n := range nodes {
		byNode[n.ID] = n
	}
	seen := map[string]bool{}
	usedCPU, usedGPU := map[string]int{}, map[string]int{}
	for _, p := range res.Placements {
		j := byJob[p.JobID]
		if seen[p.JobID] {
			t.Errorf("job %s appears twice", p.JobID)
		}
		seen[p.JobID] = true
		if len(p.Nodes) != j.Ranks {
			t.Errorf("job %s: %d ranks placed, want %d", j.ID, len(p.Nodes), j.Ranks)
		}
		for _, id := range p.Nodes {
			n := byNode[id]
			if n.Status != StatusAlive || n.Draining || (n.Spot && !j.SpotOK) || slices.Contains(j.Excluded, id) {
				t.Errorf("job %s placed on ineligible node %s", j.ID, id)
			}
			usedCPU[id] += j.CPUsPerRank
			usedGPU[id] += j.GPUsPerRank
		}
	}
	for _, p := range res.Pending {
		if seen[p.JobID] {
			t.Errorf("job %s appears twice", p.JobID)
		}
		seen[p.JobID] = true
		if p.Reason == "" {
			t.Errorf("job %s pending without a reason", p.JobID)
		}
	}
	if len(seen) != len(jobs) {
		t.Errorf("%d jobs in result, want %d", len(seen), len(jobs))
	}
	for id, n := range byNode {
		if usedCPU[id] > n.FreeCPUs || usedGPU[id] > n.FreeGPUs {
			t.Errorf("node %s overcommitted: %d/%d CPUs, %d/%d GPUs",
				id, usedCPU[id], n.FreeCPUs, usedGPU[id], n.FreeGPUs)
		}
	}
}

// workload generates a mixed queue and a heterogeneous, partly busy cluster.
func workload(r *rand.Rand, nJobs, nNodes int) ([]Job, []Node) {
	nodes := make([]Node, nNodes)
	for i := range nodes {
		cpus, gpus := 32, []int{0, 4, 8}[r.IntN(3)]
		n := node(fmt.Sprintf("node-%03d", i), cpus, gpus)
		n.FreeCPUs = r.IntN(cpus + 1)
		n.FreeGPUs = r.IntN(gpus + 1)
		n.Spot = r.IntN(4) == 0
		n.Zone = fmt.Sprintf("zone-%d", i%3)
		switch r.IntN(20) {
		case 0:
			n.Draining = true
		case 1:
			n.Status = StatusFailed
		}
		nodes[i] = n
	}
	jobs := make([]Job, nJobs)
	for i := range jobs {
		j := job(fmt.Sprintf("job-%04d", i), r.IntN(4), uint64(i+1), 1+r.IntN(8), 1+r.IntN(4), r.IntN(3))
		j.SpotOK = r.IntN(2) == 0
		if r.IntN(10) == 0 {
			j.Excluded = []string{nodes[r.IntN(nNodes)].ID}
		}
		jobs[i] = j
	}
	return jobs, nodes
}

func TestNextAttempt(t *testing.T) {
	tests := []struct {
		name        string
		prev        Retry
		end         AttemptEnd
		maxRestarts int
		want        Decision
	}{
		{
			name:        "failure with restarts left requeues and excludes the node",
			prev:        Retry{},
			end:         AttemptEnd{Kind: Failed, Node: "n2"},
			maxRestarts: 2,
			want:        Decision{Requeue: true, Retry: Retry{Restarts: 1, Excluded: []string{"n2"}}},
		},
		{
			name:        "exclusions stay sorted and unique",
			prev:        Retry{Restarts: 1, Excluded: []string{"n3", "n1"}},
			end:         AttemptEnd{Kind: Lost, Node: "n2"},
			maxRestarts: 3,
			want:        Decision{Requeue: true, Retry: Retry{Restarts: 2, Excluded: []string{"n1", "n2", "n3"}}},
		},
		{
			name:        "failing again on an excluded node adds it once",
			prev:        Retry{Restarts: 1, Excluded: []string{"n1"}},
			end:         AttemptEnd{Kind: Failed, Node: "n1"},
			maxRestarts: 3,
			want:        Decision{Requeue: true, Retry: Retry{Restarts: 2, Excluded: []string{"n1"}}},
		},
		{
			name:        "last allowed restart",
			prev:        Retry{Restarts: 1, Excluded: []string{"n1"}},
			end:         AttemptEnd{Kind: Failed, Node: "n2"},
			maxRestarts: 2,
			want:        Decision{Requeue: true, Retry: Retry{Restarts: 2, Excluded: []string{"n1", "n2"}}},
		},
		{
			name:        "restarts used up gives up",
			prev:        Retry{Restarts: 2, Excluded: []string{"n1", "n2"}},
			end:         AttemptEnd{Kind: Failed, Node: "n3"},
			maxRestarts: 2,
			want:        Decision{Requeue: false, Retry: Retry{Restarts: 3, Excluded: []string{"n1", "n2", "n3"}}},
		},
		{
			name:        "max_restarts 0 gives up on the first failure",
			end:         AttemptEnd{Kind: Lost, Node: "n1"},
			maxRestarts: 0,
			want:        Decision{Requeue: false, Retry: Retry{Restarts: 1, Excluded: []string{"n1"}}},
		},
		{
			name:        "negative max_restarts counts as 0",
			end:         AttemptEnd{Kind: Failed},
			maxRestarts: -1,
			want:        Decision{Requeue: false, Retry: Retry{Restarts: 1}},
		},
		{
			name:        "preemption neither counts nor excludes",
			prev:        Retry{Restarts: 2, Excluded: []string{"n1"}},
			end:         AttemptEnd{Kind: Preempted, Node: "n2"},
			maxRestarts: 2,
			want:        Decision{Requeue: true, Retry: Retry{Restarts: 2, Excluded: []string{"n1"}}},
		},
		{
			name:        "unknown kind counts as failure",
			end:         AttemptEnd{Kind: EndKind(99), Node: "n1"},
			maxRestarts: 1,
			want:        Decision{Requeue: true, Retry: Retry{Restarts: 1, Excluded: []string{"n1"}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prevExcluded := slices.Clone(tt.prev.Excluded)
			got := NextAttempt(tt.prev, tt.end, tt.maxRestarts)
			if got.Reason == "" {
				t.Error("empty reason")
			}
			got.Reason = ""
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("NextAttempt = %+v, want %+v", got, tt.want)
			}
			if !slices.Equal(tt.prev.Excluded, prevExcluded) {
				t.Errorf("prev modified: %v", tt.prev.Excluded)
			}
		})
	}
}

// BenchmarkSchedule runs one pass over 1,000 queued jobs and 100 nodes and
// reports placements (jobs started) per second.
func BenchmarkSchedule(b *testing.B) {
	for _, bc := range []struct {
		name  string
		nodes func(i int) Node
	}{
		// Idle 4-GPU nodes: about a third of the queue starts before a
		// gang that does not fit holds the nodes the rest could use.
		{"idle-4gpu", func(i int) Node { return node(fmt.Sprintf("node-%03d", i), 32, 4) }},
		// Large idle nodes: every job fits.
		{"idle-16gpu", func(i int) Node { return node(fmt.Sprintf("node-%03d", i), 128, 16) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			r := rand.New(rand.NewPCG(7, 8))
			nodes := make([]Node, 100)
			for i := range nodes {
				nodes[i] = bc.nodes(i)
				nodes[i].Spot = i%5 == 0
			}
			jobs := make([]Job, 1000)
			for i := range jobs {
				jobs[i] = job(fmt.Sprintf("job-%04d", i), r.IntN(4), uint64(i+1), 1+r.IntN(4), 1+r.IntN(4), r.IntN(2))
				jobs[i].SpotOK = i%2 == 0
			}
			placed := 0
			b.ReportAllocs()
			for b.Loop() {
				res, err := Schedule(jobs, nodes)
				if err != nil {
					b.Fatal(err)
				}
				placed += len(res.Placements)
			}
			b.ReportMetric(float64(placed)/b.Elapsed().Seconds(), "placements/s")
			b.ReportMetric(float64(placed)/float64(b.N), "placed/pass")
		})
	}
}
