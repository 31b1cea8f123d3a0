package api

import "github.com/prometheus/client_golang/prometheus"

// AntiEntropyFederation is a Federation that also compares the node with
// its neighbours (tiers/replica, federation/antientropy). NewServer serves
// its AntiEntropy when Options.AntiEntropy is nil, and exports its
// collectors (cityhub_antientropy_*) at /metrics.
type AntiEntropyFederation interface {
	Federation
	AntiEntropy
	AntiEntropyMetrics() prometheus.Collector
}

// useFederationAntiEntropy takes anti-entropy from the federation, when it
// runs it.
func useFederationAntiEntropy(opts *Options, m *Metrics) {
	af, ok := opts.Federation.(AntiEntropyFederation)
	if !ok {
		return
	}
	if opts.AntiEntropy == nil {
		opts.AntiEntropy = af
	}
	m.Registry.MustRegister(af.AntiEntropyMetrics())
}
