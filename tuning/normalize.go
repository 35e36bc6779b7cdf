package tuning

// Normalized returns s with every default that the searcher and scheduler
// would otherwise apply when they are built written out: TPE's n_startup,
// n_candidates and gamma, the reduction factor of asha and hyperband, the
// grace period of asha, hyperband and median, median's min_trials, and the
// scheduler's name (fifo). A sweep built from the result behaves exactly as
// one built from s; the coordinator records the normalized form, so that a
// later change of a default cannot change what a recorded sweep does.
func (s Spec) Normalized() Spec {
	if s.Searcher.Name == SearcherTPE {
		s.Searcher.TPE = s.Searcher.TPE.withDefaults()
	}
	sc := &s.Scheduler
	if sc.Name == "" {
		sc.Name = SchedulerFIFO
	}
	switch sc.Name {
	case SchedulerASHA, SchedulerHyperband, SchedulerMedian:
		if sc.GracePeriod == 0 {
			sc.GracePeriod = max(s.Budget.Min, 1)
		}
	}
	switch sc.Name {
	case SchedulerASHA, SchedulerHyperband:
		if sc.ReductionFactor == 0 {
			sc.ReductionFactor = defaultEta
		}
	case SchedulerMedian:
		if sc.MinTrials == 0 {
			sc.MinTrials = defaultMedianMinTrials
		}
	}
	return s
}

// Defaults the schedulers apply to options left at zero.
const (
	// defaultEta is the reduction factor η of asha and hyperband.
	defaultEta = 3
	// defaultMedianMinTrials is how many other trials median stopping
	// waits for at a budget before it stops anything.
	defaultMedianMinTrials = 3
)
