// Package testcluster starts in-process tier nodes on loopback for tests:
// real raft over TCP, real badger on disk, real gRPC and REST, with kill,
// stop and restart of any replica (after etcd's integration cluster).
package testcluster

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/cityhub/cityhub/config"
	"github.com/cityhub/cityhub/federation/certs"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/replica"
)

// Member is one replica slot; R is nil while the replica is down.
type Member struct {
	ID  string
	Cfg config.Config
	R   *replica.Replica
}

// Cluster is a group of replicas of one tier node.
type Cluster struct {
	t       testing.TB
	mu      sync.Mutex
	Members []*Member
	conns   map[string]*grpc.ClientConn
	Logger  *slog.Logger
	ro      func(config.Config) replica.Options
}

// Option adjusts each member's configuration before start.
type Option func(*config.Config)

// FreePort returns a loopback address nobody listens on right now, never
// the same twice in a process. Ports come from 20000-32767, below the
// kernel's ephemeral range (32768 and up on Linux): there an outgoing
// connection's source port could take the address of a replica a test
// stopped, and its restart would fail with "address already in use".
// Each process starts at an offset of its own, so packages tested at the
// same time rarely probe the same ports.
func FreePort(t testing.TB) string {
	t.Helper()
	handedOut.Lock()
	defer handedOut.Unlock()
	if handedOut.next == 0 {
		handedOut.next = portLow + (os.Getpid()*97)%(portHigh-portLow)
	}
	for tries := 0; tries < portHigh-portLow; tries++ {
		port := handedOut.next
		handedOut.next++
		if handedOut.next >= portHigh {
			handedOut.next = portLow
		}
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		if handedOut.ports[addr] {
			continue
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		l.Close()
		handedOut.ports[addr] = true
		return addr
	}
	t.Fatalf("free port: none left in %d-%d", portLow, portHigh)
	return ""
}

const portLow, portHigh = 20000, 32768

var handedOut = struct {
	sync.Mutex
	next  int
	ports map[string]bool
}{ports: map[string]bool{}}

// New starts n bootstrapped replicas and waits for a leader.
func New(t testing.TB, n int, opts ...Option) *Cluster {
	t.Helper()
	return NewWith(t, n, nil, opts...)
}

// NewWith is New with extra start options for each replica (ro may be nil).
func NewWith(t testing.TB, n int, ro func(config.Config) replica.Options, opts ...Option) *Cluster {
	t.Helper()
	c := &Cluster{t: t, conns: map[string]*grpc.ClientConn{}, Logger: testLogger(), ro: ro}
	dir := t.TempDir()
	var peers []config.Peer
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("n%d", i+1)
		cfg := config.Default()
		cfg.Node.ID = id
		cfg.Node.DataDir = filepath.Join(dir, id)
		cfg.Raft.Addr = FreePort(t)
		cfg.GRPC.Addr = FreePort(t)
		cfg.HTTP.Addr = FreePort(t)
		cfg.Internal.Addr = FreePort(t)
		cfg.Raft.Bootstrap = true
		cfg.Raft.HeartbeatTimeout = 500 * time.Millisecond
		cfg.Raft.ElectionTimeout = 500 * time.Millisecond
		cfg.Raft.LeaderLeaseTimeout = 250 * time.Millisecond
		cfg.Raft.CommitTimeout = 10 * time.Millisecond
		cfg.Log.Level = config.LogLevelWarn
		// The engine's tests speak as whoever their requests say; the
		// identity tests turn authentication on with an Option.
		cfg.Auth.Disabled = true
		// They also send as fast as they can from one address (and poll
		// logins until the first administrator exists): no caller rates,
		// and no concurrency limit below what a benchmark runs. The
		// limits' tests set their own with an Option.
		cfg.Limits.Rate, cfg.Limits.LoginRate, cfg.Limits.MaxConcurrent = 0, 0, 0
		for _, o := range opts {
			o(&cfg)
		}
		cfg.ApplyDerived()
		peers = append(peers, config.Peer{ID: id, RaftAddr: cfg.Raft.Addr, GRPCAddr: cfg.GRPC.Addr, HTTPAddr: cfg.HTTP.Addr, InternalAddr: cfg.Internal.Addr})
		c.Members = append(c.Members, &Member{ID: id, Cfg: cfg})
	}
	for _, m := range c.Members {
		if n > 1 {
			m.Cfg.Raft.Peers = peers
		}
		if err := m.Cfg.Validate(); err != nil {
			t.Fatalf("config of %s: %v", m.ID, err)
		}
	}
	t.Cleanup(c.Close)
	for i := range c.Members {
		c.Start(i)
	}
	c.WaitLeader(20 * time.Second)
	return c
}

// FromConfigs makes a cluster of members with the given configurations
// (validated; Node.ID names each member) without starting them: tests
// that start replicas on data they prepared (TryStart, Start).
func FromConfigs(t testing.TB, cfgs ...config.Config) *Cluster {
	t.Helper()
	c := &Cluster{t: t, conns: map[string]*grpc.ClientConn{}, Logger: testLogger()}
	for _, cfg := range cfgs {
		if err := cfg.Validate(); err != nil {
			t.Fatalf("config of %s: %v", cfg.Node.ID, err)
		}
		c.Members = append(c.Members, &Member{ID: cfg.Node.ID, Cfg: cfg})
	}
	t.Cleanup(c.Close)
	return c
}

// Start (re)starts member i from its data directory.
func (c *Cluster) Start(i int) {
	c.t.Helper()
	var err error
	// A restarted member binds the same ports; the old sockets may take a
	// moment to go.
	for attempt := 0; attempt < 50; attempt++ {
		if err = c.TryStart(i); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.t.Fatalf("start %s: %v", c.Members[i].ID, err)
}

// TryStart starts member i once and returns why it did not start.
func (c *Cluster) TryStart(i int) error {
	return c.StartWith(i, func(*replica.Options) {})
}

// StartWith starts member i once with its start options adjusted by adjust
// (for instance Rejoin).
func (c *Cluster) StartWith(i int, adjust func(*replica.Options)) error {
	m := c.Members[i]
	o := replica.Options{}
	if c.ro != nil {
		o = c.ro(m.Cfg)
	}
	o.Logger = c.Logger
	adjust(&o)
	r, err := replica.Start(context.Background(), m.Cfg, o)
	if err != nil {
		return err
	}
	c.mu.Lock()
	m.R = r
	c.mu.Unlock()
	return nil
}

// Kill stops member i at once, as SIGKILL would (calls in flight fail).
func (c *Cluster) Kill(i int) {
	c.mu.Lock()
	r := c.Members[i].R
	c.Members[i].R = nil
	c.mu.Unlock()
	if r != nil {
		r.Kill()
	}
}

// Stop stops member i gracefully.
func (c *Cluster) Stop(i int) {
	c.mu.Lock()
	r := c.Members[i].R
	c.Members[i].R = nil
	c.mu.Unlock()
	if r != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = r.Stop(ctx)
	}
}

// Close stops every member and closes client connections.
func (c *Cluster) Close() {
	for i := range c.Members {
		c.Kill(i)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, cc := range c.conns {
		_ = cc.Close()
	}
	c.conns = map[string]*grpc.ClientConn{}
}

// Replica returns member i's running replica, or nil while it is down. Use
// it, not Members[i].R, from goroutines that run alongside Kill and Start.
func (c *Cluster) Replica(i int) *replica.Replica {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.Members[i].R
}

// Up lists the indexes of running members.
func (c *Cluster) Up() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	var up []int
	for i, m := range c.Members {
		if m.R != nil {
			up = append(up, i)
		}
	}
	return up
}

// Leader returns the index of the running member that leads, or -1.
func (c *Cluster) Leader() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, m := range c.Members {
		if m.R != nil && m.R.Node.IsLeader() {
			return i
		}
	}
	return -1
}

// WaitLeader waits until a running member leads and returns its index.
func (c *Cluster) WaitLeader(timeout time.Duration) int {
	c.t.Helper()
	var idx int
	WaitFor(c.t, timeout, "a leader", func() bool {
		idx = c.Leader()
		return idx >= 0
	})
	return idx
}

// Conn returns a gRPC connection to member i's API (kept across restarts).
func (c *Cluster) Conn(i int) *grpc.ClientConn {
	c.mu.Lock()
	defer c.mu.Unlock()
	addr := c.Members[i].Cfg.GRPC.Addr
	if cc, ok := c.conns[addr]; ok {
		return cc
	}
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		c.t.Fatalf("dial %s: %v", addr, err)
	}
	c.conns[addr] = cc
	return cc
}

// Cases returns a CaseService client of member i.
func (c *Cluster) Cases(i int) pb.CaseServiceClient { return pb.NewCaseServiceClient(c.Conn(i)) }

// ClusterAdmin returns a ClusterService client of member i.
func (c *Cluster) ClusterAdmin(i int) pb.ClusterServiceClient {
	return pb.NewClusterServiceClient(c.Conn(i))
}

// HTTPBase is member i's REST base URL.
func (c *Cluster) HTTPBase(i int) string { return "http://" + c.Members[i].Cfg.HTTP.Addr }

// WaitFor polls cond until it holds or timeout passes (then fails the test).
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// InternalTLS makes a development CA with a certificate for group (and,
// for tests that need impostors, for each name in others) in a temporary
// directory and returns the option that runs every member's internal plane
// (write forwarding and raft) over mutual TLS with group's certificate.
// node.group is set to group. The directory holds the CA's and every
// name's files (certs.NodeFiles).
func InternalTLS(t testing.TB, group string, others ...string) (Option, string) {
	t.Helper()
	dir := t.TempDir()
	if err := certs.GenerateDev(dir, append([]string{group}, others...), certs.DevOptions{}); err != nil {
		t.Fatalf("internal certificates: %v", err)
	}
	f := certs.NodeFiles(dir, group)
	return func(c *config.Config) {
		c.Node.Group = group
		c.Internal.Insecure = false
		c.Internal.TLS = config.TLSConfig{CA: f.CA, Cert: f.Cert, Key: f.Key}
	}, dir
}

// testLogger discards the replicas' logs unless CITYHUB_TEST_LOG is set
// (to debug, info, warn or error: that level and above go to stderr), for
// finding out what a group did in a test that failed.
func testLogger() *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(os.Getenv("CITYHUB_TEST_LOG"))); err != nil || os.Getenv("CITYHUB_TEST_LOG") == "" {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}
