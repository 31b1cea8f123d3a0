package replica

import (
	"context"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cityhub/cityhub/config"
	"github.com/cityhub/cityhub/federation/antientropy"
	"github.com/cityhub/cityhub/federation/topology"
	"github.com/cityhub/cityhub/federation/wire"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/node"
)

// newAntiEntropy wires anti-entropy into a replica's federation: the
// peer's side of the comparisons on the federation listener (rs), and the
// runner that compares this node with its neighbours, periodically with
// its children (federation.antientropy_interval) and on demand. Neighbours
// are dialled like the relay dials them.
func newAntiEntropy(cfg config.Config, n *node.Node, topo *topology.Topology, self string, dial dialFunc, rs *wire.Server, logger *slog.Logger) (*antientropy.Runner, error) {
	rs.SetAntiEntropy(antientropy.NewHandler(self, topo, n))
	return antientropy.New(antientropy.Options{
		Self: self, Topology: topo, Local: n, Dial: dial,
		RetryMin: cfg.Federation.RetryMin, RetryMax: cfg.Federation.RetryMax, ReconnectMax: cfg.Federation.ReconnectMax,
		Interval: cfg.Federation.AntiEntropyInterval, Buckets: uint32(cfg.Federation.AntiEntropyBuckets),
		Logger: logger,
	})
}

// AntiEntropy implements api.AntiEntropy (api.AntiEntropyFederation).
func (f *federation) AntiEntropy(ctx context.Context, r *pb.AntiEntropyRequest) (*pb.AntiEntropyResponse, error) {
	return f.antiEntropy.AntiEntropy(ctx, r)
}

// AntiEntropyMetrics implements api.AntiEntropyFederation.
func (f *federation) AntiEntropyMetrics() prometheus.Collector { return f.antiEntropy.Metrics() }

// AntiEntropy is the replica's anti-entropy runner (nil outside a
// federation).
func (r *Replica) AntiEntropy() *antientropy.Runner {
	if r.fed == nil {
		return nil
	}
	return r.fed.antiEntropy
}
