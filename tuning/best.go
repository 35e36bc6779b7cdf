package tuning

import "math"

// StepReport is one metric report of a job: the values an attempt reported
// at a step (an epoch end, typically).
type StepReport struct {
	Attempt int
	Step    int64
	Values  map[string]float64
}

// CheckpointAt is one checkpoint of a job: its digest and the attempt and
// step that wrote it.
type CheckpointAt struct {
	Digest  string
	Attempt int
	Step    int64
}

// BestCheckpoint picks a job's best checkpoint among cks (the sweep
// controller judges trials by it; serving follows a job's best checkpoint
// with it): those whose Step is the Step of a report carrying metric
// (epoch-end checkpoints are), valued by that report — the report of the
// same attempt if there is one, else the latest report of that step. The
// best value by mode wins; ties go to the later step, then to the later
// checkpoint in cks' order (commit order). Non-finite values are never
// best. ok is false when no checkpoint qualifies.
func BestCheckpoint(metric string, mode Mode, reports []StepReport, cks []CheckpointAt) (digest string, value float64, ok bool) {
	if len(cks) == 0 {
		return "", 0, false
	}
	type key struct {
		attempt int
		step    int64
	}
	byAttempt := map[key]float64{}
	byStep := map[int64]float64{}
	for _, m := range reports {
		if v, has := m.Values[metric]; has {
			byAttempt[key{m.Attempt, m.Step}] = v
			byStep[m.Step] = v
		}
	}
	var bestStep int64
	for _, ck := range cks {
		v, has := byAttempt[key{ck.Attempt, ck.Step}]
		if !has {
			v, has = byStep[ck.Step]
		}
		if !has || math.IsNaN(v) || math.IsInf(v, 0) {
			continue
		}
		if !ok || mode.Better(v, value) || (v == value && ck.Step >= bestStep) {
			digest, value, bestStep, ok = ck.Digest, v, ck.Step, true
		}
	}
	return digest, value, ok
}

// Better reports whether a is strictly better than b in mode m.
func (m Mode) Better(a, b float64) bool {
	if m == Maximize {
		return a > b
	}
	return a < b
}
