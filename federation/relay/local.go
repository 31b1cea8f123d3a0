// Package relay moves a node's outbox across its links: the sending side
// (Relay: one goroutine per neighbour, active on the group's leader only)
// and the receiving side (Server: the FederationService that applies a
// batch through the receiver's own Raft log). See federation/DESIGN.md for
// the protocol and its failure cases.
package relay

import (
	"context"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/fsm"
	"github.com/cityhub/cityhub/tiers/store"
)

// Local is what the relay needs of the replica it runs in.
type Local interface {
	IsLeader() bool
	// ApplyLocal commits a command through raft on the leader.
	ApplyLocal(ctx context.Context, cmd *pb.Command) (*fsm.Result, error)
	// Applied is closed when the state machine next applies entries.
	Applied() <-chan struct{}
	Store() *store.Store
}
