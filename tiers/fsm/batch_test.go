package fsm_test

import (
	"errors"
	"fmt"
	"math"
	"testing"

	"google.golang.org/protobuf/proto"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/fsm"
	"github.com/cityhub/cityhub/tiers/workflow"
)

// batch builds a ReportBatch command, stamped as the leader stamps one,
// from report commands (each item keeps its command's request id and
// report).
func batch(at int64, reports ...*pb.Command) *pb.Command {
	b := &pb.ReportBatch{}
	for _, r := range reports {
		b.Items = append(b.Items, &pb.ReportBatchItem{RequestId: r.RequestId, Report: proto.Clone(r.GetReport()).(*pb.ReportCase)})
	}
	return &pb.Command{StampedUnixMs: at, StampedBy: "node-1", Body: &pb.Command_ReportBatch{ReportBatch: b}}
}

func TestReportBatch(t *testing.T) {
	s := openStore(t)
	f := newFSM(t, s)

	// Three reports in one entry: three cases, numbered in item order,
	// each recorded under its own request id.
	res := mustApply(t, f, 1, batch(stamp, report("b-1", stamp, "one"), report("b-2", stamp, "two"), report("b-3", stamp, "three")))
	if len(res.Items) != 3 {
		t.Fatalf("items = %d, want 3", len(res.Items))
	}
	for i, it := range res.Items {
		if it.Err != nil || it.Replayed || it.Case.GetId() != caseID(i+1) {
			t.Fatalf("item %d: %+v, want new case %s", i, it, caseID(i+1))
		}
		rec, err := getRequest(t, s, fmt.Sprintf("b-%d", i+1))
		if err != nil || rec.CaseId != caseID(i+1) {
			t.Fatalf("request record of item %d: %v %v", i, rec, err)
		}
		c, err := s.GetCase(caseID(i + 1))
		if err != nil || c.State != pb.State_STATE_REPORTED || c.History[0].RequestId != fmt.Sprintf("b-%d", i+1) {
			t.Fatalf("case %d: %v %v", i+1, c, err)
		}
	}
	// Each item has its own audit event, though all share the entry's
	// index and stamp.
	events, _, err := s.Audit(0, math.MaxInt64, "", 100, "")
	if err != nil {
		t.Fatal(err)
	}
	var audited []string
	for _, ev := range events {
		audited = append(audited, ev.CaseId)
	}
	if fmt.Sprint(audited) != fmt.Sprint([]string{caseID(1), caseID(2), caseID(3)}) {
		t.Fatalf("audit trail of the batch: cases %v, want one event for each of the three", audited)
	}
	before := records(t, s, true)

	// The same batch again (a client's retry): every item replayed,
	// nothing written.
	res = mustApply(t, f, 2, batch(stamp+minute, report("b-1", stamp, "one"), report("b-2", stamp, "two"), report("b-3", stamp, "three")))
	for i, it := range res.Items {
		if !it.Replayed || it.Case.GetId() != caseID(i+1) {
			t.Fatalf("retried item %d: %+v, want the first case %s replayed", i, it, caseID(i+1))
		}
	}
	sameRecords(t, "retried batch", before, records(t, s, true))

	// An item sent again on its own is the same request.
	if r := mustApply(t, f, 3, report("b-2", stamp+2*minute, "two")); !r.Replayed || r.Case.Id != caseID(2) {
		t.Fatalf("item alone: %+v, want case %s replayed", r, caseID(2))
	}

	// A mixed batch: each item decided on its own.
	bad := report("b-5", stamp, "bad")
	bad.GetReport().Actor = " "
	res = mustApply(t, f, 4, batch(stamp+3*minute,
		report("b-1", stamp, "one"),     // replayed
		report("b-4", stamp, "four"),    // new
		bad,                             // refused: no actor
		report("b-2", stamp, "not two"), // request id reused for another report
		report("b-6", stamp, "six")))    // new, numbered after b-4 (the refusal took no number)
	want := []struct {
		id       string
		replayed bool
		err      error
	}{{caseID(1), true, nil}, {caseID(4), false, nil}, {"", false, workflow.ErrInvalidArgument}, {"", false, fsm.ErrRequestReused}, {caseID(5), false, nil}}
	for i, w := range want {
		it := res.Items[i]
		if it.Case.GetId() != w.id || it.Replayed != w.replayed || !errors.Is(it.Err, w.err) || (w.err == nil) != (it.Err == nil) {
			t.Fatalf("mixed item %d: case %q replayed %v err %v, want %q %v %v", i, it.Case.GetId(), it.Replayed, it.Err, w.id, w.replayed, w.err)
		}
	}
	if _, err := getRequest(t, s, "b-5"); err == nil {
		t.Fatal("the refused item's request id was recorded")
	}
}

func TestReportBatchPrecheck(t *testing.T) {
	s := openStore(t)
	f := newFSM(t, s)
	mustApply(t, f, 1, batch(stamp, report("p-1", stamp, "one"), report("p-2", stamp, "two")))

	// Every item applied before: answered without the log, in order.
	pre, err := fsm.Precheck(s, batch(stamp+minute, report("p-1", stamp, "one"), report("p-2", stamp, "two")))
	if err != nil || pre == nil || !pre.Replayed || len(pre.Items) != 2 || pre.Items[0].Case.GetId() != caseID(1) || pre.Items[1].Case.GetId() != caseID(2) {
		t.Fatalf("precheck of a retried batch: %+v %v", pre, err)
	}
	// One new item: the log decides.
	if pre, err := fsm.Precheck(s, batch(stamp+minute, report("p-1", stamp, "one"), report("p-3", stamp, "three"))); err != nil || pre != nil {
		t.Fatalf("precheck with a new item: %+v %v, want nil (through the log)", pre, err)
	}
}

func TestReportBatchLimits(t *testing.T) {
	s := openStore(t)
	f := newFSM(t, s)
	var reports []*pb.Command
	for i := 0; i <= fsm.MaxBatchItems; i++ {
		reports = append(reports, report(fmt.Sprintf("l-%d", i), stamp, "x"))
	}
	refused(t, f, 1, batch(stamp, reports...), fsm.ErrBatchTooLarge)

	// An item without a report is refused on its own.
	cmd := batch(stamp, report("l-ok", stamp, "ok"))
	cmd.GetReportBatch().Items = append(cmd.GetReportBatch().Items, &pb.ReportBatchItem{RequestId: "l-empty"})
	res := mustApply(t, f, 2, cmd)
	if res.Items[0].Case.GetId() != caseID(1) || !errors.Is(res.Items[1].Err, fsm.ErrBadCommand) {
		t.Fatalf("items: %+v %+v", res.Items[0], res.Items[1])
	}
}

// The request record keeps the fingerprint the leader stamped (alone or
// in a batch), and a retry stamped by a leader of an earlier release (no
// fingerprint: Apply computes it) replays the first result.
func TestStampedFingerprintIsRecorded(t *testing.T) {
	s := openStore(t)
	f := newFSM(t, s)

	alone := report("s-1", stamp, "one")
	fsm.StampFingerprint(alone)
	joined := batch(stamp, report("s-2", stamp, "two"))
	fsm.StampFingerprint(joined)
	first := mustApply(t, f, 1, alone)
	mustApply(t, f, 2, joined)
	for id, want := range map[string][]byte{"s-1": alone.Fingerprint, "s-2": joined.GetReportBatch().Items[0].Fingerprint} {
		rec, err := getRequest(t, s, id)
		if err != nil || len(want) != 32 || string(rec.Fingerprint) != string(want) {
			t.Fatalf("%s: recorded %x (%v), stamped %x", id, rec.GetFingerprint(), err, want)
		}
	}
	if r := mustApply(t, f, 3, report("s-1", stamp+60_000, "one")); !r.Replayed || r.Case.GetId() != first.Case.GetId() {
		t.Fatalf("unstamped retry: %+v", r)
	}

	// What the leader stamped is what is recorded: a stamp that is not
	// the body's hash makes the same body, computed, another request.
	forged := report("s-3", stamp, "three")
	forged.Fingerprint = make([]byte, 32)
	mustApply(t, f, 4, forged)
	if r := result(t, f.Apply(entry(5, encode(t, report("s-3", stamp, "three"))))); !errors.Is(r.Err, fsm.ErrRequestReused) {
		t.Fatalf("a retry whose computed fingerprint differs from the stamped one: %v", r.Err)
	}
}
