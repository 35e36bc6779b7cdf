package tuning

import "fmt"

// ASHAConfig configures asynchronous successive halving.
type ASHAConfig struct {
	SchedConfig
	// Eta is the reduction factor η in 2..MaxReductionFactor (default 3):
	// rungs are η apart and the top 1/η of each rung continues.
	Eta int
	// GracePeriod is the smallest budget at which a trial may be stopped;
	// rungs below it are not used. Zero means MinBudget.
	GracePeriod int
}

// ASHA is the stopping-based variant of asynchronous successive halving
// (Li et al., "A System for Massively Parallel Hyperparameter Tuning",
// MLSys 2020), the form Ray Tune's ASHAScheduler implements: trials are not
// paused and resumed by promotion; instead every trial trains on, and is
// judged whenever it crosses a rung. The promotion-based variant of the
// paper's Algorithm 2 is not implemented: it pauses a trial at each rung
// and resumes it later if it ranks in the top 1/η, and the coordinator can
// only continue, stop (cancel) or complete a trial. tuning/sim simulates
// that variant for comparison; on its benchmark it needs about as much
// budget as this one, and less when early results are noisier (see
// BENCHMARKS.md).
//
// Rungs are at MinBudget·η^k for k = 0, 1, … strictly below MaxBudget
// (rungs below GracePeriod are skipped). When a trial first reports a budget
// at or past a rung, that value is recorded at the rung, and with n results
// now recorded there (its own included) the trial passes iff at most
// max(1, ⌊n/η⌋) − 1 recorded values are strictly better than its value,
// i.e. it ranks within the top ⌊n/η⌋ (the paper's top_k(rung, |rung|/η)),
// ties resolved in the trial's favour. While n < η, ⌊n/η⌋ is 0 and the
// paper would promote no one; the stopping variant cannot wait, so it lets
// a trial pass iff it is the best recorded at the rung so far. A trial that
// passes gets DecisionPromote, one that fails DecisionStop; a report that
// crosses no rung gets DecisionContinue, and one at MaxBudget
// DecisionComplete.
type ASHA struct {
	cfg    ASHAConfig
	rungs  []int          // ascending budgets
	scores []sortedScores // per rung, ascending scores
	trials map[int]*trialLog
}

// withEta validates cfg's budgets and fills in the reduction factor (3
// when 0), which must be at least 2: the checks ASHA and Hyperband share.
func (cfg ASHAConfig) withEta() (ASHAConfig, error) {
	if err := cfg.validate(); err != nil {
		return cfg, err
	}
	if cfg.Eta == 0 {
		cfg.Eta = defaultEta
	}
	if cfg.Eta < 2 || cfg.Eta > MaxReductionFactor {
		return cfg, fmt.Errorf("scheduler: reduction factor %d must be in 2..%d", cfg.Eta, MaxReductionFactor)
	}
	return cfg, nil
}

// NewASHA validates cfg, fills its defaults and returns the scheduler.
func NewASHA(cfg ASHAConfig) (*ASHA, error) {
	cfg, err := cfg.withEta()
	if err != nil {
		return nil, err
	}
	if cfg.GracePeriod == 0 {
		cfg.GracePeriod = cfg.MinBudget
	}
	if cfg.GracePeriod < 0 {
		return nil, fmt.Errorf("scheduler: grace period %d is negative", cfg.GracePeriod)
	}
	a := &ASHA{cfg: cfg, trials: map[int]*trialLog{}}
	for _, r := range geometric(cfg.MinBudget, cfg.MaxBudget, cfg.Eta, true) {
		if r >= cfg.GracePeriod {
			a.rungs = append(a.rungs, r)
		}
	}
	a.scores = make([]sortedScores, len(a.rungs))
	return a, nil
}

// Rungs returns the budgets at which trials are judged, ascending.
func (a *ASHA) Rungs() []int { return append([]int(nil), a.rungs...) }

// RungSize returns how many results are recorded at rung k.
func (a *ASHA) RungSize(k int) int { return len(a.scores[k]) }

// OnResult records r and returns the decision for its trial.
func (a *ASHA) OnResult(r Result) Decision {
	t, d, ok := admit(a.trials, r)
	if !ok {
		return d
	}
	return finish(t, a.judge(r, t))
}

func (a *ASHA) judge(r Result, t *trialLog) Decision {
	if r.Budget >= a.cfg.MaxBudget {
		return DecisionComplete
	}
	s := score(a.cfg.Maximize, r.Value)
	d := DecisionContinue
	for k, rung := range a.rungs {
		if rung > r.Budget {
			break
		}
		if rung <= t.prev {
			continue
		}
		better := a.scores[k].insert(s)
		keep := len(a.scores[k]) / a.cfg.Eta
		if keep < 1 {
			keep = 1
		}
		if better >= keep {
			return DecisionStop
		}
		d = DecisionPromote
	}
	return d
}
