package api_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/cityhub/cityhub/tiers/replica/testcluster"
)

// scrape parses a node's /metrics.
func scrape(t *testing.T, base string) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(httpGet(t, base+"/metrics")))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	return fams
}

func labelsOf(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

// sampleCount is a histogram family's observations over its series whose
// labels include want.
func sampleCount(f *dto.MetricFamily, want map[string]string) uint64 {
	var n uint64
	for _, m := range f.GetMetric() {
		ls := labelsOf(m)
		match := true
		for k, v := range want {
			if ls[k] != v {
				match = false
			}
		}
		if match {
			n += m.GetHistogram().GetSampleCount()
		}
	}
	return n
}

func gaugeValue(t *testing.T, fams map[string]*dto.MetricFamily, name string) float64 {
	t.Helper()
	f := fams[name]
	if f == nil || len(f.GetMetric()) == 0 {
		t.Fatalf("/metrics has no %s", name)
	}
	return f.GetMetric()[0].GetGauge().GetValue()
}

// TestMetricsRoutesRaftAndBadger: REST requests are labelled by their
// route's pattern, never the path (a case id would make a series per case);
// raft's and badger's internals, readiness, the build and the node are
// exported after a few writes.
func TestMetricsRoutesRaftAndBadger(t *testing.T) {
	c := testcluster.New(t, 1)
	rc := restClient{t: t, base: c.HTTPBase(0)}
	var ids []string
	for i := range 3 {
		code, body := rc.do(http.MethodPost, "/v1/cases", fmt.Sprintf(reportJSON, fmt.Sprintf("obs-%d", i)))
		if code != http.StatusOK {
			t.Fatalf("report: %d %v", code, body)
		}
		ids = append(ids, body["case"].(map[string]any)["id"].(string))
	}
	for i, id := range ids {
		if code, body := rc.act(id, "file", fmt.Sprintf(`{"request_id":"obs-file-%d","actor":"lead","role":"ROLE_SHIFT_LEADER"}`, i)); code != http.StatusOK {
			t.Fatalf("file: %d %v", code, body)
		}
		if code, _ := rc.do(http.MethodGet, "/v1/cases/"+id, ""); code != http.StatusOK {
			t.Fatalf("get %s: %d", id, code)
		}
	}
	if code, _ := rc.do(http.MethodGet, "/v1/no/such/route", ""); code != http.StatusNotFound {
		t.Fatalf("unknown route: %d", code)
	}
	if code, _ := rc.do(http.MethodGet, "/healthz", ""); code != http.StatusOK {
		t.Fatalf("healthz: %d", code)
	}

	fams := scrape(t, c.HTTPBase(0))
	httpDur := fams["cityhub_http_request_duration_seconds"]
	if httpDur == nil {
		t.Fatal("no cityhub_http_request_duration_seconds")
	}
	for _, w := range []struct {
		labels map[string]string
		n      uint64
	}{
		{map[string]string{"method": "POST", "route": "/v1/cases", "status": "200"}, 3},
		{map[string]string{"method": "POST", "route": "/v1/cases/{case_id}:file", "status": "200"}, 3},
		{map[string]string{"method": "GET", "route": "/v1/cases/{case_id}", "status": "200"}, 3},
		{map[string]string{"method": "GET", "route": "/healthz", "status": "200"}, 1},
		{map[string]string{"method": "GET", "route": "/v1/", "status": "404"}, 1},
	} {
		if got := sampleCount(httpDur, w.labels); got != w.n {
			t.Errorf("requests %v: %d, want %d", w.labels, got, w.n)
		}
	}
	for _, m := range httpDur.GetMetric() {
		for _, id := range ids {
			if strings.Contains(labelsOf(m)["route"], id) {
				t.Errorf("a route label holds a case id: %v", labelsOf(m))
			}
		}
	}

	// Raft's internals came through the go-metrics sink; badger's from
	// its expvars; the state store has files.
	for _, name := range []string{"cityhub_raft_commit_seconds", "cityhub_raft_fsm_apply_batch_seconds", "cityhub_raft_fsm_apply_batch_entries"} {
		if f := fams[name]; f == nil || sampleCount(f, nil) == 0 {
			t.Errorf("%s has no observations after 6 writes", name)
		}
	}
	// The state machine's apply time per command type: 3 reports, 3
	// actions on the one replica.
	for cmd, n := range map[string]uint64{"report": 3, "act": 3} {
		if got := sampleCount(fams["cityhub_fsm_apply_seconds"], map[string]string{"command": cmd}); got < n {
			t.Errorf("cityhub_fsm_apply_seconds{command=%q}: %d observations, want at least %d", cmd, got, n)
		}
	}
	if f := fams["cityhub_raft_apply_total"]; f == nil || f.GetMetric()[0].GetCounter().GetValue() < 6 {
		t.Errorf("cityhub_raft_apply_total: %v", f)
	}
	if f := fams["cityhub_badger_puts_total"]; f == nil || f.GetMetric()[0].GetCounter().GetValue() == 0 {
		t.Errorf("cityhub_badger_puts_total: %v", f)
	}
	for name, want := range map[string]float64{"cityhub_raft_has_leader": 1, "cityhub_ready": 1, "cityhub_build_info": 1, "cityhub_node_info": 1} {
		if got := gaugeValue(t, fams, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if got := gaugeValue(t, fams, "cityhub_calendar_holiday_data_last_year"); got < 2026 {
		t.Errorf("cityhub_calendar_holiday_data_last_year = %v: the default calendar has 2026's holidays", got)
	}
	if ls := labelsOf(fams["cityhub_node_info"].GetMetric()[0]); ls["node"] != c.Members[0].ID || ls["tier"] == "" || ls["group"] == "" {
		t.Errorf("cityhub_node_info labels %v", ls)
	}
}

// waitHealth polls gRPC health of service on member i until it answers
// want, for up to 20 seconds.
func waitHealth(t *testing.T, c *testcluster.Cluster, i int, service string, want healthpb.HealthCheckResponse_ServingStatus) {
	t.Helper()
	hc := healthpb.NewHealthClient(c.Conn(i))
	deadline := time.Now().Add(60 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: service})
		cancel()
		if err == nil && resp.GetStatus() == want {
			return
		}
		last = fmt.Sprint(resp.GetStatus(), err)
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("member %d health %q: %s after 60s, want %s", i, service, last, want)
}

// TestGRPCHealthFollowsReadiness: every replica of a group is SERVING once
// ready; a replica left without a quorum stops being ready, and its gRPC
// health says NOT_SERVING, as /readyz says 503.
func TestGRPCHealthFollowsReadiness(t *testing.T) {
	c := testcluster.New(t, 3)
	leader := c.WaitLeader(20 * time.Second)
	for i := range 3 {
		waitHealth(t, c, i, "", healthpb.HealthCheckResponse_SERVING)
		waitHealth(t, c, i, "cityhub.v1.CaseService", healthpb.HealthCheckResponse_SERVING)
	}
	// Stop both followers: the leader loses its lease and steps down.
	for i := range 3 {
		if i != leader {
			c.Stop(i)
		}
	}
	waitHealth(t, c, leader, "", healthpb.HealthCheckResponse_NOT_SERVING)
	waitHealth(t, c, leader, "cityhub.v1.CaseService", healthpb.HealthCheckResponse_NOT_SERVING)
	resp, err := http.Get(c.HTTPBase(leader) + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/readyz %d while gRPC health says NOT_SERVING", resp.StatusCode)
	}
	// Back to a quorum: serving again.
	for i := range 3 {
		if i != leader {
			c.Start(i)
		}
	}
	waitHealth(t, c, leader, "", healthpb.HealthCheckResponse_SERVING)
}
