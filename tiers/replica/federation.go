package replica

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/cityhub/cityhub/config"
	"github.com/cityhub/cityhub/federation/antientropy"
	"github.com/cityhub/cityhub/federation/certs"
	"github.com/cityhub/cityhub/federation/relay"
	"github.com/cityhub/cityhub/federation/topology"
	"github.com/cityhub/cityhub/federation/wire"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/diskspace"
	"github.com/cityhub/cityhub/tiers/evidence"
	"github.com/cityhub/cityhub/tiers/node"
	"github.com/cityhub/cityhub/tiers/store"
)

// errTopologyPending is what writes get until the topology is applied.
var errTopologyPending = errors.New("the configured topology is not yet in the state machine")

// federation runs a replica's part of the federation: the listener its
// parent and children call, the relay of its outbox, and the loop that
// puts the configured topology into the state machine.
type federation struct {
	self  string
	tier  topology.Tier
	topo  *topology.Topology
	node  *node.Node
	relay *relay.Relay
	srv   *grpc.Server
	lis   net.Listener
	log   *slog.Logger

	// antiEntropy compares this node with its neighbours (antientropy.go).
	antiEntropy *antientropy.Runner
	// dial gives the options of a connection to a neighbour; evidence
	// serves and fetches evidence over the links (evidence.go).
	dial     dialFunc
	evidence *evidenceLinks

	mu    sync.Mutex
	ready bool

	stop chan struct{}
	wg   sync.WaitGroup
}

// dialFunc builds per-neighbour dial options: mTLS that expects the
// neighbour's node name in its certificate, or plain text.
type dialFunc func(peer string) []grpc.DialOption

func startFederation(cfg config.Config, n *node.Node, ev *evidence.Service, logger *slog.Logger, dialer func(context.Context, string) (net.Conn, error)) (*federation, error) {
	topo, err := cfg.LoadTopology()
	if err != nil {
		return nil, fmt.Errorf("federation.topology: %w", err)
	}
	self, _ := topo.Node(cfg.Federation.Node)
	var (
		srvOpts  []grpc.ServerOption
		dial     dialFunc
		identity wire.PeerIdentity
	)
	if cfg.Federation.Insecure {
		dial = func(string) []grpc.DialOption {
			return []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
		}
	} else {
		files := certs.Files{CA: cfg.Federation.TLS.CA, Cert: cfg.Federation.TLS.Cert, Key: cfg.Federation.TLS.Key}
		sc, err := files.ServerConfig()
		if err != nil {
			return nil, fmt.Errorf("federation.tls: %w", err)
		}
		cc, err := files.ClientConfig()
		if err != nil {
			return nil, fmt.Errorf("federation.tls: %w", err)
		}
		srvOpts = append(srvOpts, grpc.Creds(credentials.NewTLS(sc)))
		identity = certs.PeerName
		dial = func(peer string) []grpc.DialOption {
			c := cc.Clone()
			c.ServerName = peer // the neighbour must prove it is that node
			return []grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(c))}
		}
	}
	if dialer != nil {
		base := dial
		dial = func(peer string) []grpc.DialOption { return append(base(peer), grpc.WithContextDialer(dialer)) }
	}
	lis, err := net.Listen("tcp", cfg.Federation.Addr)
	if err != nil {
		return nil, fmt.Errorf("federation.addr: %w", err)
	}
	f := &federation{
		self: self.Name, tier: self.Tier, topo: topo, node: n, lis: lis, stop: make(chan struct{}),
		log: logger.With("component", "federation", "node", self.Name), dial: dial,
	}
	f.evidence = &evidenceLinks{f: f, svc: ev, peers: map[string]*wire.Peer{}}
	srvOpts = append(srvOpts, grpc.MaxRecvMsgSize(8<<20))
	f.srv = grpc.NewServer(srvOpts...)
	rs := wire.NewServer(self.Name, topo, n, identity, logger)
	if f.antiEntropy, err = newAntiEntropy(cfg, n, topo, self.Name, dial, rs, logger); err != nil {
		lis.Close()
		return nil, err
	}
	rs.SetEvidence(f.evidence)
	pb.RegisterFederationServiceServer(f.srv, rs)
	f.relay, err = relay.New(relay.Options{
		Self: self.Name, Topology: topo, Local: n, Dial: dial,
		BatchSize: cfg.Federation.BatchSize, BatchBytes: cfg.Federation.BatchBytes,
		RetryMin: cfg.Federation.RetryMin, RetryMax: cfg.Federation.RetryMax, ReconnectMax: cfg.Federation.ReconnectMax,
		Logger: logger,
		// A neighbour's mark that skipped entries (a restore on either
		// side): compare with it now rather than at the next period.
		OnJumped: f.antiEntropy.Kick,
	})
	if err != nil {
		lis.Close()
		return nil, err
	}
	go func() {
		if err := f.srv.Serve(lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			f.log.Error("federation server stopped", "error", err)
		}
	}()
	n.AddLeaderJob("relay", f.relay.Lead)
	n.AddLeaderJob("antientropy", f.antiEntropy.Lead)
	n.AddLeaderJob("topology", f.leadTopology)
	f.wg.Add(1)
	go func() { defer f.wg.Done(); f.watchTopology() }()
	return f, nil
}

// watchTopology marks the replica ready once its own store holds the
// configured topology (leadTopology proposes it).
func (f *federation) watchTopology() {
	want := f.topo.Proto(f.self)
	for {
		applied := f.node.Applied()
		stored, err := f.node.Store().Topology()
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			f.log.Error("read stored topology", "error", err)
		}
		f.mu.Lock()
		f.ready = err == nil && proto.Equal(stored, want)
		f.mu.Unlock()
		select {
		case <-f.stop:
			return
		case <-applied:
		}
	}
}

// leadTopology, a leader job, puts the configured topology into the state
// machine while the stored one differs.
func (f *federation) leadTopology(ctx context.Context) {
	want := f.topo.Proto(f.self)
	for {
		applied := f.node.Applied()
		stored, err := f.node.Store().Topology()
		if err == nil && proto.Equal(stored, want) {
			select {
			case <-ctx.Done():
				return
			case <-applied:
				continue
			}
		}
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err = f.node.ApplyLocal(actx, &pb.Command{Body: &pb.Command_SetTopology{SetTopology: &pb.SetTopology{Topology: want}}})
		cancel()
		switch {
		case err == nil:
			f.log.Info("topology applied", "nodes", len(want.Nodes))
			continue
		case ctx.Err() != nil:
			return
		case diskspace.IsRefusal(err):
			f.log.Debug("apply topology: paused below the disk reserve", "error", err)
		default:
			f.log.Warn("apply topology", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// Ready implements api.Federation.
func (f *federation) Ready() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.ready {
		return errTopologyPending
	}
	return nil
}

// Status implements api.Federation.
func (f *federation) Status() (*pb.FederationStatusResponse, error) {
	links, err := f.relay.Status()
	if err != nil {
		return nil, err
	}
	self, _ := f.topo.Node(f.self)
	resp := &pb.FederationStatusResponse{Node: f.self, Tier: f.tier.String(), Parent: self.Parent, Links: links}
	rs, err := f.node.Store().RestoreState()
	if err != nil {
		return nil, err
	}
	if rs != nil {
		resp.Incarnation, resp.CatchingUp = rs.Incarnation, rs.CatchingUp
		if rs.CatchingUp {
			for _, n := range f.topo.Neighbours(f.self) {
				if !slices.Contains(rs.CaughtUp, n) {
					resp.WaitingFor = append(resp.WaitingFor, n)
				}
			}
		}
	}
	return resp, nil
}

// Addr is the federation listener's address.
func (f *federation) Addr() string { return f.lis.Addr().String() }

// close ends the federation's server and connections; the replica has
// stopped its leader jobs (relay, anti-entropy, topology) before.
func (f *federation) close(graceful bool) {
	close(f.stop)
	f.antiEntropy.Close()
	f.relay.Close()
	f.evidence.close()
	if graceful {
		f.srv.GracefulStop()
	} else {
		f.srv.Stop()
	}
	f.wg.Wait()
}
