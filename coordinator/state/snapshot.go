package state

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"

	"github.com/trainctl/trainctl/coordinator/structs"
)

// snapshotVersion is the format version of an encoded snapshot.
const snapshotVersion = 1

// snapshotData is the whole state in a canonical order: every list sorted
// by its key, so equal states encode to equal bytes.
type snapshotData struct {
	Version     int                       `json:"version"`
	Index       uint64                    `json:"index"`
	Jobs        []*structs.Job            `json:"jobs"`
	Workers     []*structs.Worker         `json:"workers"`
	Assignments []*structs.Assignment     `json:"assignments"`
	Checkpoints []*structs.Checkpoint     `json:"checkpoints"`
	Metrics     []structs.Metric          `json:"metrics"`
	Datasets    []*structs.DatasetVersion `json:"datasets"`
	Servers     []*structs.Server         `json:"servers"`
	// Sweeps and Models came after the first release of version 1: a
	// snapshot written before them lacks the keys and decodes to none.
	Sweeps []*structs.Sweep        `json:"sweeps"`
	Models []*structs.ModelVersion `json:"models"`
	// JobSummaries and SweepSummaries came with garbage collection (gc.go);
	// a snapshot written before lacks them and decodes to none.
	JobSummaries   []*structs.JobSummary   `json:"job_summaries,omitempty"`
	SweepSummaries []*structs.SweepSummary `json:"sweep_summaries,omitempty"`
}

// capture copies the tables into a snapshotData under the read lock. The
// objects themselves are immutable and shared.
func (s *Store) capture() *snapshotData {
	s.mu.RLock()
	defer s.mu.RUnlock()
	d := &snapshotData{
		Version: snapshotVersion,
		Index:   s.t.index,
		Jobs:    sortedJobs(s.t.jobs),
		Workers: sortedByKey(s.t.workers),
		Servers: sortedByKey(s.t.servers),
		Sweeps:  sortedSweeps(s.t.sweeps),
	}
	for _, id := range slices.Sorted(maps.Keys(s.t.assignments)) {
		d.Assignments = append(d.Assignments, s.t.assignments[id]...)
	}
	for _, id := range slices.Sorted(maps.Keys(s.t.jobCheckpoints)) {
		for _, dg := range s.t.jobCheckpoints[id] {
			d.Checkpoints = append(d.Checkpoints, s.t.checkpoints[dg])
		}
	}
	for _, id := range slices.Sorted(maps.Keys(s.t.metrics)) {
		d.Metrics = append(d.Metrics, s.t.metrics[id]...)
	}
	for _, name := range slices.Sorted(maps.Keys(s.t.datasets)) {
		d.Datasets = append(d.Datasets, s.t.datasets[name]...)
	}
	for _, name := range slices.Sorted(maps.Keys(s.t.models)) {
		d.Models = append(d.Models, s.t.models[name]...)
	}
	s.captureGC(d)
	return d
}

func (d *snapshotData) encode(w io.Writer) error {
	return json.NewEncoder(w).Encode(d)
}

// Encode writes the whole state as canonical JSON, the format of the FSM's
// snapshots: two stores that applied the same commands write the same bytes.
func (s *Store) Encode(w io.Writer) error {
	return s.capture().encode(w)
}

// decodeSnapshot reads a snapshot strictly and rebuilds the tables and their
// indexes from it.
func decodeSnapshot(r io.Reader) (tables, error) {
	var d snapshotData
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		return tables{}, fmt.Errorf("decode: %w: %w", structs.ErrInvalid, err)
	}
	if d.Version != snapshotVersion {
		return tables{}, fmt.Errorf("%w: snapshot version %d, want %d", structs.ErrInvalid, d.Version, snapshotVersion)
	}
	t := newTables()
	t.index = d.Index
	for _, j := range d.Jobs {
		t.jobs[j.ID] = j
		if j.RequestID != "" {
			t.jobsByRequest[j.RequestID] = j.ID
		}
	}
	for _, w := range d.Workers {
		t.workers[w.ID] = w
	}
	for _, a := range d.Assignments {
		t.assignments[a.JobID] = append(t.assignments[a.JobID], a)
	}
	for _, c := range d.Checkpoints {
		t.checkpoints[c.Digest] = c
		t.jobCheckpoints[c.JobID] = append(t.jobCheckpoints[c.JobID], c.Digest)
	}
	for _, m := range d.Metrics {
		t.metrics[m.JobID] = append(t.metrics[m.JobID], m)
	}
	for _, v := range d.Datasets {
		t.datasets[v.Name] = append(t.datasets[v.Name], v)
	}
	for _, srv := range d.Servers {
		t.servers[srv.ID] = srv
	}
	for _, sw := range d.Sweeps {
		t.sweeps[sw.ID] = sw
		if sw.RequestID != "" {
			t.sweepsByRequest[sw.RequestID] = sw.ID
		}
	}
	for _, m := range d.Models {
		t.models[m.Name] = append(t.models[m.Name], m)
	}
	restoreGC(&t, &d)
	return t, nil
}
