package antientropy

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// pair is a parent (d-1) and a child (s-1) without raft or gRPC: the
// parent's runner calls the child's Handler directly.
type pair struct {
	parent, child *memLocal
	runner        *Runner
}

func newPair(t *testing.T, buckets uint32) *pair {
	topo := testTopo(t)
	p := &pair{parent: newMemLocal(t, topo, "d-1", ""), child: newMemLocal(t, topo, "s-1", "")}
	h := NewHandler("s-1", topo, p.child)
	var err error
	p.runner, err = New(Options{Self: "d-1", Topology: topo, Local: p.parent, Buckets: buckets, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Peer: func(name string) Peer {
			if name == "s-1" {
				return h
			}
			return unreachable{}
		}})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// unreachable is a neighbour that never answers.
type unreachable struct{}

var errUnreachable = errors.New("unreachable")

func (unreachable) Digest(context.Context, *pb.DigestRequest) (*pb.DigestResponse, error) {
	return nil, errUnreachable
}
func (unreachable) CaseVersions(context.Context, *pb.CaseVersionsRequest) (*pb.CaseVersionsResponse, error) {
	return nil, errUnreachable
}
func (unreachable) FetchCases(context.Context, *pb.FetchCasesRequest) (*pb.FetchCasesResponse, error) {
	return nil, errUnreachable
}
func (unreachable) Repair(context.Context, *pb.RepairRequest) (*pb.RepairResponse, error) {
	return nil, errUnreachable
}

func (p *pair) run(t *testing.T, dry bool) *pb.AntiEntropyLink {
	t.Helper()
	resp, err := p.runner.AntiEntropy(context.Background(), &pb.AntiEntropyRequest{Peer: "s-1", DryRun: dry})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Links) != 1 || resp.Links[0].Error != "" {
		t.Fatalf("report: %v", resp)
	}
	return resp.Links[0]
}

func TestRunFindsAndRepairsEveryKind(t *testing.T) {
	p := newPair(t, 0)
	var a, b, c []*pb.Case
	for i := range 300 {
		a = append(a, testCase(i, "320502", "c-1", 2, 3, "held below the street")) // shared
	}
	for i := range 100 {
		b = append(b, testCase(1000+i, "320501", "d-1", 1, 4, "the district's own"))    // not shared
		c = append(c, testCase(2000+i, "320501001", "s-1", 1, 2, "held by the street")) // shared
	}
	p.parent.put(t, a...)
	p.parent.put(t, b...)
	p.parent.put(t, c...)
	p.child.put(t, a...)
	p.child.put(t, c...)

	if rep := p.run(t, false); rep.SharedHere != 400 || rep.SharedThere != 400 || rep.BucketsDiffering != 0 || rep.Buckets != 64 {
		t.Fatalf("clean link: %v", rep)
	}

	// Damage both ends behind their state machines' backs.
	for _, x := range a[:10] {
		p.child.del(t, x.Id) // missing at the child: the parent's copy is the only one
	}
	for _, x := range c[:5] {
		p.child.del(t, x.Id) // the holder lost its case: restored from the parent's mirror
	}
	for _, x := range a[10:15] {
		y := proto.Clone(x).(*pb.Case)
		y.Description = "garbled"
		p.parent.put(t, y) // divergent at the parent; the child is nearer the holder
	}
	newer := testCase(20, "320502", "c-1", 2, 4, "held below the street")
	p.parent.put(t, newer) // the parent learned v4, which the child lost
	for _, x := range a[30:33] {
		p.parent.del(t, x.Id) // missing at the parent
	}
	stray := proto.Clone(b[0]).(*pb.Case)
	stray.ReportedAtNode = "320501001"
	p.child.put(t, stray) // a stray mirror claiming the street reported it

	dry := p.run(t, true)
	want := func(rep *pb.AntiEntropyLink) {
		t.Helper()
		if rep.MissingThere != 15 || rep.MissingHere != 3 || rep.Divergent != 6 || rep.Extra != 1 {
			t.Fatalf("found missing there %d, here %d, divergent %d, extra %d; want 15, 3, 6, 1 (%v)",
				rep.MissingThere, rep.MissingHere, rep.Divergent, rep.Extra, rep)
		}
	}
	want(dry)
	if dry.Repaired != 0 || p.child.get(t, a[0].Id) != nil || p.child.get(t, stray.Id) == nil {
		t.Fatalf("a dry run repaired: %v", dry)
	}
	rep := p.run(t, false)
	want(rep)
	if rep.Repaired != 25 || rep.BytesSent == 0 || rep.BytesReceived == 0 || len(rep.Sample) != 20 || rep.Seconds <= 0 {
		t.Fatalf("repair report: %v", rep)
	}
	// Every shared case is now the same at both ends and equals the copy
	// that stood.
	for i, x := range append(append([]*pb.Case{}, a...), c...) {
		if i == 20 {
			x = newer
		}
		pc, cc := p.parent.get(t, x.Id), p.child.get(t, x.Id)
		if !proto.Equal(pc, x) || !proto.Equal(cc, x) {
			t.Fatalf("case %s: parent %v, child %v, want %v", x.Id, pc, cc, x)
		}
	}
	if p.child.get(t, stray.Id) != nil || !proto.Equal(p.parent.get(t, b[0].Id), b[0]) {
		t.Fatal("the stray mirror is still there, or the parent's case was touched")
	}
	if again := p.run(t, false); again.BucketsDiffering != 0 || again.Repaired != 0 {
		t.Fatalf("second run: %v", again)
	}
	// The counters moved: two runs with differences (one dry), one clean
	// before, one after.
	reg := prometheus.NewRegistry()
	reg.MustRegister(p.runner.Metrics())
	for _, m := range []struct {
		name, labels string
		want         float64
	}{
		{"cityhub_antientropy_runs_total", "peer=s-1", 4},
		{"cityhub_antientropy_divergent_total", "kind=missing_there,peer=s-1", 30},
		{"cityhub_antientropy_divergent_total", "kind=extra,peer=s-1", 2},
		{"cityhub_antientropy_repaired_total", "peer=s-1", 25},
	} {
		if got := metricValue(t, reg, m.name, m.labels); got != m.want {
			t.Errorf("%s{%s} = %v, want %v", m.name, m.labels, got, m.want)
		}
	}
	if got := metricValue(t, reg, "cityhub_antientropy_last_run_seconds", "peer=s-1"); got <= 0 {
		t.Errorf("last run seconds %v", got)
	}
}

// metricValue reads one series ("k=v,k=v", labels in name order) from a
// registry; -1 when absent.
func metricValue(tb testing.TB, g prometheus.Gatherer, name, labels string) float64 {
	tb.Helper()
	mfs, err := g.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			var ls []string
			for _, l := range m.GetLabel() {
				ls = append(ls, l.GetName()+"="+l.GetValue())
			}
			if strings.Join(ls, ",") != labels {
				continue
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			}
		}
	}
	return -1
}

func TestRunWithFixedBucketsAndErrors(t *testing.T) {
	p := newPair(t, 1)
	x := testCase(1, "320502", "c-1", 2, 3, "x")
	p.parent.put(t, x)
	rep := p.run(t, false)
	if rep.Buckets != 1 || rep.MissingThere != 1 || rep.Repaired != 1 || !proto.Equal(p.child.get(t, x.Id), x) {
		t.Fatalf("one bucket: %v", rep)
	}
	// Not a neighbour.
	if _, err := p.runner.AntiEntropy(context.Background(), &pb.AntiEntropyRequest{Peer: "c-1"}); err == nil || !strings.Contains(err.Error(), "neither") {
		t.Fatalf("non-neighbour peer: %v", err)
	}
	// Every neighbour: the links to the city and s-2 fail and say so;
	// s-1's is compared.
	resp, err := p.runner.AntiEntropy(context.Background(), &pb.AntiEntropyRequest{})
	if err != nil || len(resp.Links) != 3 {
		t.Fatalf("all neighbours: %v, %v", resp, err)
	}
	if resp.Links[0].Peer != "city" || resp.Links[0].Error == "" || resp.Links[1].Peer != "s-1" || resp.Links[1].Error != "" {
		t.Fatalf("all neighbours: %v", resp)
	}
	if _, err := New(Options{Self: "d-1", Topology: testTopo(t), Local: p.parent, Buckets: 3}); err == nil {
		t.Fatal("3 buckets accepted")
	}
}

// The parent compares with its children by itself, every interval.
func TestPeriodicRunRepairsTheChildren(t *testing.T) {
	topo := testTopo(t)
	parent, child := newMemLocal(t, topo, "d-1", ""), newMemLocal(t, topo, "s-1", "")
	x := testCase(1, "320502", "c-1", 2, 3, "x")
	parent.put(t, x)
	h := NewHandler("s-1", topo, child)
	r, err := New(Options{Self: "d-1", Topology: topo, Local: parent, Interval: 10 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Peer: func(name string) Peer {
			if name == "s-1" {
				return h
			}
			return unreachable{} // s-2 and the city
		}})
	if err != nil {
		t.Fatal(err)
	}
	lead(t, r)
	deadline := time.Now().Add(10 * time.Second)
	for !proto.Equal(child.get(t, x.Id), x) {
		if time.Now().After(deadline) {
			t.Fatal("the periodic run did not repair the child")
		}
		time.Sleep(5 * time.Millisecond)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(r.Metrics())
	// The run's links are counted once the whole run is done, just after
	// the child was repaired: wait for the count.
	for metricValue(t, reg, "cityhub_antientropy_runs_total", "peer=s-2") < 1 {
		if time.Now().After(deadline) {
			t.Fatal("no run with s-2 counted")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Only the children are compared periodically, never the parent.
	if got := metricValue(t, reg, "cityhub_antientropy_runs_total", "peer=city"); got != -1 {
		t.Fatalf("the periodic run compared with the parent: %v", got)
	}
}

// A copy damaged at s-1 for a case held below it: on the link to d-1, s-1
// is nearer the holder, so its (damaged) copy stands there; on the link to
// c-1 the holder's copy stands. A run over both links repairs s-1 from c-1
// first, and then has nothing to send d-1.
func TestRunPullsBeforePushing(t *testing.T) {
	topo := testTopo(t)
	d, s, c := newMemLocal(t, topo, "d-1", ""), newMemLocal(t, topo, "s-1", ""), newMemLocal(t, topo, "c-1", "")
	var cases []*pb.Case
	for i := range 50 {
		cases = append(cases, testCase(i, "320502", "c-1", 2, 3, "held by the community"))
	}
	for _, l := range []*memLocal{d, s, c} {
		l.put(t, cases...)
	}
	bad := proto.Clone(cases[7]).(*pb.Case)
	bad.Description = "garbled"
	s.put(t, bad)
	hd, hc := NewHandler("d-1", topo, d), NewHandler("c-1", topo, c)
	r, err := New(Options{Self: "s-1", Topology: topo, Local: s, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Peer: func(name string) Peer {
			switch name {
			case "d-1":
				return hd
			case "c-1":
				return hc
			}
			return unreachable{}
		}})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := r.AntiEntropy(context.Background(), &pb.AntiEntropyRequest{})
	if err != nil {
		t.Fatal(err)
	}
	toD, toC := resp.Links[0], resp.Links[1]
	if toD.Peer != "d-1" || toD.Divergent != 1 || toD.Repaired != 0 || toC.Divergent != 1 || toC.Repaired != 1 {
		t.Fatalf("links: %v", resp)
	}
	for _, l := range []*memLocal{d, s, c} {
		if got := l.get(t, bad.Id); !proto.Equal(got, cases[7]) {
			t.Fatalf("after the run: %v", got)
		}
	}
	// Nothing was sent to d-1 but the comparison itself (a Repair would
	// carry the whole case).
	if n := toD.BytesSent; n > uint64(proto.Size(bad)) {
		t.Fatalf("%d bytes sent to d-1: a repair was pushed", n)
	}
}
