package antientropy

import (
	"github.com/prometheus/client_golang/prometheus"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// Metrics are the anti-entropy collectors of one node, labelled by the
// neighbour compared with. Register them in the node's registry (the API's
// /metrics); a Metrics is a prometheus.Collector.
type Metrics struct {
	runs        *prometheus.CounterVec
	differences *prometheus.CounterVec
	repaired    *prometheus.CounterVec
	lastRun     *prometheus.GaugeVec
}

// NewMetrics makes the collectors:
//
//	cityhub_antientropy_runs_total{peer}               comparisons with a neighbour (failed ones too)
//	cityhub_antientropy_divergent_total{peer,kind}     differences found: missing_here, missing_there, divergent, extra
//	cityhub_antientropy_repaired_total{peer}           repairs applied (here and at the neighbour)
//	cityhub_antientropy_last_run_seconds{peer}         how long the last comparison took
func NewMetrics() *Metrics {
	return &Metrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cityhub_antientropy_runs_total", Help: "Anti-entropy comparisons with a neighbour, failed ones included.",
		}, []string{"peer"}),
		differences: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cityhub_antientropy_divergent_total", Help: "Differences anti-entropy found with a neighbour, by kind (missing_here, missing_there, divergent, extra).",
		}, []string{"peer", "kind"}),
		repaired: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cityhub_antientropy_repaired_total", Help: "Anti-entropy repairs applied (here or at the neighbour).",
		}, []string{"peer"}),
		lastRun: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cityhub_antientropy_last_run_seconds", Help: "Duration of the last anti-entropy comparison with a neighbour.",
		}, []string{"peer"}),
	}
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	m.runs.Describe(ch)
	m.differences.Describe(ch)
	m.repaired.Describe(ch)
	m.lastRun.Describe(ch)
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.runs.Collect(ch)
	m.differences.Collect(ch)
	m.repaired.Collect(ch)
	m.lastRun.Collect(ch)
}

func (m *Metrics) observe(l *pb.AntiEntropyLink) {
	m.runs.WithLabelValues(l.Peer).Inc()
	for _, k := range []struct {
		kind Kind
		n    uint32
	}{{MissingHere, l.MissingHere}, {MissingThere, l.MissingThere}, {Divergent, l.Divergent}, {Extra, l.Extra}} {
		m.differences.WithLabelValues(l.Peer, k.kind.String()).Add(float64(k.n))
	}
	m.repaired.WithLabelValues(l.Peer).Add(float64(l.Repaired))
	m.lastRun.WithLabelValues(l.Peer).Set(l.Seconds)
}
