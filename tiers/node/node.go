package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/client"
	"github.com/cityhub/cityhub/tiers/diskspace"
	"github.com/cityhub/cityhub/tiers/fsm"
	"github.com/cityhub/cityhub/tiers/raftlog"
	"github.com/cityhub/cityhub/tiers/store"
)

// Peer is a static member of the group, from configuration.
type Peer struct {
	ID, RaftAddr, GRPCAddr, HTTPAddr string
	InternalAddr                     string // its internal listener (forwarding); may be empty
}

// Clock tells the leader the time it stamps into commands.
type Clock interface{ Now() time.Time }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// Stamper writes the deadlines of a command computed at now; read gives it
// the case an action applies to, as this replica's store holds it.
// tiers/deadline.Policy implements it.
type Stamper interface {
	Stamp(now time.Time, cmd *pb.Command, read func(id string) (*pb.Case, error))
}

// Forwarder sends a command to the leader's internal listener; the api
// package implements it over gRPC (mutual TLS between the group's replicas).
type Forwarder interface {
	// Propose hands a client's write (a command of a type a client may
	// cause: fsm.ClientMayCause) to the leader and returns the leader's
	// state machine's result. A refusal is the error.
	Propose(ctx context.Context, leaderInternalAddr string, cmd *pb.Command) (*fsm.Result, error)
	// Register asks the leader to record this member's addresses
	// (RegisterMember on the leader's side).
	Register(ctx context.Context, leaderInternalAddr string, reg *pb.RegisterNode) error
}

// Config is what a node needs to run.
type Config struct {
	ID           string
	DataDir      string
	RaftAddr     string // bind address of the raft transport
	Advertise    string // address peers use; defaults to RaftAddr
	GRPCAddr     string // this node's API address, registered for forwarded reads
	HTTPAddr     string
	InternalAddr string // this node's internal listener, registered for forwarding
	Bootstrap    bool
	Peers        []Peer
	Jurisdiction string // case id prefix
	Tier         string // city, district, street or community
	Location     *time.Location

	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration
	SnapshotInterval   time.Duration
	SnapshotThreshold  uint64
	// MarkerSnapshotCases: a store holding at least this many cases
	// takes marker snapshots (fsm.SetMarkerSnapshots); 0: never.
	MarkerSnapshotCases uint64
	TrailingLogs        uint64
	MaxAppendEntries    int
	ApplyTimeout        time.Duration

	Clock Clock // default: the system clock
	// LogVersion is the newest log format this replica applies and
	// registers (RegisterNode) for the version gate: 0 is this binary's
	// (fsm.LogVersion). A test of a mixed-version group sets it lower to
	// stand for a replica of an older release.
	LogVersion uint32
	// Stamper, when set, stamps what the leader derives into commands:
	// working-time deadlines, recurrence links.
	Stamper   Stamper
	Forwarder Forwarder // nil: followers answer ErrNotLeader
	Logger    *slog.Logger
	// RaftLogLevel is the least level of raft's own records (elections,
	// snapshots, replication errors) passed to Logger, as component=raft;
	// the zero value is info.
	RaftLogLevel slog.Level
	// LogEngine selects the raft log implementation (default raft-wal).
	LogEngine raftlog.Engine
	// Feed bounds the change log the state machine keeps (feed.window,
	// feed.max_age).
	Feed store.FeedOptions
	// RaftTLS, when set, runs the raft transport over mutual TLS with the
	// group's identity; nil is plain TCP (loopback development only).
	RaftTLS *RaftTLS
	// RaftSegmentSize is the size of raft-wal's segment files (0: 64 MiB).
	RaftSegmentSize int
	// SkipVerify leaves out the full check of the state store's records at
	// start (store.Verify); its files are still checked.
	SkipVerify bool
	// Rejoin moves the replica's data (state, raft log, snapshots) aside
	// before it starts and skips bootstrapping: the group's leader adds it
	// back and sends it a snapshot (see Rejoin).
	Rejoin bool
	// DiskReserve (bytes) and DiskReservePercent (of the filesystem's
	// size, the larger counts) are the free space of the data directory
	// below which the leader proposes nothing (disk.go); 0 and 0: no
	// reserve. DiskCheckInterval is how often it is read (default 1s).
	DiskReserve        uint64
	DiskReservePercent float64
	DiskCheckInterval  time.Duration
	// JoinReports is the most reports the leader joins into one log entry
	// when they wait at the same moment (join.go); 0 or 1: none.
	JoinReports int
}

// Node is one running replica.
type Node struct {
	cfg   Config
	log   *slog.Logger
	raft  *raft.Raft
	fsm   *fsm.FSM
	store *store.Store
	logs  raftlog.Log
	trans *gatedTransport
	disk  *diskspace.Monitor // the data directory's free space (disk.go)

	appliedMu   sync.Mutex
	appliedCond *sync.Cond
	appliedCh   chan struct{} // closed and replaced after every applied chunk

	// barrier is the last raft barrier this replica completed as leader
	// (settle.go): every entry up to it is applied.
	barrier    atomic.Pointer[position]
	settleKick chan struct{}
	// lead runs the leader jobs for each settled term (leader.go).
	lead        leadership
	snapMetrics *snapshotMetrics
	applyTimer  *applyTimer
	// joiner joins the reports that wait at the same moment into one
	// entry (join.go); nil: every report is an entry of its own.
	joiner *joiner
	// versions: the registered replicas' log versions last read
	// (version.go).
	versions atomic.Pointer[memberVersionsRead]
	// logCache serves the raft log (readiness reads the committed entry).
	logCache raft.LogStore
	// heartbeat is raft's heartbeat timeout: a follower that has not heard
	// from the leader for that long is not ready.
	heartbeat time.Duration

	closeOnce sync.Once
	done      chan struct{}
	// registering: registerSelf, which Shutdown waits for.
	registering sync.WaitGroup

	// Start-up (startup.go): raft's logger, the time stamp of what is
	// moved aside, the files of a store kept before badger opened it.
	hclog          hclog.Logger
	asideStamp     string
	keptBeforeOpen string
}

// Open starts the replica: it opens the stores, starts raft and, when
// configured and no state exists yet, bootstraps the group.
func Open(cfg Config) (*Node, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Clock == nil {
		cfg.Clock = systemClock{}
	}
	if cfg.Location == nil {
		cfg.Location = time.UTC
	}
	if cfg.Advertise == "" {
		cfg.Advertise = cfg.RaftAddr
	}
	if cfg.ApplyTimeout == 0 {
		cfg.ApplyTimeout = 10 * time.Second
	}
	n := &Node{cfg: cfg, log: cfg.Logger.With("component", "node"), done: make(chan struct{}), settleKick: make(chan struct{}, 1)}
	n.appliedCond = sync.NewCond(&n.appliedMu)
	n.lead.kick = make(chan struct{}, 1)
	n.appliedCh = make(chan struct{})
	// Before open: its goroutines may propose (registration).
	n.disk = newDiskMonitor(cfg)
	if err := n.open(); err != nil {
		n.closeStores()
		return nil, err
	}
	go n.disk.Run(n.done)
	go n.collectValueLog()
	if cfg.JoinReports > 1 {
		n.joiner = newJoiner(cfg.JoinReports, n.done,
			func(cmd *pb.Command) (*fsm.Result, error) { return n.commit(cmd, n.cfg.ApplyTimeout) },
			func(cmd *pb.Command) bool { return n.versionGate(cmd) == nil })
		go n.joiner.run()
	}
	return n, nil
}

// Layout is where a replica keeps its state under its data directory: the
// state store, the raft log and stable store, raft's snapshots.
type Layout struct{ State, Raft, Snapshots string }

// LayoutOf is the layout of data directory dir.
func LayoutOf(dir string) Layout {
	return Layout{State: filepath.Join(dir, stateDir), Raft: filepath.Join(dir, raftDir), Snapshots: filepath.Join(dir, snapDir)}
}

// SnapshotsRetained is how many raft snapshots a replica keeps.
const SnapshotsRetained = 2

func (n *Node) open() error {
	cfg := n.cfg
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	hl := newSlogHCLog(cfg.Logger, cfg.RaftLogLevel)
	n.hclog = hl
	n.asideStamp = time.Now().UTC().Format("20060102T150405Z")
	if cfg.Rejoin {
		if err := n.moveAllAside(); err != nil {
			return err
		}
		cfg.Bootstrap = false
	}
	o, err := n.checkAndOpen()
	if err != nil {
		return err
	}
	if n.fsm, err = fsm.New(n.store, cfg.Logger.With("component", "fsm")); err != nil {
		return err
	}
	n.fsm.OnApply(func(uint64) { n.notifyApplied() })
	n.applyTimer = newApplyTimer()
	n.fsm.ObserveEntries(n.applyTimer)
	// Recent entries are served from memory to the replication and FSM
	// goroutines instead of being read back from disk. The cache is also
	// what lets the leader send a batch while it writes it: raft takes
	// that path only with a LogCache (tiers/hashicorp-raft/CITYHUB.md).
	logCache, err := raft.NewLogCache(512, n.logs)
	if err != nil {
		return fmt.Errorf("raft log cache: %w", err)
	}
	n.logCache = logCache
	installRaftMetrics() // before raft starts reporting
	n.snapMetrics = newSnapshotMetrics()
	n.fsm.SetMarkerSnapshots(cfg.MarkerSnapshotCases)
	snaps := &markedSnapshots{SnapshotStore: &countingSnapshots{SnapshotStore: o.snaps, m: n.snapMetrics},
		st: n.store, dir: filepath.Join(cfg.DataDir, snapDir), log: n.log}
	adv, err := net.ResolveTCPAddr("tcp", cfg.Advertise)
	if err != nil {
		return fmt.Errorf("raft advertise address %q: %w", cfg.Advertise, err)
	}
	trans, err := newTransport(cfg, adv, hl)
	if err != nil {
		return fmt.Errorf("raft transport on %s: %w", cfg.RaftAddr, err)
	}
	n.trans = &gatedTransport{NetworkTransport: trans}

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.ID)
	rc.Logger = hl
	setDur(&rc.HeartbeatTimeout, cfg.HeartbeatTimeout)
	setDur(&rc.ElectionTimeout, cfg.ElectionTimeout)
	setDur(&rc.LeaderLeaseTimeout, cfg.LeaderLeaseTimeout)
	setDur(&rc.CommitTimeout, cfg.CommitTimeout)
	setDur(&rc.SnapshotInterval, cfg.SnapshotInterval)
	if cfg.SnapshotThreshold > 0 {
		rc.SnapshotThreshold = cfg.SnapshotThreshold
	}
	if cfg.TrailingLogs > 0 {
		rc.TrailingLogs = cfg.TrailingLogs
	}
	if cfg.MaxAppendEntries > 0 {
		rc.MaxAppendEntries = cfg.MaxAppendEntries
	}
	// Group commit: concurrent proposals queue in a buffered channel and
	// the leader writes each queue-full to the log with one fsync.
	rc.BatchApplyCh = true
	// The FSM's state is durable in badger with its applied index, so
	// raft must not overwrite it with an older snapshot at start; it
	// replays the log and the FSM skips what it already holds.
	rc.NoSnapshotRestoreOnStart = true
	n.heartbeat = rc.HeartbeatTimeout

	if n.raft, err = raft.NewRaft(rc, n.fsm, logCache, n.logs, snaps, n.trans); err != nil {
		return fmt.Errorf("start raft: %w", err)
	}
	if cfg.Bootstrap {
		if err := n.bootstrap(snaps); err != nil {
			return err
		}
	}
	go n.settleLoop()
	go n.leaderLoop()
	n.registering.Add(1)
	go func() {
		defer n.registering.Done()
		n.registerSelf()
	}()
	return nil
}

func setDur(dst *time.Duration, v time.Duration) {
	if v > 0 {
		*dst = v
	}
}

func (n *Node) bootstrap(snaps raft.SnapshotStore) error {
	has, err := raft.HasExistingState(n.logs, n.logs, snaps)
	if err != nil {
		return fmt.Errorf("check raft state: %w", err)
	}
	if has {
		return nil
	}
	servers := []raft.Server{{ID: raft.ServerID(n.cfg.ID), Address: raft.ServerAddress(n.cfg.Advertise), Suffrage: raft.Voter}}
	if len(n.cfg.Peers) > 0 {
		servers = servers[:0]
		for _, p := range n.cfg.Peers {
			servers = append(servers, raft.Server{ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.RaftAddr), Suffrage: raft.Voter})
		}
	}
	n.log.Info("bootstrapping raft group", "servers", len(servers))
	err = n.raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error()
	if err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
		return fmt.Errorf("bootstrap: %w", err)
	}
	return nil
}

// registerSelf records this node's API addresses and log version in the
// replicated registry, so followers can find the leader's API and the
// leader knows what this binary applies. It retries until this replica's
// store holds the registration as sent, or the node shuts down: a leader of
// an older release (a rolling upgrade) accepts the registration but drops
// the log version, so a registration is done only once it reads back
// whole; asking again costs no log entry while the old leader leads (the
// same request id is a replay) and lands once a new one does.
func (n *Node) registerSelf() {
	reg := &pb.RegisterNode{NodeId: n.cfg.ID, RaftAddr: n.cfg.Advertise, GrpcAddr: n.cfg.GRPCAddr, HttpAddr: n.cfg.HTTPAddr, InternalAddr: n.cfg.InternalAddr, LogVersion: n.logVersion()}
	failed, accepted := registerRetry.Backoff(), registerAccepted.Backoff()
	// Shutdown ends a registration under way, and waits for this loop
	// before it closes the stores the loop reads.
	base, stop := context.WithCancel(context.Background())
	defer stop()
	go func() {
		select {
		case <-n.done:
			stop()
		case <-base.Done():
		}
	}()
	for {
		if base.Err() != nil {
			return
		}
		if known, err := n.registered(reg); err == nil && known {
			return
		}
		ctx, cancel := context.WithTimeout(base, 5*time.Second)
		err := n.register(ctx, reg)
		cancel()
		// Accepted: wait for it to apply here, and look again less often
		// while it does not read back whole.
		next := accepted
		if err != nil {
			next = failed
		}
		select {
		case <-n.done:
			return
		case <-time.After(next.Next()):
		}
	}
}

// How registerSelf waits, on the one retry policy (tiers/client): after a
// failed registration 50 ms doubling to 250 ms (the leader is moving);
// after an accepted one that does not read back whole yet 250 ms doubling
// to 5 s (it is being applied, or an older leader dropped a field).
var (
	registerRetry    = client.Policy{Initial: 50 * time.Millisecond, Max: 250 * time.Millisecond}
	registerAccepted = client.Policy{Initial: 250 * time.Millisecond, Max: 5 * time.Second}
)

func (n *Node) registered(reg *pb.RegisterNode) (bool, error) {
	nodes, err := n.store.Nodes()
	if err != nil {
		return false, err
	}
	for _, ni := range nodes {
		if ni.NodeId == reg.NodeId {
			return proto.Equal(ni, nodeInfo(reg)), nil
		}
	}
	return false, nil
}

// Applied returns a channel that is closed when the state machine next
// applies entries: watchers (the federation relay) wait on it instead of
// polling.
func (n *Node) Applied() <-chan struct{} {
	n.appliedMu.Lock()
	defer n.appliedMu.Unlock()
	return n.appliedCh
}

// Done is closed when the node shuts down.
func (n *Node) Done() <-chan struct{} { return n.done }

// Now is the time the leader stamps into commands (its clock).
func (n *Node) Now() time.Time { return n.cfg.Clock.Now() }

// ID is the node's raft server id.
func (n *Node) ID() string { return n.cfg.ID }

// Jurisdiction is the case id prefix of this node.
func (n *Node) Jurisdiction() string { return n.cfg.Jurisdiction }

// Store is the node's state, for reads.
func (n *Node) Store() *store.Store { return n.store }

// Raft exposes the raft instance (status, metrics, tests).
func (n *Node) Raft() *raft.Raft { return n.raft }

// LogEntry reads entry i of this replica's raft log (diagnostics and
// tests: which command moved the log).
func (n *Node) LogEntry(i uint64) (*raft.Log, error) {
	var l raft.Log
	if err := n.logs.GetLog(i, &l); err != nil {
		return nil, fmt.Errorf("raft log entry %d: %w", i, err)
	}
	return &l, nil
}

// AppliedIndex is the last log index this replica has applied: the FSM's
// last entry, or a later barrier of the leader's (settle.go) when every
// entry up to it is applied.
func (n *Node) AppliedIndex() uint64 { return n.appliedPosition().index }

// StateIndex is the last log index the state store holds (the FSM's last
// entry, what a snapshot of the store records).
func (n *Node) StateIndex() uint64 { return n.fsm.AppliedIndex() }

// IsLeader reports whether this replica currently leads.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// Leader returns the leader's id and its gRPC address ("" when unknown).
func (n *Node) Leader() (id, grpcAddr string) {
	addr, sid := n.raft.LeaderWithID()
	if sid == "" {
		return "", ""
	}
	return string(sid), n.grpcAddrOf(string(sid), string(addr))
}

// grpcAddrOf finds a member's API address: the replicated registry first,
// then the static peers of the configuration.
func (n *Node) grpcAddrOf(id, raftAddr string) string {
	if id == n.cfg.ID {
		return n.cfg.GRPCAddr
	}
	if nodes, err := n.store.Nodes(); err == nil {
		for _, ni := range nodes {
			if ni.NodeId == id && ni.GrpcAddr != "" {
				return ni.GrpcAddr
			}
		}
	}
	for _, p := range n.cfg.Peers {
		if p.ID == id || (raftAddr != "" && p.RaftAddr == raftAddr) {
			return p.GRPCAddr
		}
	}
	return ""
}

// WaitForLeader blocks until the group has a leader or ctx ends.
func (n *Node) WaitForLeader(ctx context.Context) (string, error) {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		if _, id := n.raft.LeaderWithID(); id != "" {
			return string(id), nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("wait for leader: %w", ErrNoLeader)
		case <-t.C:
		}
	}
}

// Shutdown stops raft and closes the stores.
func (n *Node) Shutdown() error {
	var err error
	n.closeOnce.Do(func() {
		// The leader jobs use raft and the stores: they end first.
		n.StopLeaderJobs()
		close(n.done)
		if n.raft != nil {
			err = n.raft.Shutdown().Error()
		}
		if n.trans != nil {
			n.trans.closeHeartbeats() // before the stores close
			_ = n.trans.Close()
		}
		n.appliedMu.Lock()
		n.appliedCond.Broadcast()
		n.appliedMu.Unlock()
		// registerSelf reads the store: it ends first (a read of a
		// closed badger panics).
		n.registering.Wait()
		if cerr := n.closeStores(); err == nil {
			err = cerr
		}
	})
	return err
}

func (n *Node) closeStores() error {
	var errs []error
	if n.logs != nil {
		errs = append(errs, n.logs.Close())
	}
	if n.store != nil {
		errs = append(errs, n.store.Close())
	}
	return errors.Join(errs...)
}
