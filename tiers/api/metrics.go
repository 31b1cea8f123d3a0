package api

import (
	"context"
	"runtime"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// Metrics holds the node's Prometheus collectors in a registry of its own,
// so several nodes can run in one process (tests, the embedded federation).
type Metrics struct {
	Registry *prometheus.Registry
	grpcDur  *prometheus.HistogramVec
	httpDur  *prometheus.HistogramVec
}

var latencyBuckets = []float64{.0005, .001, .002, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// collectorSource is a replica with Prometheus collectors of its own
// (node.Node: raft's internals, snapshots, badger).
type collectorSource interface {
	Collectors() []prometheus.Collector
}

// NewMetrics registers the node's collectors, and extra ones (the
// replica's: calendar, certificates, node info).
func NewMetrics(r Replica, extra ...prometheus.Collector) *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		grpcDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "cityhub_grpc_request_duration_seconds", Help: "gRPC request latency by method and code (a stream: its whole life).", Buckets: latencyBuckets,
		}, []string{"method", "code"}),
		httpDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "cityhub_http_request_duration_seconds", Help: "REST request latency by HTTP method, route (the gateway's path pattern, not the path) and status.", Buckets: latencyBuckets,
		}, []string{"method", "route", "status"}),
	}
	raftStates := []string{"Follower", "Candidate", "Leader", "Shutdown"}
	stateGauges := make([]prometheus.Collector, 0, len(raftStates))
	for _, st := range raftStates {
		st := st
		stateGauges = append(stateGauges, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "cityhub_raft_state", Help: "1 for the raft state this replica is in.", ConstLabels: prometheus.Labels{"state": st},
		}, func() float64 {
			if r.Status().State == st {
				return 1
			}
			return 0
		}))
	}
	m.Registry.MustRegister(stateGauges...)
	m.Registry.MustRegister(
		m.grpcDur, m.httpDur,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		indexGauge("cityhub_raft_applied_index", "Last raft index applied to the state store.", func(s *pb.ClusterStatus) uint64 { return s.AppliedIndex }, r),
		indexGauge("cityhub_raft_commit_index", "Last raft index known committed.", func(s *pb.ClusterStatus) uint64 { return s.CommitIndex }, r),
		indexGauge("cityhub_raft_last_log_index", "Last raft index in the local log.", func(s *pb.ClusterStatus) uint64 { return s.LastLogIndex }, r),
		indexGauge("cityhub_raft_term", "Current raft term.", func(s *pb.ClusterStatus) uint64 { return s.Term }, r),
		&caseCollector{r: r, desc: prometheus.NewDesc("cityhub_cases", "Cases held by this node, by state.", []string{"state"}, nil)},
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "cityhub_cases_overdue", Help: "Open cases past their stage deadline (督办), held here or below."},
			func() float64 {
				n, err := r.Store().CountOverdue()
				if err != nil {
					return -1
				}
				return float64(n)
			}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "cityhub_cases_in_review", Help: "Open cases in the joint review queue (疑难案件会诊) whose owner a shift leader must decide."},
			func() float64 {
				n, err := r.Store().CountInReview()
				if err != nil {
					return -1
				}
				return float64(n)
			}),
	)
	if dw, ok := r.(diskWatcher); ok && dw.DiskSpace() != nil {
		m.Registry.MustRegister(newDiskCollector(dw.DiskSpace()))
	}
	m.Registry.MustRegister(buildInfo(), readyGauge(r))
	if cs, ok := r.(collectorSource); ok {
		m.Registry.MustRegister(cs.Collectors()...)
	}
	m.Registry.MustRegister(extra...)
	return m
}

// buildInfo is cityhub_build_info{version,revision,goversion} 1, from the
// binary's build information (see cmd/internal/version).
func buildInfo() prometheus.Collector {
	version, revision, goVersion := "(devel)", "", runtime.Version()
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			version = bi.Main.Version
		}
		goVersion = bi.GoVersion
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				revision = s.Value
			}
		}
	}
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "cityhub_build_info", Help: "The running binary's build: module version, VCS revision, Go version (always 1).",
		ConstLabels: prometheus.Labels{"version": version, "revision": revision, "goversion": goVersion}}, func() float64 { return 1 })
}

// readyGauge is /readyz as a metric.
func readyGauge(r Replica) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "cityhub_ready", Help: "1 when this replica is ready (/readyz: a linearizable read would answer now), 0 otherwise."},
		func() float64 {
			if ready, _ := readiness(r); ready {
				return 1
			}
			return 0
		})
}

func indexGauge(name, help string, f func(*pb.ClusterStatus) uint64, r Replica) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 { return float64(f(r.Status())) })
}

// caseCollector reads the per-state counters the store keeps, so a scrape
// costs one short scan, not a pass over the cases.
type caseCollector struct {
	r    Replica
	desc *prometheus.Desc
}

func (c *caseCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *caseCollector) Collect(ch chan<- prometheus.Metric) {
	counts, err := c.r.Store().CountByState()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.desc, err)
		return
	}
	for st, name := range pb.State_name {
		if st == 0 {
			continue
		}
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(counts[pb.State(st)]), name)
	}
}

// UnaryInterceptor records gRPC latencies.
func (m *Metrics) UnaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	start := time.Now()
	resp, err := h(ctx, req)
	m.grpcDur.WithLabelValues(info.FullMethod, status.Code(err).String()).Observe(time.Since(start).Seconds())
	return resp, err
}

// StreamInterceptor records how long each stream lasted and how it ended.
func (m *Metrics) StreamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	start := time.Now()
	err := h(srv, ss)
	m.grpcDur.WithLabelValues(info.FullMethod, status.Code(err).String()).Observe(time.Since(start).Seconds())
	return err
}

func (m *Metrics) observeHTTP(method, route string, code int, d time.Duration) {
	m.httpDur.WithLabelValues(method, route, strconv.Itoa(code)).Observe(d.Seconds())
}
