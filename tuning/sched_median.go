package tuning

import "fmt"

// MedianConfig configures the median stopping rule.
type MedianConfig struct {
	SchedConfig
	// GracePeriod is the smallest budget at which a trial may be stopped.
	// Zero means MinBudget.
	GracePeriod int
	// MinTrials is how many other trials must have reported at or past the
	// budget being judged before anyone is stopped there (default 3).
	MinTrials int
}

// Median is the median stopping rule of Golovin et al., "Google Vizier"
// (KDD 2017): a trial is stopped at budget t if its best value so far is
// strictly worse than the median, over the other trials, of their running
// averages up to t, i.e. the mean of each other trial's values reported at
// budgets ≤ t. Only other trials that have already reported at a budget ≥ t
// take part (every completed trial does), there must be at least MinTrials
// of them, and nothing is stopped below GracePeriod. With an even count the
// median is the mean of the two middle values.
//
// A decision costs O(N log R) for N trials of R reports each.
type Median struct {
	cfg    MedianConfig
	order  []*medianTrial // trials in order of first report
	byID   map[int]*medianTrial
	trials map[int]*trialLog
	buf    []float64
}

type medianTrial struct {
	id      int
	budgets []int
	prefix  []float64 // prefix[i] = sum of the scores of reports 0..i
	best    float64   // best score (smaller is better)
}

// NewMedian validates cfg, fills its defaults and returns the scheduler.
func NewMedian(cfg MedianConfig) (*Median, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.GracePeriod == 0 {
		cfg.GracePeriod = cfg.MinBudget
	}
	if cfg.MinTrials == 0 {
		cfg.MinTrials = defaultMedianMinTrials
	}
	if cfg.GracePeriod < 0 || cfg.MinTrials < 0 {
		return nil, fmt.Errorf("scheduler: grace period %d and min trials %d must not be negative", cfg.GracePeriod, cfg.MinTrials)
	}
	return &Median{cfg: cfg, byID: map[int]*medianTrial{}, trials: map[int]*trialLog{}}, nil
}

// OnResult records r and returns the decision for its trial.
func (m *Median) OnResult(r Result) Decision {
	tl, d, ok := admit(m.trials, r)
	if !ok {
		return d
	}
	s := score(m.cfg.Maximize, r.Value)
	mt := m.byID[r.Trial]
	if mt == nil {
		mt = &medianTrial{id: r.Trial, best: s}
		m.byID[r.Trial] = mt
		m.order = append(m.order, mt)
	}
	sum := s
	if n := len(mt.prefix); n > 0 {
		sum += mt.prefix[n-1]
	}
	mt.budgets = append(mt.budgets, r.Budget)
	mt.prefix = append(mt.prefix, sum)
	if s < mt.best {
		mt.best = s
	}
	if r.Budget >= m.cfg.MaxBudget {
		return finish(tl, DecisionComplete)
	}
	if r.Budget < m.cfg.GracePeriod {
		return DecisionContinue
	}
	m.buf = m.buf[:0]
	for _, o := range m.order {
		if o == mt || o.budgets[len(o.budgets)-1] < r.Budget {
			continue
		}
		i := searchInts(o.budgets, r.Budget) // reports 0..i are ≤ t
		if i < 0 {
			continue // no report at or below t: no running average yet
		}
		m.buf = append(m.buf, o.prefix[i]/float64(i+1))
	}
	if len(m.buf) == 0 || len(m.buf) < m.cfg.MinTrials {
		return DecisionContinue
	}
	if mt.best > median(m.buf) {
		return finish(tl, DecisionStop)
	}
	return DecisionContinue
}

// searchInts returns the largest i with a[i] <= x in the ascending a, or -1.
func searchInts(a []int, x int) int {
	lo, hi := 0, len(a) // invariant: a[:lo] <= x, a[hi:] > x
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if a[mid] <= x {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo - 1
}

// median returns the median of v, reordering v. It runs in expected linear
// time (quickselect with a middle pivot; deterministic).
func median(v []float64) float64 {
	n := len(v)
	hi := selectK(v, n/2)
	if n%2 == 1 {
		return hi
	}
	lo := v[0]
	for _, x := range v[:n/2] {
		if x > lo {
			lo = x
		}
	}
	return (lo + hi) / 2
}

// selectK partially orders v so that v[k] is the k-th smallest and every
// element before it is ≤ it, and returns v[k].
func selectK(v []float64, k int) float64 {
	lo, hi := 0, len(v)-1
	for lo < hi {
		p := v[lo+(hi-lo)/2]
		i, j := lo, hi
		for i <= j {
			for v[i] < p {
				i++
			}
			for v[j] > p {
				j--
			}
			if i <= j {
				v[i], v[j] = v[j], v[i]
				i++
				j--
			}
		}
		switch {
		case k <= j:
			hi = j
		case k >= i:
			lo = i
		default:
			return v[k]
		}
	}
	return v[k]
}
