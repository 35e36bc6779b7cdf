package state

import (
	"context"
	"fmt"
)

// Table names a part of the state that blocking queries watch. Each table
// keeps the Raft index of the last command that changed it, so a reader of
// one table is not woken by writes to another.
type Table string

// The tables. A placement or release changes both Assignments and Workers
// (the workers' free capacity); Assignments alone is what an idle worker
// watches, undisturbed by the other workers' heartbeats.
const (
	TableJobs        Table = "jobs"
	TableWorkers     Table = "workers"
	TableAssignments Table = "assignments"
	TableCheckpoints Table = "checkpoints"
	TableMetrics     Table = "metrics"
	TableDatasets    Table = "datasets"
	TableServers     Table = "servers"
	TableSweeps      Table = "sweeps"
	TableModels      Table = "models"
)

// Tables lists every table.
func Tables() []Table {
	return []Table{TableJobs, TableWorkers, TableAssignments, TableCheckpoints, TableMetrics, TableDatasets, TableServers, TableSweeps, TableModels}
}

// changed records that the command at index changed the given tables (and
// so the state) and wakes every waiter. Callers hold the write lock.
func (s *Store) changed(index uint64, tables ...Table) {
	s.t.index = index
	for _, t := range tables {
		s.tableIndex[t] = index
	}
	s.wake()
}

// wake closes the channel waiters block on and makes a new one. Callers
// hold the write lock.
func (s *Store) wake() {
	close(s.notify)
	s.notify = make(chan struct{})
}

// TableIndex returns the highest index of the given tables: the Raft index
// of the last command that changed any of them (0 before the first). With
// no tables it is the index of the whole state.
func (s *Store) TableIndex(tables ...Table) uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.tableIndexLocked(tables)
}

func (s *Store) tableIndexLocked(tables []Table) uint64 {
	if len(tables) == 0 {
		return s.t.index
	}
	var idx uint64
	for _, t := range tables {
		idx = max(idx, s.tableIndex[t])
	}
	return idx
}

// Wait blocks until one of the tables changes past minIndex (TableIndex >
// minIndex) or ctx ends, and returns TableIndex then: the index a blocking
// query answers with and its next call passes back. It returns at once when
// the tables are already past minIndex, so a caller that passes the index
// of what it last saw never misses a change made in between. Wait never
// fails; a caller that needs to know whether ctx ended checks ctx.Err().
func (s *Store) Wait(ctx context.Context, minIndex uint64, tables ...Table) uint64 {
	for {
		s.mu.RLock()
		idx, ch := s.tableIndexLocked(tables), s.notify
		s.mu.RUnlock()
		if idx > minIndex {
			return idx
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return idx
		}
	}
}

// CheckTables returns an error naming the first unknown table, if any.
func CheckTables(tables ...Table) error {
	for _, t := range tables {
		switch t {
		case TableJobs, TableWorkers, TableAssignments, TableCheckpoints, TableMetrics, TableDatasets, TableServers, TableSweeps, TableModels:
		default:
			return fmt.Errorf("unknown table %q", t)
		}
	}
	return nil
}
