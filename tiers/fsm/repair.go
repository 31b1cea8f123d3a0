package fsm

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/cityhub/cityhub/federation/protocol"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/evaluation"
	"github.com/cityhub/cityhub/tiers/store"
)

// repair applies anti-entropy repairs from neighbour r.From (see
// federation/DESIGN.md, "Anti-entropy"): authoritative copies found by
// comparing this node with the neighbour, and stray mirrors to drop.
//
//   - A copy is written when the local one is absent or differs, unless
//     this node holds the local copy and it is newer (holder epoch, then
//     version): a held case is never rolled back. It goes through putCase,
//     like a delivery, so indexes, digest, state counts and evaluation
//     counters follow.
//   - A written copy that is newer than what this node had travels on
//     exactly like a delivered one (protocol.NextHops, never back to
//     r.From): a repair that overtakes a delivery still in flight makes
//     that delivery "not newer", and it would otherwise stop here. A copy
//     that only replaces a damaged one at the same version changes
//     nothing for the neighbours and stays local. Links keep their
//     sequence numbers, marks and acknowledgements: a repair adds entries
//     to an outbox the normal way and touches no high-water mark.
//   - A drop deletes a stray mirror, never a case this node holds.
//
// Entries that are malformed, refused or change nothing are skipped and
// counted in Result.Skipped; the command as a whole is refused only when
// it does not come from a neighbour.
func repair(tx *store.Tx, cmd *pb.Command, r *pb.RepairCases, fv *fedView, fc *fedCache) (*Result, error) {
	if fv == nil {
		return &Result{Err: ErrNotFederated}, nil
	}
	if !fv.topo.IsNeighbour(fv.self, r.GetFrom()) {
		return &Result{Err: fmt.Errorf("%w: repair from %q, which is not a neighbour of %q", ErrBadCommand, r.GetFrom(), fv.self)}, nil
	}
	res := &Result{}
	for _, c := range r.Cases {
		ok, err := repairCase(tx, cmd, r.From, c, fv)
		if err != nil {
			return nil, err
		}
		if !ok {
			res.Skipped++
		}
	}
	for _, id := range r.Drop {
		ok, err := dropMirror(tx, cmd, id, fv)
		if err != nil {
			return nil, err
		}
		if !ok {
			res.Skipped++
		}
	}
	if r.CaughtUp {
		// A restored group ran anti-entropy with r.From (restore.go).
		return res, caughtUp(tx, r.From, fv, fc)
	}
	return res, nil
}

// repairable rejects copies that could never have been written by the
// federation: no id, no holder or epoch, no version, or key fields too long
// for the store.
func repairable(c *pb.Case) bool {
	return c != nil && validIDPart(c.GetId()) && c.GetHolder() != "" && c.GetHolderEpoch() > 0 && c.GetVersion() > 0 &&
		len(c.GetGridCode()) <= maxKeyField && len(c.GetOwnerUnit()) <= maxKeyField && len(c.GetLegacyId()) <= maxKeyField
}

func repairCase(tx *store.Tx, cmd *pb.Command, from string, c *pb.Case, fv *fedView) (bool, error) {
	if !repairable(c) {
		return false, nil
	}
	old, err := tx.GetCase(c.Id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		old = nil
	case err != nil:
		return false, err
	}
	c.AllowedActions = nil
	if old != nil {
		if old.GetHolder() == fv.self && protocol.Newer(old, c) {
			return false, nil // never roll back a case this node holds
		}
		if proto.Equal(old, c) {
			return false, nil
		}
	}
	if err := putCase(tx, old, c, cmd.LocalOffsetS); err != nil {
		return false, err
	}
	if err := bumpOwnSeq(tx, c, fv); err != nil {
		return false, err
	}
	if !protocol.Newer(c, old) {
		return true, nil
	}
	return true, fv.emit(tx, from, from, c, cmd.StampedUnixMs)
}

func dropMirror(tx *store.Tx, cmd *pb.Command, id string, fv *fedView) (bool, error) {
	if !validIDPart(id) {
		return false, nil
	}
	old, err := tx.GetCase(id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return false, nil
	case err != nil:
		return false, err
	}
	if old.GetHolder() == fv.self {
		return false, nil // never drop a case this node holds
	}
	// The state indicators of the copy leave the evaluation counters with
	// it; the events it brought stay counted where they happened.
	if err := evaluation.Observe(tx, old, nil, cmd.LocalOffsetS); err != nil {
		return false, err
	}
	return true, tx.DeleteCase(id)
}
