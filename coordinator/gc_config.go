package coordinator

import (
	"errors"
	"time"

	"github.com/trainctl/trainctl/coordinator/metrics"
)

// GCConfig configures what the replicated state keeps (the leader's garbage
// collection, gc.go) and what a coordinator keeps of the step metrics that
// are not replicated (metrics_endpoint.go).
type GCConfig struct {
	// Interval is how often the leader collects.
	Interval time.Duration
	// JobRetention and SweepRetention are how long a terminal job or
	// sweep stays whole after it ended; it is then replaced by a summary,
	// and the checkpoints that no model refers to go with it.
	JobRetention   time.Duration
	SweepRetention time.Duration
	// SummaryLimit bounds the summaries of collected jobs, and those of
	// collected sweeps; the oldest go first.
	SummaryLimit int
	// MaxPerCommand bounds the ids one collecting command carries.
	MaxPerCommand int
	// ProgressInterval is how often, at most, a coordinator commits a
	// job's progress from the step reports it receives.
	ProgressInterval time.Duration
	// MaxReportsPerJob bounds the metric reports of one job kept in the
	// replicated state; later ones are kept as step points only.
	MaxReportsPerJob int
	// FanoutTimeout bounds how long GET /v1/jobs/{id}/metrics waits for
	// the other coordinators' step points.
	FanoutTimeout time.Duration
	// Metrics bounds this coordinator's store of step points.
	Metrics metrics.Config
}

// DefaultGCConfig returns the defaults: collect every 5 minutes, jobs a day
// and sweeps a week after they ended, 20000 summaries of each, progress
// every 5 seconds, 4096 reports a job, 2 s for the other coordinators'
// points, and metrics.DefaultConfig.
func DefaultGCConfig() GCConfig {
	return GCConfig{
		Interval:         5 * time.Minute,
		JobRetention:     24 * time.Hour,
		SweepRetention:   7 * 24 * time.Hour,
		SummaryLimit:     20000,
		MaxPerCommand:    1000,
		ProgressInterval: 5 * time.Second,
		MaxReportsPerJob: 4096,
		FanoutTimeout:    2 * time.Second,
		Metrics:          metrics.DefaultConfig(),
	}
}

func (c *GCConfig) validate() error {
	var errs []error
	if c.Interval <= 0 || c.ProgressInterval <= 0 || c.FanoutTimeout <= 0 {
		errs = append(errs, errors.New("gc: interval, progress interval and fan-out timeout: must be positive"))
	}
	if c.JobRetention < 0 || c.SweepRetention < 0 || c.SummaryLimit < 0 || c.MaxPerCommand < 0 || c.MaxReportsPerJob < 0 {
		errs = append(errs, errors.New("gc: retentions and limits: must not be negative"))
	}
	return errors.Join(errs...)
}
