package fsm

import (
	"fmt"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/store"
)

// Precheck decides on the leader, before cmd (stamped) is proposed, what
// Apply would answer against the state tx reads (a read-only view of the
// leader's store), with the code Apply runs:
//
//   - a request id applied before: the first result (Replayed), or
//     ErrRequestReused when the body differs (any command);
//   - a write a group restored from a backup takes only once it has caught
//     up with its neighbours (ErrCatchingUp, restore.go);
//   - a report the workflow refuses (role, fields);
//   - an action on an unknown case, on a case held by another node, stamped
//     from a deadline the case no longer has (deadline.ErrStale), against
//     the joint-review rules, refused by the workflow (role, expected
//     version, state, pending request, fields) or by routing.
//
// It returns nil, nil when the command has to go through the log (it would
// change the state, or it is a kind Precheck does not decide), a Result
// with Replayed or Err otherwise, and an error when the store could not be
// read. It writes nothing. The answer is only as fresh as the state read:
// an entry still in flight may change the case before cmd applies, so
// Apply decides again (a command Precheck passes may still be refused);
// the caller decides when a refusal may be answered without the log (see
// tiers/node).
//
// getCase, when not nil, gives the case an action names as the caller
// already read it (the leader's stamper reads it too); nil reads it
// through tx.
func (f *FSM) Precheck(tx *store.Tx, cmd *pb.Command, getCase func(id string) (*pb.Case, error)) (*Result, error) {
	fv, err := f.fed.current(tx)
	if err != nil {
		return nil, err
	}
	rs, err := f.fed.currentRestore(tx)
	if err != nil {
		return nil, err
	}
	return precheck(tx, cmd, fv, rs, getCase)
}

// Precheck is FSM.Precheck for a store without a running state machine
// (tools and tests): it reads the topology from the store.
func Precheck(st *store.Store, cmd *pb.Command) (res *Result, err error) {
	err = st.View(func(tx *store.Tx) error {
		fv, err := loadFedView(tx)
		if err != nil {
			return err
		}
		rs, err := tx.RestoreState()
		if err != nil {
			return err
		}
		res, err = precheck(tx, cmd, fv, rs, nil)
		return err
	})
	return res, err
}

func precheck(tx *store.Tx, cmd *pb.Command, fv *fedView, rs *pb.RestoreState, getCase func(id string) (*pb.Case, error)) (*Result, error) {
	if getCase == nil {
		getCase = tx.GetCase
	}
	t := typeOf(cmd)
	if t == nil {
		// Apply's rule for it (unknownCommand) is not the leader's to run:
		// a command without a body is bad, and the version gate keeps
		// one this binary does not know out of the log.
		return &Result{Err: fmt.Errorf("%w: command has no body this release knows", ErrBadCommand)}, nil
	}
	if f := oversizedKeyField(cmd, t); f != "" {
		return &Result{Err: fmt.Errorf("%w: %s is longer than %d bytes", ErrBadCommand, f, maxKeyField)}, nil
	}
	// The fingerprint is computed only for an id found: a new id (nearly
	// every write) costs one point lookup.
	if res, err := recorded(tx, getCase, cmd, t, nil); res != nil || err != nil {
		return res, err
	}
	if err := catchUpRefusal(cmd, rs, fv); err != nil {
		return &Result{Err: err}, nil
	}
	if t.precheck == nil {
		return nil, nil
	}
	return t.precheck(&pending{tx: tx, cmd: cmd, fv: fv, getCase: getCase})
}

// precheckReport refuses a report the workflow would refuse.
func precheckReport(p *pending) (*Result, error) {
	r := p.cmd.GetReport()
	if err := checkReport(p.cmd, r, r.GetCase()); err != nil {
		return &Result{Err: err}, nil
	}
	return nil, nil
}

// precheckAct refuses an action Apply would refuse (decideAction).
func precheckAct(p *pending) (*Result, error) {
	a := p.cmd.GetAct()
	old, refused, err := heldCase(p.getCase, a.GetCaseId())
	if err != nil {
		return nil, err
	}
	if refused == nil {
		_, refused = decideAction(p.cmd, old, a, p.fv)
	}
	if refused != nil {
		return &Result{Err: refused}, nil
	}
	return nil, nil
}
