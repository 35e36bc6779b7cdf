package tuning

// Hyperband is asynchronous Hyperband: s_max+1 brackets of ASHA, where
// s_max = ⌊log_η(MaxBudget/MinBudget)⌋ and bracket s has its first rung at
// MinBudget·η^s (so the last bracket runs its trials to MaxBudget without
// stopping, as in Li et al. 2018). Trials are assigned to brackets round
// robin by trial id: trial i goes to bracket i mod (s_max+1), which is
// deterministic and needs no state. Each bracket judges only its own trials,
// with the rule documented on ASHA.
type Hyperband struct {
	brackets []*ASHA
}

// NewHyperband validates cfg and returns the scheduler. Bracket s's grace
// period is the larger of its first rung and cfg.GracePeriod.
func NewHyperband(cfg ASHAConfig) (*Hyperband, error) {
	cfg, err := cfg.withEta()
	if err != nil {
		return nil, err
	}
	h := &Hyperband{}
	for _, minB := range geometric(cfg.MinBudget, cfg.MaxBudget, cfg.Eta, false) {
		bc := cfg
		bc.MinBudget, bc.GracePeriod = minB, max(minB, cfg.GracePeriod)
		a, err := NewASHA(bc)
		if err != nil {
			return nil, err
		}
		h.brackets = append(h.brackets, a)
	}
	return h, nil
}

// Brackets returns the number of brackets, s_max+1.
func (h *Hyperband) Brackets() int { return len(h.brackets) }

// Bracket returns the bracket trial is assigned to.
func (h *Hyperband) Bracket(trial int) int {
	n := len(h.brackets)
	return ((trial % n) + n) % n
}

// BracketRungs returns the rungs of bracket s.
func (h *Hyperband) BracketRungs(s int) []int { return h.brackets[s].Rungs() }

// OnResult passes r to its trial's bracket.
func (h *Hyperband) OnResult(r Result) Decision {
	return h.brackets[h.Bracket(r.Trial)].OnResult(r)
}
