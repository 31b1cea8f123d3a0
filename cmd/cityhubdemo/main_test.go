package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/cityhub/cityhub/federation/topology"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/store"
)

// lockedBuffer is a bytes.Buffer safe for concurrent writers.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// freePortBase finds a port base whose five blocks of n ports are free
// right now, so the demo does not collide with tests running alongside.
func freePortBase(t *testing.T, n int) int {
	t.Helper()
	for try := 0; try < 50; try++ {
		base := 20000 + 100*rand.IntN(350) // up to 55000: the blocks end below 55500
		var held []net.Listener
		ok := true
		for _, block := range []int{raftBlock, grpcBlock, httpBlock, federationBlock, internalBlock} {
			for i := 1; i <= n && ok; i++ {
				l, err := net.Listen("tcp", addr(base, block, i))
				if err != nil {
					ok = false
					break
				}
				held = append(held, l)
			}
		}
		for _, l := range held {
			l.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatal("no free port range")
	return 0
}

// settled reports whether every link of the federation is drained: each
// leader's outbox fully acknowledged and each neighbour's high-water mark
// at what was queued toward it. marks names every link's last queued
// sequence number: two equal marks around a read mean nothing moved in
// between.
func settled(d *demo) (ok bool, why string, marks string) {
	queued := map[[2]string]uint64{}
	received := map[[2]string]uint64{}
	var b strings.Builder
	for _, n := range d.lay.nodes {
		st, err := d.leader(n.node.Name).FederationStatus()
		if err != nil {
			return false, err.Error(), ""
		}
		for _, l := range st.Links {
			if l.LagEntries != 0 {
				return false, fmt.Sprintf("%s→%s: %d entries unacknowledged", n.node.Name, l.Peer, l.LagEntries), ""
			}
			queued[[2]string{n.node.Name, l.Peer}] = l.OutLastSeq
			received[[2]string{l.Peer, n.node.Name}] = l.InHighWater
			fmt.Fprintf(&b, "%s→%s:%d ", n.node.Name, l.Peer, l.OutLastSeq)
		}
	}
	for k, q := range queued {
		if received[k] != q {
			return false, fmt.Sprintf("%s→%s: queued %d, received %d", k[0], k[1], q, received[k]), ""
		}
	}
	return true, "", b.String()
}

// allCases reads every case, with its history, from each node's leader.
func allCases(t *testing.T, d *demo) map[string]map[string]*pb.Case {
	t.Helper()
	out := map[string]map[string]*pb.Case{}
	for _, n := range d.lay.nodes {
		m := map[string]*pb.Case{}
		q := store.Query{PageSize: 500, WithHistory: true}
		for {
			page, next, err := d.leader(n.node.Name).Node.Store().List(q)
			if err != nil {
				t.Fatalf("%s: %v", n.node.Name, err)
			}
			for _, c := range page {
				m[c.Id] = c
			}
			if next == "" {
				break
			}
			q.PageToken = next
		}
		out[n.node.Name] = m
	}
	return out
}

// settleTimeout bounds the wait for the federation to drain its links: a
// generous bound for a loaded machine, not an expected duration.
const settleTimeout = 3 * time.Minute

// settledCases waits until every link is drained and reads every node's
// cases while nothing moves: the links' marks are the same before and
// after the read (the overdue sweeper and the reconciler's follow loop
// may still write after the generator stopped).
func settledCases(t *testing.T, d *demo) map[string]map[string]*pb.Case {
	t.Helper()
	deadline := time.Now().Add(settleTimeout)
	for {
		ok, why, before := settled(d)
		if ok {
			cases := allCases(t, d)
			if ok, _, after := settled(d); ok && after == before {
				return cases
			}
			why = "versions moved while reading"
		}
		if time.Now().After(deadline) {
			t.Fatalf("federation not settled after %v: %s", settleTimeout, why)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// checkFlow asserts, on a settled federation, that cases reported at the
// city were handed down to streets and communities, that some went up, and
// that every holder's version of every case is the one its ancestors and
// its reporting node mirror.
func checkFlow(t *testing.T, d *demo) {
	t.Helper()
	cases := settledCases(t, d)
	topo := d.lay.topo
	city := topo.Root()
	var handedDown, transferredUp, mirrors int
	var example string
	for _, n := range topo.Nodes() {
		for id, c := range cases[n.Name] {
			if c.Holder != n.Name {
				continue
			}
			// Status flowed up: every ancestor and the reporting node
			// holds exactly the holder's version.
			watchers := topo.Ancestors(n.Name)
			if rep, ok := topo.NodeByJurisdiction(c.ReportedAtNode); ok && rep.Name != n.Name {
				watchers = append(watchers, rep)
			}
			for _, w := range watchers {
				m, ok := cases[w.Name][id]
				if !ok {
					t.Errorf("case %s held by %s: no mirror at %s", id, n.Name, w.Name)
					continue
				}
				if !proto.Equal(m, c) {
					t.Errorf("case %s held by %s at version %d: %s mirrors version %d (holder %s)", id, n.Name, c.Version, w.Name, m.Version, m.Holder)
				}
				mirrors++
			}
			if to, ok := handedDownTo(topo, c); ok && c.ReportedAtNode == city.Jurisdiction {
				handedDown++
				if example == "" {
					example = fmt.Sprintf("%s (reported at the city, handed down to %s, held by %s, version %d, %s)", id, to, n.Name, c.Version, c.State)
				}
			}
			for _, h := range c.History {
				if h.Action == pb.Action_ACTION_TRANSFER_UP {
					transferredUp++
					break
				}
			}
		}
	}
	t.Logf("%d cases at the city; %d reported at the city and handed down to a street or community, e.g. %s; %d went up; %d mirrors checked",
		len(cases[city.Name]), handedDown, example, transferredUp, mirrors)
	if handedDown == 0 {
		t.Error("no case reported at the city was handed down to a street or community")
	}
	if transferredUp == 0 {
		t.Error("no case was transferred up")
	}
	// The city mirrors every case of the federation.
	for _, n := range topo.Nodes() {
		for id := range cases[n.Name] {
			if _, ok := cases[city.Name][id]; !ok {
				t.Errorf("case %s at %s is unknown to the city", id, n.Name)
			}
		}
	}
}

// reported is how many cases the generator has reported so far.
func reported(s *simulator) int64 {
	var n int64
	for i := range s.stats.reported {
		n += s.stats.reported[i].Load()
	}
	return n
}

// handedDownTo returns the street or community that c was dispatched to
// (its history keeps every dispatch, whatever happened to the case later).
func handedDownTo(topo *topology.Topology, c *pb.Case) (string, bool) {
	for _, h := range c.History {
		if h.Action != pb.Action_ACTION_DISPATCH {
			continue
		}
		if n, ok := topo.NodeOfUnit(h.Unit); ok && (n.Tier == topology.Street || n.Tier == topology.Community) {
			return n.Name, true
		}
	}
	return "", false
}

// handedDown counts the cases reported at the city that were handed down
// to a street or community, read from the city's own store: it made the
// dispatches or mirrors them, and a history only grows, so the count never
// goes back once the generator stops.
func handedDown(t *testing.T, d *demo) int {
	t.Helper()
	topo := d.lay.topo
	city := topo.Root()
	n := 0
	q := store.Query{PageSize: 500, WithHistory: true}
	for {
		page, next, err := d.leader(city.Name).Node.Store().List(q)
		if err != nil {
			t.Fatalf("city: %v", err)
		}
		for _, c := range page {
			if _, ok := handedDownTo(topo, c); ok && c.ReportedAtNode == city.Jurisdiction {
				n++
			}
		}
		if next == "" {
			return n
		}
		q.PageToken = next
	}
}

// The demo starts the whole default federation, cases flow down and their
// status up, and a restart on the same data carries on.
func TestDemoFlowAndRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 15 nodes")
	}
	dir := t.TempDir()
	base := freePortBase(t, 15)
	var out, logs lockedBuffer
	// The generator runs until it has done enough for every assertion
	// below (the counts the test waits for), however long that takes on
	// a loaded machine; bound is only a generous upper limit.
	const bound = 5 * time.Minute
	o := options{
		dataDir: dir, rate: 12, duration: bound, replicas: 1, portBase: base,
		pace: 600 * time.Millisecond, statusEvery: 3 * time.Second, out: &out, log: &logs,
	}
	var (
		lines  int
		enough bool
		atCity int
	)
	o.stopWhen = func(s *simulator) bool {
		lines++
		enough = lines >= 3 && reported(s) >= 50 && s.stats.transferredUp.Load() > 0 && handedDown(t, s.d) > 0
		return enough
	}
	began := time.Now()
	o.beforeStop = func(d *demo) error {
		t.Logf("first run: generator stopped after %v", time.Since(began).Round(time.Millisecond))
		if !enough {
			t.Fatalf("the generator did not report 50 cases, hand one reported at the city down to a street or community and transfer one up within %v:\n%s", bound, out.String())
		}
		checkFlow(t, d)
		atCity = len(allCases(t, d)["city"])
		// The backlog's 7 disputes wait at the city for a shift leader:
		// the generator leaves cases in review alone.
		if n, err := d.leader("city").Node.Store().CountInReview(); err != nil || n != 7 {
			t.Errorf("the city's joint review queue has %d cases (%v), want the backlog's 7 disputes", n, err)
		}
		return nil
	}
	if err := run(context.Background(), o); err != nil {
		t.Fatalf("run: %v\n%s\n%s", err, out.String(), logs.String())
	}
	text := out.String()
	t.Logf("first run: %v; %s", time.Since(began).Round(time.Millisecond), strings.SplitN(text, "\n", 2)[0])
	cityREST := addr(base, httpBlock, 1)
	for _, want := range []string{"a federation of 15 nodes", "curl -s 'http://" + cityREST + "/v1/cases?page_size=5'", "/v1/federation/links", "/metrics", "cityhubctl",
		// The web console and who to open it as.
		"http://" + cityREST + "/screen", "http://" + addr(base, httpBlock, 4) + "/m", "320505001001-grid (狮山社区网格工作站)",
		// The sample district's backlog is imported and reconciled.
		"400 imported, 0 imported before, 7 quarantined (lines 39, 91, 145, 204, 271, 315, 376)", "Reconciled (run d-320505-"} {
		if !strings.Contains(text, want) {
			t.Errorf("banner lacks %q", want)
		}
	}
	// Every cityhubctl hint names the node it talks to, and the command
	// exists (the test binary has no cityhubctl beside it: go run).
	for _, line := range strings.Split(text, "\n") {
		if strings.Contains(line, "cityhubctl ") && !strings.Contains(line, "--addr 127.0.0.1:") {
			t.Errorf("a cityhubctl hint without --addr: %q", line)
		}
		if strings.Contains(line, "cityhubctl ") && !strings.Contains(line, "go run ./cmd/cityhubctl ") {
			t.Errorf("a cityhubctl hint that is neither bin/cityhubctl nor go run: %q", line)
		}
	}
	// One line per tier, then the flow, every few seconds.
	for _, tier := range []string{"city", "district", "street", "community"} {
		if !regexp.MustCompile(`(?m)^(\d\d:\d\d:\d\d \S+| +)  ` + tier + ` +\d+ nodes? +held +\d+ \( *\d+ open, +\d+ overdue\) +mirrored +\d+ +links: +\d+ queued, oldest +[\d.]+s`).MatchString(text) {
			t.Errorf("no status line for %s:\n%s", tier, text)
		}
	}
	m := regexp.MustCompile(`flow: (\d+) reported .* · (\d+) handed down · (\d+) transferred up`).FindAllStringSubmatch(text, -1)
	if len(m) < 3 {
		t.Fatalf("%d flow lines:\n%s", len(m), text)
	}
	last := m[len(m)-1]
	if n, _ := strconv.Atoi(last[1]); n < 50 {
		t.Errorf("only %s cases reported", last[1])
	}
	if last[2] == "0" || last[3] == "0" {
		t.Errorf("last flow line: %s", last[0])
	}
	if t.Failed() {
		t.Logf("output:\n%s\nlog:\n%s", text, logs.String())
		return
	}

	// Restart on the same data, now with mutual TLS between the nodes: the
	// open cases are picked up, new ones keep flowing, and every version
	// still reaches its mirrors.
	out2 := &lockedBuffer{}
	o.out, o.tls = out2, true
	enough = false
	o.stopWhen = func(s *simulator) bool {
		enough = reported(s) >= 10
		return enough
	}
	began = time.Now()
	o.beforeStop = func(d *demo) error {
		t.Logf("restart: generator stopped after %v", time.Since(began).Round(time.Millisecond))
		if !enough {
			t.Fatalf("the generator did not report 10 cases within %v after the restart:\n%s", bound, out2.String())
		}
		checkFlow(t, d)
		if n := len(allCases(t, d)["city"]); n <= atCity {
			t.Errorf("after the restart the city has %d cases, %d before", n, atCity)
		}
		return nil
	}
	if err := run(context.Background(), o); err != nil {
		t.Fatalf("restart: %v\n%s\n%s", err, out2.String(), logs.String())
	}
	t.Logf("restart: %v; %s", time.Since(began).Round(time.Millisecond), strings.SplitN(out2.String(), "\n", 2)[0])
	for _, want := range []string{"The generator works on ", "0 imported, 400 imported before", "mutual TLS, development certificates in " + filepath.Join(dir, "certs")} {
		if !strings.Contains(out2.String(), want) {
			t.Errorf("restart output lacks %q:\n%s", want, out2.String())
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "certs", "c-320506002002.pem")); err != nil {
		t.Errorf("no certificate: %v", err)
	}
	// A different layout on the same data is refused.
	o.replicas = 3
	if err := run(context.Background(), o); err == nil || !strings.Contains(err.Error(), "laid out differently") {
		t.Errorf("3 replicas on 1-replica data: %v", err)
	}
	if t.Failed() {
		t.Logf("log:\n%s", logs.String())
	}
}
