package fsm

import (
	"fmt"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/store"
)

// importCases creates cases from validated legacy rows (not yet built).
func importCases(_ *store.Tx, _ *pb.Command, _ *pb.ImportCases, _ *fedView, _ uint64) (*Result, error) {
	return &Result{Err: fmt.Errorf("%w: import is not implemented yet", ErrBadCommand)}, nil
}
