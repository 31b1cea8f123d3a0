package fsm

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/deadline"
	"github.com/cityhub/cityhub/tiers/evaluation"
	"github.com/cityhub/cityhub/tiers/store"
	"github.com/cityhub/cityhub/tiers/workflow"
)

var (
	// ErrBadCommand is returned for a log entry that is not a valid Command.
	ErrBadCommand = errors.New("bad command")
	// ErrRequestReused is returned when a request id that was already
	// applied comes back with a different command.
	ErrRequestReused = errors.New("request id already used for a different command")
	// ErrReplayed marks an entry skipped because the store already holds it.
	ErrReplayed = errors.New("entry already applied")
)

// Result is what Apply returns for a command entry.
type Result struct {
	Case     *pb.Case
	Replayed bool // the request id was applied before; nothing changed
	Err      error
	// HighWater is the link's high-water mark after a DeliverEntries;
	// Jumped counts the entries its mark passed over without applying
	// them, and Reset says it restarted for a sender's new incarnation
	// (federation/DESIGN.md, "After a restore").
	HighWater uint64
	Jumped    uint64
	Reset     bool
	// Skipped counts delivered entries that were not newer than the copy
	// held (duplicates, reordered copies) or were malformed, and
	// reconciliation moves planned against a copy that has changed since.
	Skipped int
	// Applied counts the reconciliation moves of a batch that took effect;
	// Failed the moves the state machine refused (recorded as FAILED with
	// the reason, never dropped).
	Applied, Failed int
	// Imported and Already count the cases an ImportCases created and the
	// entries whose legacy id was imported before; CaseIDs holds each
	// entry's case id, in command order ("" for a malformed entry, counted
	// in Skipped).
	Imported, Already int
	CaseIDs           []string
	// Items holds a ReportBatch's result per item, in order (each as a
	// ReportCase's: the case, replayed, or the refusal in Err). A batch
	// is answered by the leader's API itself (it is never forwarded
	// through ForwardService), so Proto does not carry them.
	Items []*Result
}

// process applies one command inside tx through its registry row
// (registry.go) and returns the result and the command's body type (0: not
// a valid command). A returned error is a storage failure; a refused
// command is reported in Result.Err and writes nothing.
func process(tx *store.Tx, l *raft.Log, fed *fedCache) (*Result, Kind, error) {
	cmd := &pb.Command{}
	if err := proto.Unmarshal(l.Data, cmd); err != nil {
		return &Result{Err: fmt.Errorf("%w: index %d: %v", ErrBadCommand, l.Index, err)}, 0, nil
	}
	t := typeOf(cmd)
	if t == nil {
		return unknownCommand(cmd, l.Index), 0, nil
	}
	res, err := processType(tx, l, fed, cmd, t)
	return res, t.kind, err
}

func processType(tx *store.Tx, l *raft.Log, fed *fedCache, cmd *pb.Command, t *commandType) (*Result, error) {
	if f := oversizedKeyField(cmd, t); f != "" {
		return &Result{Err: fmt.Errorf("%w: index %d: %s is longer than %d bytes", ErrBadCommand, l.Index, f, maxKeyField)}, nil
	}
	// The changes this command makes enter the feed with its index and
	// stamped time.
	tx.SetChangeContext(l.Index, cmd.StampedUnixMs)
	rs, err := noteIncarnation(tx, cmd, fed)
	if err != nil {
		return nil, err
	}
	fp := t.fingerprintOf(cmd)
	if res, err := recorded(tx, tx.GetCase, cmd, t, fp); res != nil || err != nil {
		return res, err
	}
	fv, err := fed.load(tx)
	if err != nil {
		return nil, err
	}
	if err := catchUpRefusal(cmd, rs, fv); err != nil {
		return &Result{Err: err}, nil
	}
	return t.apply(&entry{tx: tx, cmd: cmd, index: l.Index, fv: fv, fed: fed, fp: fp})
}

// recorded answers a command (of type t) whose request id was applied
// before: the first result (replayed, completed by the type's replayed
// function), or ErrRequestReused when the body differs. It returns nil,
// nil for a command without a request id or with a new one. fp is the
// command's fingerprint; nil computes it when a record is found.
func recorded(tx *store.Tx, getCase func(id string) (*pb.Case, error), cmd *pb.Command, t *commandType, fp []byte) (*Result, error) {
	if cmd.RequestId == "" {
		return nil, nil
	}
	rec, err := tx.GetRequest(cmd.RequestId)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, err
	}
	if fp == nil {
		fp = t.fingerprintOf(cmd)
	}
	res, err := replay(getCase, cmd, rec, fp)
	if err != nil || !res.Replayed || t.replayed == nil {
		return res, err
	}
	return res, t.replayed(tx, cmd, res)
}

func replay(getCase func(id string) (*pb.Case, error), cmd *pb.Command, rec *pb.RequestRecord, fp []byte) (*Result, error) {
	if string(rec.Fingerprint) != string(fp) {
		return &Result{Err: fmt.Errorf("%w: request_id %q (first applied at index %d to case %s)", ErrRequestReused, cmd.RequestId, rec.LogIndex, rec.CaseId)}, nil
	}
	if rec.CaseId == "" {
		return &Result{Replayed: true}, nil
	}
	c, err := getCase(rec.CaseId)
	if err != nil {
		return nil, err
	}
	return &Result{Case: c, Replayed: true}, nil
}

func report(tx *store.Tx, cmd *pb.Command, r *pb.ReportCase, fv *fedView) (*pb.Case, *Result, error) {
	c := r.GetCase() // decoded for this entry alone: no one else holds it
	// Validate before a sequence number is taken, so a refused report
	// leaves no gap and writes nothing.
	if err := newReport(cmd, r, c); err != nil {
		return nil, &Result{Err: err}, nil
	}
	seq, err := tx.NextSeq(r.IdPrefix, r.IdDate)
	if err != nil {
		return nil, nil, err
	}
	c.Id = caseID(r.IdPrefix, r.IdDate, seq)
	c.ReportedAtNode = r.IdPrefix
	c.ReportedBy = r.Principal
	c.Ownership = r.GetOwnership()
	c.Holder, c.HolderEpoch = "", 0
	if fv != nil {
		c.Holder, c.HolderEpoch = fv.self, 1
	}
	if err := putCase(tx, nil, c, cmd.LocalOffsetS); err != nil {
		return nil, nil, err
	}
	return c, nil, fv.emit(tx, "", fv.selfName(), c, cmd.StampedUnixMs)
}

// caseID is the id of a tier's seq-th case of date: prefix-date-seq, seq
// zero-padded to six digits (fmt's "%s-%s-%06d", without fmt: one is
// made for every report on every replica).
func caseID(prefix, date string, seq uint64) string {
	b := make([]byte, 0, len(prefix)+len(date)+8+6)
	b = append(append(append(append(b, prefix...), '-'), date...), '-')
	for p := uint64(100000); p > 1 && seq < p; p /= 10 {
		b = append(b, '0')
	}
	return string(strconv.AppendUint(b, seq, 10))
}

// newReport checks report r (stamped in cmd) and makes c, the reported
// case, a new case in REPORTED (workflow.NewCase). A refusal leaves c
// unchanged. It reads and writes nothing. Apply decides a report through
// it, the leader's Precheck through checkReport: the same checks, on the
// client's case, without a copy to change.
func newReport(cmd *pb.Command, r *pb.ReportCase, c *pb.Case) error {
	if err := checkReportIDs(r, c); err != nil {
		return err
	}
	return workflow.NewCase(c, reportStep(cmd, r))
}

// checkReport returns the error newReport(cmd, r, c) would return,
// without changing c (the leader's precheck).
func checkReport(cmd *pb.Command, r *pb.ReportCase, c *pb.Case) error {
	if err := checkReportIDs(r, c); err != nil {
		return err
	}
	return workflow.CheckNewCase(c, reportStep(cmd, r))
}

func checkReportIDs(r *pb.ReportCase, c *pb.Case) error {
	if c == nil || !validIDPart(r.IdPrefix) || !validIDPart(r.IdDate) {
		return fmt.Errorf("%w: report needs a case, id prefix and date", ErrBadCommand)
	}
	return nil
}

// reportStep is the workflow step of report r, stamped in cmd.
func reportStep(cmd *pb.Command, r *pb.ReportCase) workflow.Step {
	return workflow.Step{
		Action:              pb.Action_ACTION_REPORT,
		Actor:               r.Actor,
		Role:                r.Role,
		Note:                r.Note,
		AtUnixMs:            cmd.StampedUnixMs,
		RequestID:           cmd.RequestId,
		StageDeadlineUnixMs: r.StageDeadlineUnixMs,
		Principal:           r.Principal,
		ActorUnit:           r.ActorUnit,
	}
}

func act(tx *store.Tx, cmd *pb.Command, a *pb.CaseAction, fv *fedView) (*pb.Case, *Result, error) {
	old, refused, err := heldCase(tx.GetCase, a.CaseId)
	if refused != nil || err != nil {
		return nil, &Result{Err: refused}, err
	}
	c, refused, err := applyAction(tx, cmd, old, a, fv)
	if refused != nil || err != nil {
		return nil, &Result{Err: refused}, err
	}
	return c, nil, nil
}

// heldCase reads the case an action names: an unknown case is a refusal,
// any other read error a storage failure.
func heldCase(getCase func(id string) (*pb.Case, error), id string) (old *pb.Case, refused, err error) {
	old, err = getCase(id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, err, nil
	}
	return old, nil, err
}

// applyAction applies one workflow action to the held case old: it checks,
// moves the case through the lifecycle, keeps deadlines and ownership,
// routes it (a hand-off changes the holder), writes it and queues it on its
// links. A refusal is returned as refused and writes nothing.
func applyAction(tx *store.Tx, cmd *pb.Command, old *pb.Case, a *pb.CaseAction, fv *fedView) (c *pb.Case, refused, err error) {
	c, refused = decideAction(cmd, old, a, fv)
	if refused != nil {
		return nil, refused, nil
	}
	if err := putCase(tx, old, c, cmd.LocalOffsetS); err != nil {
		return nil, nil, err
	}
	return c, nil, fv.emit(tx, "", fv.selfName(), c, cmd.StampedUnixMs)
}

// decideAction decides action a (stamped in cmd) on the held case old and
// returns the case it makes, or the refusal: the holder, the deadline the
// leader stamped from, the joint-review rules, the workflow (role, expected
// version, state, fields) on a clone, then deadlines, routing and
// ownership. old is not changed. It reads and writes nothing: Apply and
// the leader's Precheck both decide an action through it.
func decideAction(cmd *pb.Command, old *pb.Case, a *pb.CaseAction, fv *fedView) (c *pb.Case, refused error) {
	step := workflow.Step{
		Action:           a.Action,
		Actor:            a.Actor,
		Role:             a.Role,
		Note:             a.Note,
		Attachments:      a.Attachments,
		Evidence:         a.Evidence,
		Unit:             a.Unit,
		UnitTier:         a.UnitTier,
		DeadlineUnixMs:   a.DeadlineUnixMs,
		ExtensionMinutes: a.ExtensionMinutes,
		AtUnixMs:         cmd.StampedUnixMs,
		RequestID:        cmd.RequestId,
		ExpectedVersion:  a.ExpectedVersion,
		Principal:        a.Principal,
		ActorUnit:        a.ActorUnit,
	}
	if err := fv.checkHolder(old); err != nil {
		return nil, err
	}
	if err := deadline.CheckBase(old, a); err != nil {
		return nil, err
	}
	if err := checkOwnershipAction(old, a); err != nil {
		return nil, err
	}
	if err := checkNamedEvidence(old, a.Evidence); err != nil {
		return nil, err
	}
	c = proto.Clone(old).(*pb.Case)
	if err := workflow.Apply(c, step); err != nil {
		return nil, err
	}
	deadline.Settle(c, old.State, a, cmd.StampedUnixMs)
	if err := fv.route(c, a); err != nil {
		return nil, err
	}
	settleOwnership(c, old, a, fv)
	return c, nil
}

// markOverdueBatch applies each mark of a batch like a MarkOverdue; a mark
// that no longer applies (the deadline moved, the case was marked already,
// is held elsewhere or gone) is skipped and counted.
func markOverdueBatch(tx *store.Tx, cmd *pb.Command, b *pb.MarkOverdueBatch, fv *fedView) (*Result, error) {
	res := &Result{}
	for _, m := range b.GetMarks() {
		if m == nil || !validIDPart(m.CaseId) {
			res.Skipped++
			continue
		}
		_, refused, err := markOverdue(tx, cmd, m, fv)
		if err != nil {
			return nil, err
		}
		if refused != nil {
			res.Skipped++
		} else {
			res.Applied++
		}
	}
	return res, nil
}

// markOverdue flags a held case whose stage deadline passed (once per
// deadline) and records the supervision, which the federation carries up.
func markOverdue(tx *store.Tx, cmd *pb.Command, m *pb.MarkOverdue, fv *fedView) (*pb.Case, *Result, error) {
	old, err := tx.GetCase(m.CaseId)
	if errors.Is(err, store.ErrNotFound) {
		return nil, &Result{Err: err}, nil
	}
	if err != nil {
		return nil, nil, err
	}
	if err := fv.checkHolder(old); err != nil {
		return nil, &Result{Err: err}, nil
	}
	c := proto.Clone(old).(*pb.Case)
	if err := workflow.MarkOverdue(c, m.DeadlineUnixMs, cmd.StampedUnixMs, cmd.RequestId); err != nil {
		return nil, &Result{Err: err}, nil
	}
	if err := putCase(tx, old, c, cmd.LocalOffsetS); err != nil {
		return nil, nil, err
	}
	return c, nil, fv.emit(tx, "", fv.selfName(), c, cmd.StampedUnixMs)
}

// putCase writes a case with its indexes and counts its evaluation
// indicators (综合评价) in the same transaction, so the counters always agree
// with the cases, on every replica.
func putCase(tx *store.Tx, old, c *pb.Case, offsetS int32) error {
	if err := tx.PutCase(old, c); err != nil {
		return err
	}
	return evaluation.Observe(tx, old, c, offsetS)
}

// maxKeyField bounds the command fields that become part of a store key.
// Badger refuses keys over 65,000 bytes, and a refused write is a storage
// failure that stops every replica on the same entry, so such a command is
// refused as bad instead. The API allows far less.
const maxKeyField = 4096

// oversizedKeyField names the first key-bearing field of cmd (of type t)
// longer than maxKeyField.
func oversizedKeyField(cmd *pb.Command, t *commandType) string {
	if len(cmd.GetRequestId()) > maxKeyField {
		return "request_id"
	}
	if t.keyField != nil {
		return t.keyField(cmd)
	}
	return ""
}

// validIDPart accepts the digits-and-dashes pieces of a case id; ids never
// hold '/' or NUL, which the store's index keys rely on.
func validIDPart(s string) bool {
	return s != "" && len(s) <= 32 && strings.Trim(s, "0123456789-") == ""
}
