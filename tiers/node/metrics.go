package node

import (
	"sync"
	"time"

	gometrics "github.com/hashicorp/go-metrics"
	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
)

// hashicorp/raft (v1.8) reports its internals through hashicorp/go-metrics'
// process-wide sink. raftSink is that sink: it keeps the metrics an
// operator needs as Prometheus collectors with snake_case names, times in
// seconds and peers as a label (raft also emits variants with the peer id
// inside the key; those, and anything not in raftMetrics, are dropped, so
// the families and their cardinality are fixed). Every node registers it
// in its registry: with one replica per process (cityhubd) these are that
// replica's; where several replicas share a process (the demo, tests) they
// add up.
type raftSink struct {
	hist     map[string]*prometheus.HistogramVec
	counters map[string]*prometheus.CounterVec
	gauges   map[string]*prometheus.GaugeVec
	// routes maps raft's key (dot-joined) to its family, fixed labels
	// and the series resolved so far.
	routes map[string]*raftRoute
}

// raftRoute is one of raft's keys with what it is recorded into. raft
// records a few of them for every entry, on the leader's and the
// followers' paths: the series are resolved once (by peer, for the
// families that have one), not looked up by label values each time.
type raftRoute struct {
	raftMetric
	hist    *prometheus.HistogramVec
	counter *prometheus.CounterVec
	gauge   *prometheus.GaugeVec
	// byPeer: whether the family's last label is the peer raft names.
	byPeer bool

	mu     sync.RWMutex
	series map[string]any // peer ("" without) → Observer, Counter or Gauge
}

// raftMetric is one of raft's keys as exported.
type raftMetric struct {
	name string
	// fixed are label values the key implies (rpc="append_entries").
	fixed []string
	// ms: the value is milliseconds (go-metrics timers), exported in
	// seconds.
	ms bool
}

type raftFamily struct {
	name, help string
	kind       string   // histogram, counter, gauge
	labels     []string // fixed labels first, then "peer" when raft labels it
	buckets    []float64
}

var raftSecondsBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

var raftFamilies = []raftFamily{
	{name: "cityhub_raft_commit_seconds", kind: "histogram", help: "Leader: time from writing an entry to its log to its commit by a quorum."},
	{name: "cityhub_raft_leader_dispatch_seconds", kind: "histogram", help: "Leader: time to write a batch of new entries to its own log."},
	{name: "cityhub_raft_leader_last_contact_seconds", kind: "histogram", help: "Leader: time since it last heard from the follower it heard from least recently (checked every lease timeout)."},
	{name: "cityhub_raft_fsm_apply_batch_seconds", kind: "histogram", help: "Time the state machine takes to apply a batch of committed entries."},
	{name: "cityhub_raft_fsm_apply_batch_entries", kind: "histogram", help: "Entries in each batch the state machine applies.", buckets: prometheus.ExponentialBuckets(1, 2, 11)},
	{name: "cityhub_raft_fsm_enqueue_seconds", kind: "histogram", help: "Time committed entries wait to be handed to the state machine."},
	{name: "cityhub_raft_follower_store_logs_seconds", kind: "histogram", help: "Follower: time to write replicated entries to its log."},
	{name: "cityhub_raft_rpc_seconds", kind: "histogram", labels: []string{"rpc"}, help: "Time this replica takes to handle a raft RPC, by RPC."},
	{name: "cityhub_raft_replication_seconds", kind: "histogram", labels: []string{"rpc", "peer"}, help: "Leader: round trip of a replication RPC to a follower, by RPC and follower."},
	{name: "cityhub_raft_replicated_entries_total", kind: "counter", labels: []string{"peer"}, help: "Leader: entries sent to each follower."},
	{name: "cityhub_raft_snapshot_seconds", kind: "histogram", labels: []string{"phase"}, help: "Time to take a snapshot (total), to create its file (create), to write the state into it (persist), to capture the state machine (fsm)."},
	{name: "cityhub_raft_fsm_restore_seconds", kind: "histogram", help: "Time to restore the state machine from a snapshot."},
	{name: "cityhub_raft_compact_logs_seconds", kind: "histogram", help: "Time to delete log entries a snapshot covers."},
	{name: "cityhub_raft_election_seconds", kind: "histogram", help: "Candidate: time to start an election (vote for itself, ask the others)."},
	{name: "cityhub_raft_apply_total", kind: "counter", help: "Leader: commands handed to raft to replicate."},
	{name: "cityhub_raft_barrier_total", kind: "counter", help: "Leader: barriers handed to raft."},
	{name: "cityhub_raft_state_changes_total", kind: "counter", labels: []string{"state"}, help: "Times raft entered a state (leader, follower, candidate)."},
	{name: "cityhub_raft_heartbeat_timeouts_total", kind: "counter", help: "Follower: times it lost contact with the leader for the heartbeat timeout."},
	{name: "cityhub_raft_leader_lease_timeouts_total", kind: "counter", help: "Leader: times it lost contact with a quorum for the lease timeout and stepped down."},
	{name: "cityhub_raft_peers", kind: "gauge", help: "Servers in the latest raft configuration."},
	{name: "cityhub_raft_oldest_log_age_seconds", kind: "gauge", help: "Age of the oldest entry in the raft log (how far back a lagging follower can catch up from the log)."},
}

// raftMetrics routes raft's keys to the families. Keys not listed are
// dropped: the legacy forms with a peer id inside the key
// (raft.replication.heartbeat.<peer>), raft.net.* (transport decode and
// enqueue times), raft.verify_leader, raft.fsm.apply (per entry: the
// batch is what this FSM applies), dispatch and commit batch sizes.
var raftMetrics = map[string]raftMetric{
	"raft.commitTime":                      {name: "cityhub_raft_commit_seconds", ms: true},
	"raft.leader.dispatchLog":              {name: "cityhub_raft_leader_dispatch_seconds", ms: true},
	"raft.leader.lastContact":              {name: "cityhub_raft_leader_last_contact_seconds", ms: true},
	"raft.fsm.applyBatch":                  {name: "cityhub_raft_fsm_apply_batch_seconds", ms: true},
	"raft.fsm.applyBatchNum":               {name: "cityhub_raft_fsm_apply_batch_entries"},
	"raft.fsm.enqueue":                     {name: "cityhub_raft_fsm_enqueue_seconds", ms: true},
	"raft.rpc.appendEntries.storeLogs":     {name: "cityhub_raft_follower_store_logs_seconds", ms: true},
	"raft.rpc.appendEntries":               {name: "cityhub_raft_rpc_seconds", fixed: []string{"append_entries"}, ms: true},
	"raft.rpc.processHeartbeat":            {name: "cityhub_raft_rpc_seconds", fixed: []string{"heartbeat"}, ms: true},
	"raft.rpc.requestVote":                 {name: "cityhub_raft_rpc_seconds", fixed: []string{"request_vote"}, ms: true},
	"raft.rpc.requestPreVote":              {name: "cityhub_raft_rpc_seconds", fixed: []string{"request_pre_vote"}, ms: true},
	"raft.rpc.installSnapshot":             {name: "cityhub_raft_rpc_seconds", fixed: []string{"install_snapshot"}, ms: true},
	"raft.replication.appendEntries.rpc":   {name: "cityhub_raft_replication_seconds", fixed: []string{"append_entries"}, ms: true},
	"raft.replication.heartbeat":           {name: "cityhub_raft_replication_seconds", fixed: []string{"heartbeat"}, ms: true},
	"raft.replication.installSnapshot":     {name: "cityhub_raft_replication_seconds", fixed: []string{"install_snapshot"}, ms: true},
	"raft.replication.appendEntries.logs":  {name: "cityhub_raft_replicated_entries_total"},
	"raft.snapshot.takeSnapshot":           {name: "cityhub_raft_snapshot_seconds", fixed: []string{"total"}, ms: true},
	"raft.snapshot.create":                 {name: "cityhub_raft_snapshot_seconds", fixed: []string{"create"}, ms: true},
	"raft.snapshot.persist":                {name: "cityhub_raft_snapshot_seconds", fixed: []string{"persist"}, ms: true},
	"raft.fsm.snapshot":                    {name: "cityhub_raft_snapshot_seconds", fixed: []string{"fsm"}, ms: true},
	"raft.fsm.restore":                     {name: "cityhub_raft_fsm_restore_seconds", ms: true},
	"raft.compactLogs":                     {name: "cityhub_raft_compact_logs_seconds", ms: true},
	"raft.candidate.electSelf":             {name: "cityhub_raft_election_seconds", ms: true},
	"raft.apply":                           {name: "cityhub_raft_apply_total"},
	"raft.barrier":                         {name: "cityhub_raft_barrier_total"},
	"raft.state.leader":                    {name: "cityhub_raft_state_changes_total", fixed: []string{"leader"}},
	"raft.state.follower":                  {name: "cityhub_raft_state_changes_total", fixed: []string{"follower"}},
	"raft.state.candidate":                 {name: "cityhub_raft_state_changes_total", fixed: []string{"candidate"}},
	"raft.transition.heartbeat_timeout":    {name: "cityhub_raft_heartbeat_timeouts_total"},
	"raft.transition.leader_lease_timeout": {name: "cityhub_raft_leader_lease_timeouts_total"},
	"raft.peers":                           {name: "cityhub_raft_peers"},
	"raft.leader.oldestLogAge":             {name: "cityhub_raft_oldest_log_age_seconds", ms: true},
}

func newRaftSink() *raftSink {
	s := &raftSink{
		hist:     map[string]*prometheus.HistogramVec{},
		counters: map[string]*prometheus.CounterVec{},
		gauges:   map[string]*prometheus.GaugeVec{},
		routes:   map[string]*raftRoute{},
	}
	labels := map[string]int{}
	for _, f := range raftFamilies {
		labels[f.name] = len(f.labels)
		switch f.kind {
		case "histogram":
			b := f.buckets
			if b == nil {
				b = raftSecondsBuckets
			}
			s.hist[f.name] = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: f.name, Help: f.help, Buckets: b}, f.labels)
		case "counter":
			s.counters[f.name] = prometheus.NewCounterVec(prometheus.CounterOpts{Name: f.name, Help: f.help}, f.labels)
		case "gauge":
			s.gauges[f.name] = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: f.name, Help: f.help}, f.labels)
		}
	}
	for key, m := range raftMetrics {
		s.routes[key] = &raftRoute{raftMetric: m, hist: s.hist[m.name], counter: s.counters[m.name], gauge: s.gauges[m.name],
			byPeer: labels[m.name] == len(m.fixed)+1, series: map[string]any{}}
	}
	return s
}

// route is the route of raft's key, or nil (a key not exported, or
// labels without the peer its family needs); peer is the peer's id.
func (s *raftSink) route(key []string, labels []gometrics.Label) (r *raftRoute, peer string) {
	var buf [96]byte
	b := buf[:0]
	for i, k := range key {
		if i > 0 {
			b = append(b, '.')
		}
		b = append(b, k...)
	}
	if r = s.routes[string(b)]; r == nil || !r.byPeer {
		return r, ""
	}
	for _, l := range labels {
		if l.Name == "peer_id" {
			return r, l.Value
		}
	}
	return nil, ""
}

// child is the route's series for peer, made at its first use.
func (r *raftRoute) child(peer string) any {
	r.mu.RLock()
	c, ok := r.series[peer]
	r.mu.RUnlock()
	if ok {
		return c
	}
	vals := append([]string(nil), r.fixed...)
	if r.byPeer {
		vals = append(vals, peer)
	}
	switch {
	case r.hist != nil:
		c = r.hist.WithLabelValues(vals...)
	case r.counter != nil:
		c = r.counter.WithLabelValues(vals...)
	case r.gauge != nil:
		c = r.gauge.WithLabelValues(vals...)
	}
	r.mu.Lock()
	r.series[peer] = c
	r.mu.Unlock()
	return c
}

func (s *raftSink) SetGauge(key []string, val float32) { s.SetGaugeWithLabels(key, val, nil) }

func (s *raftSink) SetGaugeWithLabels(key []string, val float32, labels []gometrics.Label) {
	if r, peer := s.route(key, labels); r != nil && r.gauge != nil {
		r.child(peer).(prometheus.Gauge).Set(r.value(val))
	}
}

func (s *raftSink) EmitKey([]string, float32) {}

func (s *raftSink) IncrCounter(key []string, val float32) { s.IncrCounterWithLabels(key, val, nil) }

func (s *raftSink) IncrCounterWithLabels(key []string, val float32, labels []gometrics.Label) {
	if val < 0 {
		return
	}
	if r, peer := s.route(key, labels); r != nil && r.counter != nil {
		r.child(peer).(prometheus.Counter).Add(float64(val))
	}
}

func (s *raftSink) AddSample(key []string, val float32) { s.AddSampleWithLabels(key, val, nil) }

func (s *raftSink) AddSampleWithLabels(key []string, val float32, labels []gometrics.Label) {
	if r, peer := s.route(key, labels); r != nil && r.hist != nil {
		r.child(peer).(prometheus.Observer).Observe(r.value(val))
	}
}

func (m raftMetric) value(v float32) float64 {
	if m.ms {
		return float64(v) / 1000
	}
	return float64(v)
}

// Describe and Collect make the sink one Prometheus collector.
func (s *raftSink) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range s.collectors() {
		c.Describe(ch)
	}
}

func (s *raftSink) Collect(ch chan<- prometheus.Metric) {
	for _, c := range s.collectors() {
		c.Collect(ch)
	}
}

func (s *raftSink) collectors() []prometheus.Collector {
	out := make([]prometheus.Collector, 0, len(raftFamilies))
	for _, f := range raftFamilies {
		switch f.kind {
		case "histogram":
			out = append(out, s.hist[f.name])
		case "counter":
			out = append(out, s.counters[f.name])
		case "gauge":
			out = append(out, s.gauges[f.name])
		}
	}
	return out
}

var (
	raftSinkOnce sync.Once
	theRaftSink  *raftSink
)

// installRaftMetrics makes raftSink go-metrics' global sink, once per
// process, and returns it.
func installRaftMetrics() *raftSink {
	raftSinkOnce.Do(func() {
		theRaftSink = newRaftSink()
		conf := gometrics.DefaultConfig("")
		conf.EnableHostname = false
		conf.EnableRuntimeMetrics = false // the Go collector has them
		conf.EnableServiceLabel = false
		conf.TimerGranularity = time.Millisecond
		_, _ = gometrics.NewGlobal(conf, theRaftSink)
	})
	return theRaftSink
}

// snapshotMetrics count this replica's snapshots: taken (by raft's
// threshold or interval) and installed from the leader; a failure is a
// snapshot file that could not be created, written or closed.
type snapshotMetrics struct {
	total, failed prometheus.Counter
	lastOK        prometheus.Gauge
}

func newSnapshotMetrics() *snapshotMetrics {
	return &snapshotMetrics{
		total: prometheus.NewCounter(prometheus.CounterOpts{Name: "cityhub_raft_snapshots_total",
			Help: "Snapshots this replica wrote: taken from its state or received from the leader, failed or not."}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{Name: "cityhub_raft_snapshot_failures_total",
			Help: "Snapshots this replica could not create, write or close (disk full, I/O error); raft keeps its log until one succeeds."}),
		lastOK: prometheus.NewGauge(prometheus.GaugeOpts{Name: "cityhub_raft_snapshot_last_success_timestamp_seconds",
			Help: "When this replica last wrote a snapshot completely (Unix seconds; 0: not since it started)."}),
	}
}

func (m *snapshotMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.total, m.failed, m.lastOK}
}

// countingSnapshots is raft's snapshot store with the outcome of every
// snapshot counted.
type countingSnapshots struct {
	raft.SnapshotStore
	m *snapshotMetrics
}

func (c *countingSnapshots) Create(version raft.SnapshotVersion, index, term uint64, configuration raft.Configuration,
	configurationIndex uint64, trans raft.Transport) (raft.SnapshotSink, error) {
	sink, err := c.SnapshotStore.Create(version, index, term, configuration, configurationIndex, trans)
	if err != nil {
		c.m.total.Inc()
		c.m.failed.Inc()
		return nil, err
	}
	return &countingSink{SnapshotSink: sink, m: c.m}, nil
}

// countingSink records one outcome: Close without error is a success,
// Cancel (raft's answer to a failed write) or a failed Close a failure.
type countingSink struct {
	raft.SnapshotSink
	m    *snapshotMetrics
	once sync.Once
}

func (s *countingSink) outcome(ok bool) {
	s.once.Do(func() {
		s.m.total.Inc()
		if ok {
			s.m.lastOK.SetToCurrentTime()
		} else {
			s.m.failed.Inc()
		}
	})
}

func (s *countingSink) Close() error {
	err := s.SnapshotSink.Close()
	s.outcome(err == nil)
	return err
}

func (s *countingSink) Cancel() error {
	s.outcome(false)
	return s.SnapshotSink.Cancel()
}

// Collectors are the node's Prometheus collectors, for the API's
// registry: raft's internals (process-wide, see raftSink), this replica's
// snapshots, its state machine's apply time per command type, whether it
// knows a leader, and its state store's.
func (n *Node) Collectors() []prometheus.Collector {
	cs := []prometheus.Collector{installRaftMetrics()}
	cs = append(cs, n.snapMetrics.collectors()...)
	cs = append(cs, n.applyTimer.vec)
	cs = append(cs, prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "cityhub_raft_has_leader",
		Help: "1 when this replica knows its group's leader (it leads, or hears from one), 0 otherwise."},
		func() float64 {
			if _, id := n.raft.LeaderWithID(); id != "" {
				return 1
			}
			return 0
		}))
	return append(cs, n.store.Collectors()...)
}
