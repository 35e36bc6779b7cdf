package trainer

import (
	"sync"

	"github.com/trainctl/trainctl/trainer/gemm"
	"github.com/trainctl/trainctl/trainer/unet"
)

// replica is one single-threaded copy of the model that computes some of
// a rank's examples: with exact gradients an example runs on its own, and
// several such small passes side by side use the cores better than one
// pass split across them. The sums stay exact (integer addition), so the
// result is the same for any number of replicas.
type replica struct {
	eng   *gemm.Engine
	model *unet.Model
	ex    *exactGrads
}

// newReplicas builds threads single-threaded replicas of cfg for a global
// batch of at most batch examples; nil for one thread.
func newReplicas(cfg unet.Config, batch, threads int) ([]*replica, error) {
	if threads <= 1 {
		return nil, nil
	}
	rs := make([]*replica, threads)
	for i := range rs {
		eng := gemm.New(1)
		m, err := unet.New(cfg, eng, 1)
		if err != nil {
			eng.Close()
			closeReplicas(rs[:i])
			return nil, err
		}
		rs[i] = &replica{eng: eng, model: m, ex: newExactGrads(m.ParamViews(), batch, 1)}
	}
	return rs, nil
}

// closeReplicas stops every replica's helpers and engine.
func closeReplicas(rs []*replica) {
	for _, r := range rs {
		r.model.Close()
		r.eng.Close()
	}
}

// addExamples runs the rank's n examples (in x and labels) on the
// replicas, example i on replica i mod len(rs), each quantising into its
// own accumulator with ex's scales, and sums the accumulators into ex.
func addExamples(rs []*replica, ex *exactGrads, params, x []float32, labels []uint8, n, chw, hw int, calibrating bool) {
	var wg sync.WaitGroup
	for k, r := range rs {
		copy(r.model.Params, params)
		copy(r.ex.scale, ex.scale)
		r.ex.reset()
		wg.Go(func() {
			for i := k; i < n; i += len(rs) {
				r.model.Forward(x[i*chw:(i+1)*chw], 1)
				loss := r.model.LossAndBackward(labels[i*hw:(i+1)*hw], 1)
				r.ex.add(r.model.Grads, float64(loss), calibrating)
			}
		})
	}
	wg.Wait()
	for _, r := range rs {
		for i, q := range r.ex.acc {
			ex.acc[i] += q
		}
		for i, b := range r.ex.maxBits {
			ex.maxBits[i] = max(ex.maxBits[i], b)
		}
	}
}
