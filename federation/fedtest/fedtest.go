// Package fedtest starts an in-process federation for tests: one
// testcluster group (1 or 3 replicas, real raft, badger, gRPC) per node of
// a topology, linked by the real federation layer through a Network that
// can partition links.
package fedtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cityhub/cityhub/config"
	"github.com/cityhub/cityhub/federation/topology"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/node"
	"github.com/cityhub/cityhub/tiers/replica"
	"github.com/cityhub/cityhub/tiers/replica/testcluster"
)

// NodeSpec is one node of the federation to start.
type NodeSpec struct {
	Name, Tier, Jurisdiction, Parent string
	// Units are the node's unit ids, each named by itself, or "id=name".
	Units []string
}

// Federation is a running in-process federation.
type Federation struct {
	t      testing.TB
	Topo   *topology.Topology
	Specs  []NodeSpec
	Groups map[string]*testcluster.Cluster
	Net    *Network
}

// Option adjusts every replica's configuration.
type Option = testcluster.Option

// New starts every node of specs with the given number of replicas and
// waits until each group has a leader and the topology is applied.
func New(t testing.TB, specs []NodeSpec, replicas int, opts ...Option) *Federation {
	t.Helper()
	return NewWithClock(t, specs, replicas, nil, opts...)
}

// NewWithClock is New with one leader clock for every replica (tests of
// deadlines move it); nil is the system clock.
func NewWithClock(t testing.TB, specs []NodeSpec, replicas int, clock node.Clock, opts ...Option) *Federation {
	t.Helper()
	f := &Federation{t: t, Specs: specs, Groups: map[string]*testcluster.Cluster{}, Net: newNetwork()}
	dir := t.TempDir()
	// Federation addresses are needed in the topology before any group starts.
	addrs := map[string][]string{}
	var yml strings.Builder
	yml.WriteString("nodes:\n")
	for _, s := range specs {
		for i := 0; i < replicas; i++ {
			a := testcluster.FreePort(t)
			addrs[s.Name] = append(addrs[s.Name], a)
			f.Net.addrNode[a] = s.Name
		}
		fmt.Fprintf(&yml, "  - name: %s\n    tier: %s\n    jurisdiction: %q\n", s.Name, s.Tier, s.Jurisdiction)
		if s.Parent != "" {
			fmt.Fprintf(&yml, "    parent: %s\n", s.Parent)
		}
		fmt.Fprintf(&yml, "    replicas: [%s]\n    units:\n", strings.Join(addrs[s.Name], ", "))
		for _, u := range s.Units {
			id, name, named := strings.Cut(u, "=")
			if !named {
				name = id
			}
			fmt.Fprintf(&yml, "      - {id: %s, name: %q}\n", id, name)
		}
	}
	path := filepath.Join(dir, "topology.yaml")
	if err := os.WriteFile(path, []byte(yml.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	topo, err := topology.Load([]byte(yml.String()))
	if err != nil {
		t.Fatalf("topology: %v\n%s", err, yml.String())
	}
	f.Topo = topo
	for _, s := range specs {
		s := s
		nodeOpts := append([]Option{func(c *config.Config) {
			c.Node.Tier = s.Tier
			c.Node.Jurisdiction = s.Jurisdiction
			c.Federation.Topology = path
			c.Federation.Node = s.Name
			c.Federation.Insecure = true
			var i int
			fmt.Sscanf(c.Node.ID, "n%d", &i)
			c.Federation.Addr = addrs[s.Name][i-1]
		}}, opts...)
		f.Groups[s.Name] = testcluster.NewWith(t, replicas, func(config.Config) replica.Options {
			return replica.Options{FederationDialer: f.Net.DialerFrom(s.Name), Clock: clock}
		}, nodeOpts...)
	}
	testcluster.WaitFor(t, 30*time.Second, "topology applied everywhere", f.Ready)
	return f
}

// Ready reports whether every running replica accepts writes (its
// topology is applied).
func (f *Federation) Ready() bool {
	for _, g := range f.Groups {
		for _, i := range g.Up() {
			r := g.Replica(i)
			if r == nil {
				continue
			}
			st, err := r.Node.Store().Topology()
			if err != nil || st == nil {
				return false
			}
		}
	}
	return true
}

// Settled reports whether every link is drained: on each node's leader,
// every outbox entry is acknowledged, and each receiver's high-water mark
// equals what its neighbour queued.
func (f *Federation) Settled() (bool, string) {
	queued := map[[2]string]uint64{}
	received := map[[2]string]uint64{}
	for name, g := range f.Groups {
		l := g.Leader()
		if l < 0 {
			return false, name + " has no leader"
		}
		r := g.Replica(l)
		if r == nil {
			return false, name + " leader just stopped"
		}
		st, err := r.FederationStatus()
		if err != nil {
			return false, err.Error()
		}
		for _, ls := range st.Links {
			if ls.LagEntries != 0 {
				return false, fmt.Sprintf("%s→%s has %d entries unacknowledged", name, ls.Peer, ls.LagEntries)
			}
			queued[[2]string{name, ls.Peer}] = ls.OutLastSeq
			received[[2]string{ls.Peer, name}] = ls.InHighWater
		}
	}
	for k, q := range queued {
		if received[k] != q {
			return false, fmt.Sprintf("%s→%s: queued %d, received %d", k[0], k[1], q, received[k])
		}
	}
	return true, ""
}

// WaitSettled waits until Settled.
func (f *Federation) WaitSettled(timeout time.Duration) {
	f.t.Helper()
	var why string
	deadline := time.Now().Add(timeout)
	for {
		ok, w := f.Settled()
		if ok {
			return
		}
		why = w
		if time.Now().After(deadline) {
			f.t.Fatalf("federation not settled after %v: %s", timeout, why)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Client calls a group's CaseService on whichever replica answers,
// retrying through elections and partitions until ctx ends. Every write
// carries a request id, so a retry never applies twice.
type Client struct {
	g *testcluster.Cluster
}

// Client returns a client of node name.
func (f *Federation) Client(name string) *Client { return &Client{g: f.Groups[name]} }

// Do calls fn with a CaseService client of a running replica until it
// succeeds, fails with a non-retryable error, or ctx ends.
func (c *Client) Do(ctx context.Context, fn func(context.Context, pb.CaseServiceClient) error) error {
	var last error
	for k := 0; ; k++ {
		up := c.g.Up()
		if len(up) > 0 {
			i := up[k%len(up)]
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := fn(cctx, c.g.Cases(i))
			cancel()
			if err == nil || !Retryable(err) {
				return err
			}
			last = err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %v)", ctx.Err(), last)
		case <-time.After(time.Duration(min(k+1, 10)) * 20 * time.Millisecond):
		}
	}
}
