package replica

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cityhub/cityhub/config"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// rejoinable checks that a replica can ask its group to take it back: the
// other members' internal listeners must be known (raft.peers).
func rejoinable(cfg config.Config) error {
	for _, p := range cfg.Raft.Peers {
		if p.ID != cfg.Node.ID && p.InternalAddr != "" {
			return nil
		}
	}
	return errors.New("rejoin: raft.peers names no other member with an internal_addr to ask (a single replica cannot rejoin: restore its data directory from a backup)")
}

// rejoin asks each other member in raft.peers, on its internal listener
// (mutual TLS with the group's certificate: no user credentials are
// needed), to take this replica back, until the leader has done so or ctx
// ends. The leader removes the member and adds it again; raft then sends
// this replica a snapshot and the entries after it.
func (r *Replica) rejoin(ctx context.Context) error {
	cfg := r.Config
	req := &pb.JoinRequest{
		NodeId: cfg.Node.ID, RaftAddr: cfg.Raft.Advertise,
		GrpcAddr: r.API.GRPCAddr(), HttpAddr: r.API.HTTPAddr(),
		InternalAddr: r.Node.InternalAddr(),
	}
	if req.RaftAddr == "" {
		req.RaftAddr = cfg.Raft.Addr
	}
	var last error
	for attempt := 0; ; attempt++ {
		for _, p := range cfg.Raft.Peers {
			if p.ID == cfg.Node.ID || p.InternalAddr == "" {
				continue
			}
			cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			resp, err := r.peers.Rejoin(cctx, p.InternalAddr, req)
			cancel()
			if err == nil {
				r.log.Warn("rejoined the group: the leader added this replica back and sends it a snapshot",
					"via", p.ID, "leader", resp.GetStatus().GetLeaderId())
				return nil
			}
			last = fmt.Errorf("%s (%s): %w", p.ID, p.InternalAddr, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("rejoin: no member took this replica back: %w (last answer: %w)", ctx.Err(), last)
		case <-time.After(time.Duration(min(attempt+1, 10)) * 200 * time.Millisecond):
		}
	}
}
