package main

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/trainctl/trainctl/api"
)

// TestRankDisplay: `jobs get` shows a data-parallel attempt's ranks and
// `jobs logs` the ring forming.
func TestRankDisplay(t *testing.T) {
	t0 := time.Date(2026, 12, 8, 10, 0, 0, 0, time.UTC)
	a := api.Attempt{Number: 2, Nodes: []string{"w1", "w2"}, State: api.AttemptRunning, StartTime: t0, Ranks: []api.RankStatus{
		{Rank: 0, Node: "w1", Addr: "10.0.0.1:4000", Ring: api.RingConnected, Step: 12, ImagesPerSec: 3.25, Registered: t0.Add(time.Second), Connected: t0.Add(3 * time.Second)},
		{Rank: 1, Node: "w2", Addr: "10.0.0.2:4000", Ring: api.RingConnected, Step: 12, ImagesPerSec: 3.5, Registered: t0.Add(2 * time.Second), Connected: t0.Add(3 * time.Second)},
	}}
	var b bytes.Buffer
	if err := printRanks(&b, &a); err != nil {
		t.Fatal(err)
	}
	for _, re := range []string{`(?m)^ +RANK +WORKER +ADDR +RING +STEP +IMG/S$`, `(?m)^ +1 +w2 +10\.0\.0\.2:4000 +connected +12 +3\.50$`} {
		if !regexp.MustCompile(re).MatchString(b.String()) {
			t.Errorf("ranks table does not match %s:\n%s", re, b.String())
		}
	}
	j := &api.Job{ID: "j", SubmitTime: t0, Attempts: []api.Attempt{a}}
	var lines []string
	for _, l := range jobLogLines(j, nil) {
		lines = append(lines, l.Event)
	}
	got := strings.Join(lines, "\n")
	for _, want := range []string{"attempt 2: rank 0 on w1 listening at 10.0.0.1:4000", "attempt 2: rank 1 on w2 listening at 10.0.0.2:4000", "attempt 2: ring of 2 ranks connected"} {
		if !strings.Contains(got, want) {
			t.Errorf("logs lack %q:\n%s", want, got)
		}
	}
	// Until every rank connected there is no "connected" line.
	a.Ranks[1].Connected = time.Time{}
	j.Attempts[0] = a
	for _, l := range jobLogLines(j, nil) {
		if strings.Contains(l.Event, "ring of") {
			t.Errorf("ring reported connected with rank 1 still waiting")
		}
	}
}
