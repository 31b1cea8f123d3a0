package api

import (
	"context"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/fsm"
	"github.com/cityhub/cityhub/tiers/store"
)

// Replica is what the API needs of a tier node (node.Node implements it).
type Replica interface {
	ID() string
	// Propose commits a client's command, on the leader or through it,
	// and returns the state machine's result (node.Node.Propose).
	Propose(ctx context.Context, cmd *pb.Command) (*fsm.Result, error)
	// ApplyLocal commits cmd on this replica, which must lead (a
	// forwarded command is never forwarded again).
	ApplyLocal(ctx context.Context, cmd *pb.Command) (*fsm.Result, error)
	ReadBarrier(ctx context.Context, level pb.Consistency) error
	// WaitApplied blocks until this replica's state holds log index i.
	WaitApplied(ctx context.Context, i uint64) error
	Store() *store.Store
	Leader() (id, grpcAddr string)
	IsLeader() bool
	Status() *pb.ClusterStatus
	Join(ctx context.Context, req *pb.JoinRequest) error
	Remove(ctx context.Context, id string) error
	TransferLeadership(ctx context.Context, id string) (string, error)
}
