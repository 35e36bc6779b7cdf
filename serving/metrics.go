package serving

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are a Server's Prometheus collectors.
type metrics struct {
	requests  *prometheus.CounterVec // trainctl_serving_requests_total{code}
	duration  prometheus.Histogram   // trainctl_serving_request_duration_seconds
	batchSize prometheus.Histogram   // trainctl_serving_batch_size
	queue     prometheus.GaugeFunc   // trainctl_serving_queue_depth
	modelInfo *prometheus.GaugeVec   // trainctl_serving_model_info{version}
	swaps     prometheus.Counter     // trainctl_serving_swaps_total
	handler   http.Handler           // /metrics, nil when the registerer cannot be gathered
	all       []prometheus.Collector // for registration
}

// newMetrics creates the collectors and registers them with reg (nil: a new
// private registry, which /metrics then serves). queueDepth reads the
// current queue length.
func newMetrics(reg prometheus.Registerer, queueDepth func() float64) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "trainctl_serving_requests_total",
			Help: "Predict requests answered, by HTTP status code (499: the client went away first).",
		}, []string{"code"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "trainctl_serving_request_duration_seconds",
			Help:    "Time from receiving a predict request until just before its response is written, whatever the outcome.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15), // 1 ms .. 16 s
		}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "trainctl_serving_batch_size",
			Help:    "Images per forward pass.",
			Buckets: []float64{1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64},
		}),
		queue: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "trainctl_serving_queue_depth",
			Help: "Predict requests waiting for a batch.",
		}, queueDepth),
		modelInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "trainctl_serving_model_info",
			Help: "1 for the version of the model currently served.",
		}, []string{"version"}),
		swaps: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "trainctl_serving_swaps_total",
			Help: "Swaps that changed the served model: loads (the first included), replacements and unloads (Swap(nil)).",
		}),
	}
	m.all = []prometheus.Collector{m.requests, m.duration, m.batchSize, m.queue, m.modelInfo, m.swaps}
	if reg == nil {
		r := prometheus.NewRegistry()
		reg = r
	}
	for _, c := range m.all {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return nil, fmt.Errorf("%w: serving metrics: %w (two servers share a registerer; give each its own)", ErrConfig, err)
			}
			return nil, fmt.Errorf("%w: serving metrics: %w", ErrConfig, err)
		}
	}
	if g, ok := reg.(prometheus.Gatherer); ok {
		m.handler = promhttp.HandlerFor(g, promhttp.HandlerOpts{})
	}
	return m, nil
}
