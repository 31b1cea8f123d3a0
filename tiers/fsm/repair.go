package fsm

import (
	"fmt"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/store"
)

// repair applies anti-entropy repairs from a neighbour (not yet built).
func repair(_ *store.Tx, _ *pb.Command, _ *pb.RepairCases, _ *fedView) (*Result, error) {
	return &Result{Err: fmt.Errorf("%w: repair is not implemented yet", ErrBadCommand)}, nil
}
