package metrics

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func steps(from, to int64) []Point {
	var out []Point
	for s := from; s < to; s++ {
		out = append(out, Point{Attempt: 1, Step: s, Values: map[string]float64{"loss": 1 / float64(s+1)}, Time: t0})
	}
	return out
}

func TestStoreBounds(t *testing.T) {
	tests := []struct {
		name      string
		cfg       Config
		add       map[string]int64 // job -> points, added in job order a, b, c
		wantJobs  int
		wantTotal int
		check     func(t *testing.T, s *Store)
	}{
		{
			name: "per job thinning keeps the span", cfg: Config{MaxPointsPerJob: 8, MaxPoints: 100},
			add: map[string]int64{"a": 20}, wantJobs: 1,
			check: func(t *testing.T, s *Store) {
				pts := s.Series("a")
				if len(pts) > 8 || pts[len(pts)-1].Step != 19 || pts[0].Step > 4 {
					t.Fatalf("series %v: want at most 8 points from the start to step 19", stepsOf(pts))
				}
				if st := s.Stats(); st.Points != len(pts) {
					t.Fatalf("stats %+v, series has %d", st, len(pts))
				}
			},
		},
		{
			name: "overall bound evicts the least recently written", cfg: Config{MaxPointsPerJob: 8, MaxPoints: 16},
			add: map[string]int64{"a": 8, "b": 8, "c": 8}, wantJobs: 2, wantTotal: 16,
			check: func(t *testing.T, s *Store) {
				if s.Series("a") != nil {
					t.Fatal("series a survived; it was written first")
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(tt.cfg)
			for i, job := range []string{"a", "b", "c"} {
				if n, ok := tt.add[job]; ok {
					for _, p := range steps(0, n) {
						if err := s.Add(job, t0.Add(time.Duration(i)*time.Second), p); err != nil {
							t.Fatal(err)
						}
					}
				}
			}
			st := s.Stats()
			if st.Jobs != tt.wantJobs || (tt.wantTotal > 0 && st.Points != tt.wantTotal) {
				t.Fatalf("stats %+v, want %d jobs, %d points", st, tt.wantJobs, tt.wantTotal)
			}
			if st.Points > s.Config().MaxPoints {
				t.Fatalf("%d points, bound %d", st.Points, s.Config().MaxPoints)
			}
			if tt.check != nil {
				tt.check(t, s)
			}
		})
	}
}

func stepsOf(pts []Point) []int64 {
	var out []int64
	for _, p := range pts {
		out = append(out, p.Step)
	}
	return out
}

func TestStoreRetentionAndRemove(t *testing.T) {
	s := New(Config{Retention: time.Hour})
	if err := s.Add("old", t0, steps(0, 3)...); err != nil {
		t.Fatal(err)
	}
	if err := s.Add("new", t0.Add(50*time.Minute), steps(0, 2)...); err != nil {
		t.Fatal(err)
	}
	if n := s.Expire(t0.Add(time.Hour)); n != 1 || s.Series("old") != nil || len(s.Series("new")) != 2 {
		t.Fatalf("expired %d; old %v new %v", n, s.Series("old"), s.Series("new"))
	}
	s.Remove("new")
	if st := s.Stats(); st != (Stats{}) {
		t.Fatalf("stats %+v after removing everything", st)
	}
}

func TestStoreRefusesTooManyValues(t *testing.T) {
	s := New(Config{MaxValues: 2})
	p := Point{Values: map[string]float64{"a": 1, "b": 2, "c": 3}}
	if err := s.Add("j", t0, p); !errors.Is(err, ErrInvalid) {
		t.Fatalf("err %v, want ErrInvalid", err)
	}
	if s.Stats().Jobs != 0 {
		t.Fatal("refused point stored")
	}
}

func TestProgressDue(t *testing.T) {
	s := New(Config{})
	if s.ProgressDue("j", t0, time.Second) {
		t.Fatal("due for a job without points")
	}
	_ = s.Add("j", t0, steps(0, 1)...)
	for i, c := range []struct {
		at   time.Duration
		want bool
	}{{0, true}, {500 * time.Millisecond, false}, {time.Second, true}, {1500 * time.Millisecond, false}} {
		if got := s.ProgressDue("j", t0.Add(c.at), time.Second); got != c.want {
			t.Fatalf("call %d at %v: due %v, want %v", i, c.at, got, c.want)
		}
	}
}

func TestSaveLoad(t *testing.T) {
	s := New(Config{})
	for i := range 3 {
		_ = s.Add(fmt.Sprintf("job%d", i), t0, steps(0, int64(i+1))...)
	}
	path := filepath.Join(t.TempDir(), "metrics", "series.jsonl")
	if err := s.SaveFile(path); err != nil {
		t.Fatal(err)
	}
	got := New(Config{})
	if err := got.LoadFile(path); err != nil {
		t.Fatal(err)
	}
	var a, b bytes.Buffer
	_ = s.Save(&a)
	_ = got.Save(&b)
	if a.String() != b.String() || got.Stats() != s.Stats() {
		t.Fatalf("loaded store differs:\n%s\nwant\n%s", b.String(), a.String())
	}
	if err := New(Config{}).LoadFile(filepath.Join(t.TempDir(), "none")); err != nil {
		t.Fatalf("missing file: %v", err)
	}
}
