package api

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cityhub/cityhub/tiers/diskspace"
)

// diskWatcher is what the metrics and /readyz ask of a replica that
// watches its data directory's free space (node.Node implements it).
type diskWatcher interface {
	DiskSpace() *diskspace.Monitor
}

// diskCollector exports the disk reserve's state from the monitor's last
// sample: free bytes and the reserve of the data directory's filesystem,
// whether writes are refused, and the refusals by command kind.
type diskCollector struct {
	m                      *diskspace.Monitor
	free, reserve, low, rf *prometheus.Desc
}

func newDiskCollector(m *diskspace.Monitor) *diskCollector {
	return &diskCollector{
		m:       m,
		free:    prometheus.NewDesc("cityhub_disk_free_bytes", "Free bytes of the data directory's filesystem (the least of its folders'), as of the last check.", []string{"dir"}, nil),
		reserve: prometheus.NewDesc("cityhub_disk_reserve_bytes", "The disk reserve in bytes (limits.disk_reserve_bytes, or limits.disk_reserve_percent of the filesystem): below it the leader refuses writes.", nil, nil),
		low:     prometheus.NewDesc("cityhub_disk_low", "1 while the data directory's free space is below the reserve (a leader refuses writes; a follower still appends the leader's).", nil, nil),
		rf:      prometheus.NewDesc("cityhub_disk_refused_writes_total", "Writes refused because the free disk space was below the reserve, by command kind (nothing was proposed).", []string{"command"}, nil),
	}
}

func (c *diskCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.free
	ch <- c.reserve
	ch <- c.low
	ch <- c.rf
}

func (c *diskCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.m.State()
	low := 0.0
	if st.Low {
		low = 1
	}
	ch <- prometheus.MustNewConstMetric(c.free, prometheus.GaugeValue, float64(st.Free), st.Dir)
	ch <- prometheus.MustNewConstMetric(c.reserve, prometheus.GaugeValue, float64(st.Reserve))
	ch <- prometheus.MustNewConstMetric(c.low, prometheus.GaugeValue, low)
	for kind, n := range c.m.Refused() {
		ch <- prometheus.MustNewConstMetric(c.rf, prometheus.CounterValue, float64(n), kind)
	}
}
