package state

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/trainctl/trainctl/coordinator/structs"
)

// Store is the in-memory state, guarded by a RWMutex. Reads may run
// concurrently with each other and with snapshot encoding; the FSM is the only
// writer.
type Store struct {
	mu sync.RWMutex
	t  tables
	// tableIndex holds each table's last change (see watch.go); it is not
	// part of a snapshot: a restore sets every table to the snapshot's index.
	tableIndex map[Table]uint64
	// notify is closed, and replaced, on every change (see Wait).
	notify chan struct{}
	// onRemoved is told what garbage collection removed (see gc.go).
	onRemoved RemovedFunc
}

// tables is the state proper; every map value is immutable once stored.
type tables struct {
	// index is the Raft index of the last command that changed the state.
	index         uint64
	jobs          map[string]*structs.Job
	jobsByRequest map[string]string
	workers       map[string]*structs.Worker
	// assignments holds the ranks of each job's running attempt, by rank.
	assignments map[string][]*structs.Assignment
	checkpoints map[string]*structs.Checkpoint
	// jobCheckpoints lists each job's checkpoint digests in commit order.
	jobCheckpoints map[string][]string
	metrics        map[string][]structs.Metric
	// datasets lists each name's versions in seq order.
	datasets map[string][]*structs.DatasetVersion
	servers  map[string]*structs.Server
	sweeps   map[string]*structs.Sweep
	// sweepsByRequest maps a sweep's client request id to its id.
	sweepsByRequest map[string]string
	// models lists each model name's versions in version order.
	models map[string][]*structs.ModelVersion
	// gc holds what garbage collection leaves of jobs and sweeps (gc.go).
	gc gcTables
}

func newTables() tables {
	return tables{
		jobs:            make(map[string]*structs.Job),
		jobsByRequest:   make(map[string]string),
		workers:         make(map[string]*structs.Worker),
		assignments:     make(map[string][]*structs.Assignment),
		checkpoints:     make(map[string]*structs.Checkpoint),
		jobCheckpoints:  make(map[string][]string),
		metrics:         make(map[string][]structs.Metric),
		datasets:        make(map[string][]*structs.DatasetVersion),
		servers:         make(map[string]*structs.Server),
		sweeps:          make(map[string]*structs.Sweep),
		sweepsByRequest: make(map[string]string),
		models:          make(map[string][]*structs.ModelVersion),
		gc:              newGCTables(),
	}
}

// NewStore returns an empty store.
func NewStore() *Store {
	return &Store{t: newTables(), tableIndex: make(map[Table]uint64), notify: make(chan struct{})}
}

// Index returns the Raft index of the last command that changed the state.
func (s *Store) Index() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.t.index
}

// Job returns the job with the given id, or an error wrapping
// structs.ErrNotFound.
func (s *Store) Job(id string) (*structs.Job, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	j, ok := s.t.jobs[id]
	if !ok {
		return nil, fmt.Errorf("job %q: %w", id, structs.ErrNotFound)
	}
	return j, nil
}

// JobByRequestID returns the job submitted with the given client request id,
// or an error wrapping structs.ErrNotFound.
func (s *Store) JobByRequestID(requestID string) (*structs.Job, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	id, ok := s.t.jobsByRequest[requestID]
	if !ok {
		return nil, fmt.Errorf("job with request id %q: %w", requestID, structs.ErrNotFound)
	}
	return s.t.jobs[id], nil
}

// Jobs returns all jobs in submission order (create index, then id).
func (s *Store) Jobs() []*structs.Job {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return sortedJobs(s.t.jobs)
}

func sortedJobs(m map[string]*structs.Job) []*structs.Job {
	out := slices.Collect(maps.Values(m))
	slices.SortFunc(out, func(a, b *structs.Job) int {
		return cmp.Or(cmp.Compare(a.CreateIndex, b.CreateIndex), cmp.Compare(a.ID, b.ID))
	})
	return out
}

// Worker returns the worker with the given id, or an error wrapping
// structs.ErrNotFound.
func (s *Store) Worker(id string) (*structs.Worker, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	w, ok := s.t.workers[id]
	if !ok {
		return nil, fmt.Errorf("worker %q: %w", id, structs.ErrNotFound)
	}
	return w, nil
}

// Workers returns all workers ordered by id.
func (s *Store) Workers() []*structs.Worker {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return sortedByKey(s.t.workers)
}

// Assignments returns the ranks of running attempts, ordered by job id and
// rank; with a non-empty workerID only those held by that worker.
func (s *Store) Assignments(workerID string) []*structs.Assignment {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []*structs.Assignment
	for _, id := range slices.Sorted(maps.Keys(s.t.assignments)) {
		for _, a := range s.t.assignments[id] {
			if workerID == "" || a.WorkerID == workerID {
				out = append(out, a)
			}
		}
	}
	return out
}

// Checkpoint returns the checkpoint record with the given digest, or an error
// wrapping structs.ErrNotFound.
func (s *Store) Checkpoint(digest string) (*structs.Checkpoint, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	c, ok := s.t.checkpoints[digest]
	if !ok {
		return nil, fmt.Errorf("checkpoint %q: %w", digest, structs.ErrNotFound)
	}
	return c, nil
}

// Checkpoints returns a job's checkpoints in the order they were registered,
// or all checkpoints ordered by job and then that order when jobID is empty.
func (s *Store) Checkpoints(jobID string) []*structs.Checkpoint {
	s.mu.RLock()
	defer s.mu.RUnlock()
	ids := []string{jobID}
	if jobID == "" {
		ids = slices.Sorted(maps.Keys(s.t.jobCheckpoints))
	}
	var out []*structs.Checkpoint
	for _, id := range ids {
		for _, d := range s.t.jobCheckpoints[id] {
			out = append(out, s.t.checkpoints[d])
		}
	}
	return out
}

// Metrics returns a job's metric reports in the order they were committed.
func (s *Store) Metrics(jobID string) []structs.Metric {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return slices.Clone(s.t.metrics[jobID])
}

// MetricCount returns how many metric reports of a job the state holds,
// without copying them (Metrics copies).
func (s *Store) MetricCount(jobID string) int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.t.metrics[jobID])
}

// DatasetVersions returns the versions of one dataset name in seq order, or of
// all names ordered by name when name is empty.
func (s *Store) DatasetVersions(name string) []*structs.DatasetVersion {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if name != "" {
		return slices.Clone(s.t.datasets[name])
	}
	var out []*structs.DatasetVersion
	for _, n := range slices.Sorted(maps.Keys(s.t.datasets)) {
		out = append(out, s.t.datasets[n]...)
	}
	return out
}

// Server returns the registry entry of a coordinator, or an error wrapping
// structs.ErrNotFound.
func (s *Store) Server(id string) (*structs.Server, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	srv, ok := s.t.servers[id]
	if !ok {
		return nil, fmt.Errorf("server %q: %w", id, structs.ErrNotFound)
	}
	return srv, nil
}

// Servers returns the server registry ordered by id.
func (s *Store) Servers() []*structs.Server {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return sortedByKey(s.t.servers)
}

func sortedByKey[V any](m map[string]*V) []*V {
	out := make([]*V, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, m[k])
	}
	return out
}
