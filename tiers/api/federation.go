package api

import (
	"context"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/auth"
)

// Federation is what the API needs of the node's federation layer; it is
// nil when the node stands alone.
type Federation interface {
	// Ready is nil once the configured topology is in the state machine, so
	// every case written from then on gets a holder and its links.
	Ready() error
	// Status describes the node's links.
	Status() (*pb.FederationStatusResponse, error)
}

// FederationStatus lists this node's links with their lag.
func (s *ClusterServer) FederationStatus(ctx context.Context, _ *pb.FederationStatusRequest) (*pb.FederationStatusResponse, error) {
	if err := s.g.require(ctx, auth.FederationRead, nil); err != nil {
		return nil, err
	}
	if s.fed == nil {
		return &pb.FederationStatusResponse{}, nil
	}
	st, err := s.fed.Status()
	if err != nil {
		return nil, toStatus(err)
	}
	return st, nil
}

// linkCollector exports the lag of every link.
type linkCollector struct {
	fed                          Federation
	entries, seconds, in, queued *prometheus.Desc
}

func newLinkCollector(fed Federation) *linkCollector {
	labels := []string{"peer", "direction"}
	return &linkCollector{
		fed:     fed,
		entries: prometheus.NewDesc("cityhub_link_lag_entries", "Entries queued toward a neighbour and not yet acknowledged.", labels, nil),
		seconds: prometheus.NewDesc("cityhub_link_lag_seconds", "Age of the oldest entry not yet acknowledged by a neighbour.", labels, nil),
		queued:  prometheus.NewDesc("cityhub_link_sent_seq", "Last sequence number queued toward a neighbour.", labels, nil),
		in:      prometheus.NewDesc("cityhub_link_received_seq", "High-water mark of entries applied from a neighbour.", labels, nil),
	}
}

func (c *linkCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.entries
	ch <- c.seconds
	ch <- c.queued
	ch <- c.in
}

func (c *linkCollector) Collect(ch chan<- prometheus.Metric) {
	st, err := c.fed.Status()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.entries, err)
		return
	}
	for _, l := range st.Links {
		ch <- prometheus.MustNewConstMetric(c.entries, prometheus.GaugeValue, float64(l.LagEntries), l.Peer, l.Direction)
		ch <- prometheus.MustNewConstMetric(c.seconds, prometheus.GaugeValue, l.LagSeconds, l.Peer, l.Direction)
		ch <- prometheus.MustNewConstMetric(c.queued, prometheus.GaugeValue, float64(l.OutLastSeq), l.Peer, l.Direction)
		ch <- prometheus.MustNewConstMetric(c.in, prometheus.GaugeValue, float64(l.InHighWater), l.Peer, l.Direction)
	}
}

// checkFederationReady refuses writes until the topology is applied.
func (s *CaseServer) checkFederationReady() error {
	if s.fed == nil {
		return nil
	}
	if err := s.fed.Ready(); err != nil {
		return fmt.Errorf("%w: %w", errFederationNotReady, err)
	}
	return nil
}
