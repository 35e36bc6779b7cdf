// Package metrics is a coordinator's own store of training time series: the
// per-step points (loss, throughput) workers report, which are not
// replicated. Each coordinator keeps the points it received, bounded in
// count per job and overall and by age; a job's curve is the union of every
// coordinator's points and the epoch-end reports in the replicated state
// (see docs/architecture.md).
package metrics

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/trainctl/trainctl/internal/durable"
)

// Point is one reported step of a job.
type Point struct {
	Attempt int                `json:"attempt"`
	Epoch   int                `json:"epoch"`
	Step    int64              `json:"step"`
	Values  map[string]float64 `json:"values"`
	Time    time.Time          `json:"time"`
}

// Config bounds a Store; zero fields take DefaultConfig's values.
type Config struct {
	// Retention is how long a job's series stays after its last point.
	Retention time.Duration
	// MaxPointsPerJob bounds one job's series: when it is full, every
	// other point is dropped, so the series keeps its whole span at half
	// the resolution.
	MaxPointsPerJob int
	// MaxPoints bounds all series together: beyond it the series written
	// least recently are dropped whole.
	MaxPoints int
	// MaxValues bounds the values of one point.
	MaxValues int
}

// DefaultConfig returns the default bounds: 7 days, 2048 points a job,
// 262144 points in all (some tens of MB), 32 values a point.
func DefaultConfig() Config {
	return Config{Retention: 7 * 24 * time.Hour, MaxPointsPerJob: 2048, MaxPoints: 1 << 18, MaxValues: 32}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Retention <= 0 {
		c.Retention = d.Retention
	}
	if c.MaxPointsPerJob <= 0 {
		c.MaxPointsPerJob = d.MaxPointsPerJob
	}
	if c.MaxPoints <= 0 {
		c.MaxPoints = d.MaxPoints
	}
	if c.MaxValues <= 0 {
		c.MaxValues = d.MaxValues
	}
	c.MaxPointsPerJob = max(c.MaxPointsPerJob, 2)
	c.MaxPoints = max(c.MaxPoints, c.MaxPointsPerJob)
	return c
}

// ErrInvalid is wrapped by the error of a point the store refuses.
var ErrInvalid = errors.New("invalid metric point")

// Store holds the series of the jobs; it is safe for concurrent use.
type Store struct {
	cfg   Config
	mu    sync.Mutex
	jobs  map[string]*series
	total int
}

type series struct {
	points []Point
	// written is when the series last received a point.
	written time.Time
	// progress is when a point of the series was last committed as the
	// job's progress (see ProgressDue).
	progress time.Time
}

// New returns an empty store bounded by cfg.
func New(cfg Config) *Store {
	return &Store{cfg: cfg.withDefaults(), jobs: make(map[string]*series)}
}

// Config returns the store's bounds.
func (s *Store) Config() Config { return s.cfg }

// Add appends points to a job's series, received at now. A point with more
// than MaxValues values is refused, and so then is the whole call.
func (s *Store) Add(jobID string, now time.Time, pts ...Point) error {
	for i, p := range pts {
		if len(p.Values) > s.cfg.MaxValues {
			return fmt.Errorf("metrics[%d].values: %w: %d values, at most %d", i, ErrInvalid, len(p.Values), s.cfg.MaxValues)
		}
	}
	if len(pts) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sr := s.jobs[jobID]
	if sr == nil {
		sr = &series{}
		s.jobs[jobID] = sr
	}
	sr.written = now
	for _, p := range pts {
		if len(sr.points) >= s.cfg.MaxPointsPerJob {
			s.total -= thin(sr)
		}
		p.Values = maps.Clone(p.Values)
		sr.points = append(sr.points, p)
		s.total++
	}
	if s.total > s.cfg.MaxPoints {
		s.evict(jobID)
	}
	return nil
}

// thin drops every other point of a full series, keeping the first, and
// returns how many it dropped.
func thin(sr *series) int {
	n := len(sr.points)
	kept := sr.points[:0]
	for i, p := range sr.points {
		if i%2 == 0 {
			kept = append(kept, p)
		}
	}
	clear(sr.points[len(kept):])
	sr.points = kept
	return n - len(kept)
}

// evict drops the series written least recently, other than keep's, until
// the store holds at most 7/8 of MaxPoints (so that the next adds do not
// evict again at once). Callers hold the lock.
func (s *Store) evict(keep string) {
	ids := slices.Collect(maps.Keys(s.jobs))
	slices.SortFunc(ids, func(a, b string) int { return s.jobs[a].written.Compare(s.jobs[b].written) })
	for _, id := range ids {
		if s.total <= s.cfg.MaxPoints/8*7 {
			return
		}
		if id == keep {
			continue
		}
		s.total -= len(s.jobs[id].points)
		delete(s.jobs, id)
	}
}

// Series returns a copy of a job's points in the order they were added.
func (s *Store) Series(jobID string) []Point {
	s.mu.Lock()
	defer s.mu.Unlock()
	sr := s.jobs[jobID]
	if sr == nil {
		return nil
	}
	return slices.Clone(sr.points)
}

// ProgressDue reports whether a job's latest point should be committed as
// its progress: when none was for every. If so it records now as the time
// one was.
func (s *Store) ProgressDue(jobID string, now time.Time, every time.Duration) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	sr := s.jobs[jobID]
	if sr == nil || (!sr.progress.IsZero() && now.Sub(sr.progress) < every) {
		return false
	}
	sr.progress = now
	return true
}

// Jobs returns the ids of the jobs with a series, sorted.
func (s *Store) Jobs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Sorted(maps.Keys(s.jobs))
}

// Remove drops the series of the given jobs.
func (s *Store) Remove(jobIDs ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range jobIDs {
		if sr := s.jobs[id]; sr != nil {
			s.total -= len(sr.points)
			delete(s.jobs, id)
		}
	}
}

// Expire drops the series that received no point for Retention before now
// and returns how many it dropped.
func (s *Store) Expire(now time.Time) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for id, sr := range s.jobs {
		if now.Sub(sr.written) >= s.cfg.Retention {
			s.total -= len(sr.points)
			delete(s.jobs, id)
			n++
		}
	}
	return n
}

// Stats is the size of a store.
type Stats struct {
	Jobs   int `json:"jobs"`
	Points int `json:"points"`
}

// Stats returns the store's size.
func (s *Store) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{Jobs: len(s.jobs), Points: s.total}
}

// savedSeries is a series in a saved store.
type savedSeries struct {
	JobID   string    `json:"job_id"`
	Written time.Time `json:"written"`
	Points  []Point   `json:"points"`
}

// Save writes the store to w as JSON lines, one series each.
func (s *Store) Save(w io.Writer) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	enc := json.NewEncoder(w)
	for _, id := range slices.Sorted(maps.Keys(s.jobs)) {
		sr := s.jobs[id]
		if err := enc.Encode(savedSeries{JobID: id, Written: sr.written, Points: sr.points}); err != nil {
			return fmt.Errorf("save metrics: %w", err)
		}
	}
	return nil
}

// Load adds the series Save wrote to r, under the store's bounds.
func (s *Store) Load(r io.Reader) error {
	dec := json.NewDecoder(r)
	for {
		var sr savedSeries
		if err := dec.Decode(&sr); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return fmt.Errorf("load metrics: %w", err)
		}
		if err := s.Add(sr.JobID, sr.Written, sr.Points...); err != nil {
			return fmt.Errorf("load metrics of job %s: %w", sr.JobID, err)
		}
	}
}

// SaveFile writes the store to path atomically (a temporary file renamed
// over it).
func (s *Store) SaveFile(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("save metrics: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".metrics-*")
	if err != nil {
		return fmt.Errorf("save metrics: %w", err)
	}
	defer os.Remove(f.Name())
	if err := s.Save(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("save metrics: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("save metrics: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("save metrics: %w", err)
	}
	return durable.SyncDir(filepath.Dir(path))
}

// LoadFile loads what SaveFile wrote to path; a missing file is an empty
// store.
func (s *Store) LoadFile(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		return fmt.Errorf("load metrics: %w", err)
	}
	defer f.Close()
	return s.Load(f)
}
