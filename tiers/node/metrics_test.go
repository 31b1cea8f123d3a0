package node

import (
	"testing"

	gometrics "github.com/hashicorp/go-metrics"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// gather is what a registry holding only s exports, by family and then
// by the label values joined with "|".
func gather(t *testing.T, s *raftSink) map[string]map[string]*dto.Metric {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(s)
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]*dto.Metric{}
	for _, f := range fams {
		out[f.GetName()] = map[string]*dto.Metric{}
		for _, m := range f.GetMetric() {
			k := ""
			for i, l := range m.GetLabel() {
				if i > 0 {
					k += "|"
				}
				k += l.GetName() + "=" + l.GetValue()
			}
			out[f.GetName()][k] = m
		}
	}
	return out
}

func TestRaftSinkRoutesRaftsKeys(t *testing.T) {
	s := newRaftSink()
	peer := []gometrics.Label{{Name: "peer_id", Value: "n2"}}
	// A timer in ms with a fixed label and the peer, twice, and for a
	// second peer.
	s.AddSampleWithLabels([]string{"raft", "replication", "appendEntries", "rpc"}, 3, peer)
	s.AddSampleWithLabels([]string{"raft", "replication", "appendEntries", "rpc"}, 5, peer)
	s.AddSampleWithLabels([]string{"raft", "replication", "appendEntries", "rpc"}, 7, []gometrics.Label{{Name: "peer_id", Value: "n3"}})
	// A family with a peer label, recorded without one: dropped.
	s.AddSampleWithLabels([]string{"raft", "replication", "appendEntries", "rpc"}, 9, nil)
	// A counter with the peer, a counter without labels, a negative
	// counter (dropped), a key not exported, a gauge.
	s.IncrCounterWithLabels([]string{"raft", "replication", "appendEntries", "logs"}, 4, peer)
	s.IncrCounter([]string{"raft", "apply"}, 1)
	s.IncrCounter([]string{"raft", "apply"}, 1)
	s.IncrCounter([]string{"raft", "apply"}, -1)
	s.AddSample([]string{"raft", "net", "rpcDecode"}, 1)
	s.SetGauge([]string{"raft", "peers"}, 3)
	// A timer without variable labels: raft's peer label is ignored.
	s.AddSampleWithLabels([]string{"raft", "commitTime"}, 2, peer)

	got := gather(t, s)
	rep := got["cityhub_raft_replication_seconds"]
	if len(rep) != 2 {
		t.Fatalf("replication series: %v", rep)
	}
	if h := rep["peer=n2|rpc=append_entries"].GetHistogram(); h.GetSampleCount() != 2 || h.GetSampleSum() != 0.008 {
		t.Errorf("n2: %d samples, sum %v s; want 2, 0.008", h.GetSampleCount(), h.GetSampleSum())
	}
	if h := rep["peer=n3|rpc=append_entries"].GetHistogram(); h.GetSampleCount() != 1 {
		t.Errorf("n3: %d samples", h.GetSampleCount())
	}
	if c := got["cityhub_raft_replicated_entries_total"]["peer=n2"].GetCounter().GetValue(); c != 4 {
		t.Errorf("replicated entries: %v", c)
	}
	if c := got["cityhub_raft_apply_total"][""].GetCounter().GetValue(); c != 2 {
		t.Errorf("apply: %v", c)
	}
	if g := got["cityhub_raft_peers"][""].GetGauge().GetValue(); g != 3 {
		t.Errorf("peers: %v", g)
	}
	if h := got["cityhub_raft_commit_seconds"][""].GetHistogram(); h.GetSampleCount() != 1 || h.GetSampleSum() != 0.002 {
		t.Errorf("commit: %d, %v", h.GetSampleCount(), h.GetSampleSum())
	}
	for name := range got {
		if name == "cityhub_raft_net_rpc_decode" || name == "" {
			t.Errorf("exported a key not routed: %s", name)
		}
	}
}

// raft records a few keys for every entry on every replica: once its
// series exist, recording one allocates nothing.
func TestRaftSinkRecordsWithoutAllocating(t *testing.T) {
	s := newRaftSink()
	key := []string{"raft", "replication", "appendEntries", "rpc"}
	labels := []gometrics.Label{{Name: "peer_id", Value: "n2"}}
	commit := []string{"raft", "commitTime"}
	s.AddSampleWithLabels(key, 1, labels)
	s.AddSample(commit, 1)
	if n := testing.AllocsPerRun(100, func() {
		s.AddSampleWithLabels(key, 1, labels)
		s.AddSample(commit, 1)
	}); n != 0 {
		t.Errorf("%v allocations a record", n)
	}
}
