package fsm

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/store"
)

// A group restored from a backup (tiers/backup writes store.RestoreState
// into every replica's store) starts a new life of the node: the cases it
// held and changed, the case ids it gave out and the entries it numbered
// after the backup are gone here but not from its neighbours. See
// federation/DESIGN.md, "After a restore".
//
//   - The first stamped command the restored group applies sets the
//     node's incarnation to that command's stamped time, a value no
//     earlier life used (every replica applies the same command, so
//     every replica records the same value). The relay sends it with
//     every batch; a neighbour that sees a new incarnation restarts the
//     link's high-water mark at the sender's acknowledged mark.
//   - Until the group's leader has run anti-entropy with every neighbour
//     (RepairCases with caught_up), the writes that make versions of the
//     cases it holds, or allocate case ids, are refused (ErrCatchingUp):
//     an action on a copy older than the one its neighbours hold would
//     make a version the newer-copy rule cannot order, and a report could
//     take an id given out after the backup.

// ErrCatchingUp refuses a write on a group restored from a backup that
// has not yet caught up with its neighbours (retry later).
var ErrCatchingUp = errors.New("restored from a backup: catching up with the federation")

// CatchingUpError names the neighbours a restored group still waits for.
type CatchingUpError struct{ Waiting []string }

func (e *CatchingUpError) Error() string {
	return fmt.Sprintf("%v: writes resume once anti-entropy has run with %s (恢复备份后正在与相邻节点核对，稍后重试)", ErrCatchingUp, strings.Join(e.Waiting, ", "))
}

func (e *CatchingUpError) Unwrap() error { return ErrCatchingUp }

// restoreState is the stored RestoreState, read once after open or a
// restore (Apply's goroutine) and published for the precheck.
func (fc *fedCache) restoreState(tx *store.Tx) (*pb.RestoreState, error) {
	if fc.rsLoaded {
		return fc.rs, nil
	}
	rs, err := tx.RestoreState()
	if err != nil {
		return nil, err
	}
	fc.setRestore(rs)
	return rs, nil
}

func (fc *fedCache) setRestore(rs *pb.RestoreState) {
	fc.rs, fc.rsLoaded = rs, true
	fc.sharedRS.Store(&sharedRestore{rs: rs})
}

// currentRestore is the restore state for a reader outside Apply.
func (fc *fedCache) currentRestore(tx *store.Tx) (*pb.RestoreState, error) {
	if s := fc.sharedRS.Load(); s != nil {
		return s.rs, nil
	}
	return tx.RestoreState()
}

type sharedRestore struct{ rs *pb.RestoreState }

// noteIncarnation fixes a restored group's incarnation with the first
// stamped command it applies. The cached record is replaced, never
// changed in place (the precheck reads the published one).
func noteIncarnation(tx *store.Tx, cmd *pb.Command, fc *fedCache) (*pb.RestoreState, error) {
	rs, err := fc.restoreState(tx)
	if err != nil || rs == nil || rs.Incarnation != 0 || cmd.StampedUnixMs <= 0 {
		return rs, err
	}
	next := cloneRestore(rs)
	next.Incarnation = uint64(cmd.StampedUnixMs)
	if err := tx.PutRestoreState(next); err != nil {
		return nil, err
	}
	fc.setRestore(next)
	return next, nil
}

func cloneRestore(rs *pb.RestoreState) *pb.RestoreState {
	return &pb.RestoreState{Index: rs.Index, Term: rs.Term, BackupSha256: rs.BackupSha256, CatchingUp: rs.CatchingUp,
		CaughtUp: slices.Clone(rs.CaughtUp), Incarnation: rs.Incarnation}
}

// catchUpRefusal refuses cmd when it would make a version of a case held
// here or give out a case id while the restored group catches up.
func catchUpRefusal(cmd *pb.Command, rs *pb.RestoreState, fv *fedView) error {
	if !rs.GetCatchingUp() {
		return nil
	}
	switch cmd.Body.(type) {
	case *pb.Command_Report, *pb.Command_Act, *pb.Command_ImportCases, *pb.Command_MarkOverdue,
		*pb.Command_MarkOverdueBatch, *pb.Command_Reconcile, *pb.Command_AttachEvidence, *pb.Command_ReportBatch:
		return &CatchingUpError{Waiting: waitingFor(rs, fv)}
	}
	return nil
}

// waitingFor lists the neighbours a restored group has not caught up with.
func waitingFor(rs *pb.RestoreState, fv *fedView) []string {
	if fv == nil {
		return nil
	}
	var out []string
	for _, n := range fv.topo.Neighbours(fv.self) {
		if !slices.Contains(rs.GetCaughtUp(), n) {
			out = append(out, n)
		}
	}
	return out
}

// caughtUp records that the restored group ran anti-entropy with from;
// with every neighbour done, it takes writes again.
func caughtUp(tx *store.Tx, from string, fv *fedView, fc *fedCache) error {
	rs, err := fc.restoreState(tx)
	if err != nil || !rs.GetCatchingUp() || slices.Contains(rs.CaughtUp, from) {
		return err
	}
	next := cloneRestore(rs)
	next.CaughtUp = append(next.CaughtUp, from)
	slices.Sort(next.CaughtUp)
	next.CatchingUp = len(waitingFor(next, fv)) > 0
	if err := tx.PutRestoreState(next); err != nil {
		return err
	}
	fc.setRestore(next)
	return nil
}

// bumpOwnSeq moves this node's case sequence counter past the id of c when
// this node gave it out: a case a restored node numbered after its backup
// comes back from a neighbour, and the next report must not reuse its id.
func bumpOwnSeq(tx *store.Tx, c *pb.Case, fv *fedView) error {
	self, ok := fv.topo.Node(fv.self)
	if !ok {
		return nil
	}
	prefix, date, seq, ok := store.SplitCaseID(c.GetId())
	if !ok || prefix != self.Jurisdiction {
		return nil
	}
	_, err := tx.BumpSeq(prefix, date, seq)
	return err
}
