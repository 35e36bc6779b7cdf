package worker

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/trainctl/trainctl/api"
	"github.com/trainctl/trainctl/coordinator"
)

// BenchmarkAssignmentLatency measures how soon an idle worker learns of
// a job placed on it: a one-node coordinator (its scheduler at the default
// pace, so placements follow the submission's kick) and an Agent with the
// default timings, one tiny job at a time; each iteration submits a job
// after a random pause of up to a second (so that submissions fall at
// every phase of a polling loop) and times from the submission to the
// agent's receipt of the assignment (AgentConfig.onAssignment), then waits
// for the job to finish. It reports p50, p90 and max over the iterations;
// run it with a fixed count, as BENCHMARKS.md does:
//
//	go test ./worker/ -run '^$' -bench AssignmentLatency -benchtime 50x
func BenchmarkAssignmentLatency(b *testing.B) {
	srv := startCoordinator(b, func(c *coordinator.Config) {
		c.SchedulerInterval = coordinator.DefaultConfig().SchedulerInterval
	})
	ac := api.New(srv.HTTPAddr())
	uploadShapes(b, ac)
	got := make(chan time.Time, 1)
	startAgentDir(b, "w1", b.TempDir(), srv, nil, nil, func(c *AgentConfig) {
		c.PollInterval = 0 // the default
		c.HeartbeatInterval = 0
		c.onAssignment = func(api.WorkerAssignment) { got <- time.Now() }
	})
	waitUntil(b, 30*time.Second, "the worker to register", func() error {
		_, err := srv.State().Worker("w1")
		return err
	})
	spec := testSpec()
	spec.Hyperparameters.Epochs = 1
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		time.Sleep(rand.N(time.Second))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		start := time.Now()
		j, err := ac.SubmitJob(ctx, fmt.Sprintf("bench-%d", i), spec)
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		select {
		case at := <-got:
			lat = append(lat, at.Sub(start))
		case <-time.After(30 * time.Second):
			b.Fatalf("job %s: no assignment within 30s", j.ID)
		}
		waitUntil(b, 60*time.Second, "job "+j.ID+" to end", func() error {
			j, err := ac.Job(context.Background(), j.ID)
			if err != nil {
				return err
			}
			if !j.State.Terminal() {
				return fmt.Errorf("job %s", j.State)
			}
			return nil
		})
	}
	b.StopTimer()
	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
	b.ReportMetric(ms(lat[len(lat)*9/10]), "p90-ms")
	b.ReportMetric(ms(lat[len(lat)-1]), "max-ms")
}
