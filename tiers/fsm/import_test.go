package fsm_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/catalogue"
	"github.com/cityhub/cityhub/tiers/fsm"
	"github.com/cityhub/cityhub/tiers/legacy"
	"github.com/cityhub/cityhub/tiers/store"
)

var shanghai = time.FixedZone("CST", 8*3600)

// legacyRows are three rows of an old export under district 110105.
func legacyRows() []*pb.LegacyRow {
	return []*pb.LegacyRow{
		{Line: 2, LegacyId: "OLD-1", ReportedAt: "2019-05-03 09:30:00", Source: "监督员", Kind: "事件", Major: "01", Minor: "02",
			GridCode: "110105001001003", Description: "暴露垃圾", Status: "已立案"},
		{Line: 3, LegacyId: "OLD-2", ReportedAt: "2019-05-03 23:59:00", Source: "12345", Kind: "部件", Major: "01", Minor: "01",
			GridCode: "110105001001004", ComponentId: "1101050101000007", Lat: "39.9", Lng: "116.4", Address: "东路 1 号",
			Description: "井盖缺失", Status: "已派遣", DispatchedUnit: "d-roads", Deadline: "2019-05-10 18:00:00"},
		{Line: 4, LegacyId: "OLD-3", ReportedAt: "2020-01-02T08:00:00+08:00", Source: "app", Kind: "event", Major: "05", Minor: "01",
			GridCode: "110105001001005", Description: "游商", Status: "closed", DispatchedUnit: "gone-unit"},
	}
}

// importCmd validates rows the way the API does and builds the command the
// leader stamps.
func importCmd(tb testing.TB, reqID string, at int64, rows []*pb.LegacyRow) *pb.Command {
	tb.Helper()
	v := legacy.Validator{Catalogue: catalogue.Default(), GridPrefix: prefix, Location: shanghai,
		Now: time.Date(2026, 11, 22, 0, 0, 0, 0, shanghai), RequestID: reqID}
	cases, _, rejected := v.Validate(rows)
	if len(rejected) > 0 {
		tb.Fatalf("rows rejected: %v", rejected)
	}
	return &pb.Command{RequestId: reqID, StampedUnixMs: at, StampedBy: "node-1", LocalOffsetS: 8 * 3600,
		Body: &pb.Command_ImportCases{ImportCases: &pb.ImportCases{IdPrefix: prefix, Cases: cases}}}
}

func listLegacy(tb testing.TB, s *store.Store, q store.Query) []*pb.Case {
	tb.Helper()
	cs, _, err := s.List(q)
	if err != nil {
		tb.Fatal(err)
	}
	return cs
}

func TestImportCreatesCasesWithIDsStatesAndIndexes(t *testing.T) {
	s := openStore(t)
	f := newFSM(t, s)
	// A report on the same day shares the day's sequence.
	mustApply(t, f, 1, report("rep-1", stamp, "first"))
	r := mustApply(t, f, 2, importCmd(t, "imp-1", stamp+minute, legacyRows()))
	wantIDs := []string{prefix + "-20190503-000001", prefix + "-20190503-000002", prefix + "-20200102-000001"}
	if r.Imported != 3 || r.Already != 0 || r.Skipped != 0 || strings.Join(r.CaseIDs, ",") != strings.Join(wantIDs, ",") {
		t.Fatalf("result: imported %d already %d skipped %d ids %v", r.Imported, r.Already, r.Skipped, r.CaseIDs)
	}
	for i, want := range []struct {
		state pb.State
		unit  string
	}{{pb.State_STATE_FILED, ""}, {pb.State_STATE_DISPATCHED, "d-roads"}, {pb.State_STATE_CLOSED, "gone-unit"}} {
		got := listLegacy(t, s, store.Query{LegacyID: fmt.Sprintf("OLD-%d", i+1), WithHistory: true})
		if len(got) != 1 {
			t.Fatalf("legacy id OLD-%d: %d cases", i+1, len(got))
		}
		c := got[0]
		if c.Id != wantIDs[i] || c.State != want.state || c.OwnerUnit != want.unit || c.Version != 1 ||
			c.ReportedAtNode != prefix || c.Holder != "" || len(c.History) != 1 || c.History[0].RequestId != "imp-1" ||
			c.History[0].ToState != want.state || c.History[0].Action != pb.Action_ACTION_REPORT {
			t.Errorf("case %d: %v", i, c)
		}
	}
	c, err := s.GetCase(wantIDs[1])
	if err != nil {
		t.Fatal(err)
	}
	// 2019-05-03 23:59 in Shanghai is 15:59 UTC: the id takes the local date.
	if c.ReportedAt.AsTime() != time.Date(2019, 5, 3, 15, 59, 0, 0, time.UTC) || c.Deadline == nil ||
		!proto.Equal(c.StageDeadline, c.Deadline) || c.DispatchedAt == nil || c.ComponentId != "1101050101000007" {
		t.Errorf("dispatched case: %v", c)
	}
	// The other indexes know the cases too.
	if got := listLegacy(t, s, store.Query{OwnerUnit: "d-roads"}); len(got) != 1 || got[0].Id != wantIDs[1] {
		t.Errorf("by unit: %v", got)
	}
	if got := listLegacy(t, s, store.Query{State: pb.State_STATE_CLOSED}); len(got) != 1 || got[0].Id != wantIDs[2] {
		t.Errorf("by state: %v", got)
	}
	counts, _ := s.CountByState()
	if counts[pb.State_STATE_FILED] != 1 || counts[pb.State_STATE_DISPATCHED] != 1 || counts[pb.State_STATE_CLOSED] != 1 || counts[pb.State_STATE_REPORTED] != 1 {
		t.Errorf("counts %v", counts)
	}
	if rec, err := getRequest(t, s, "imp-1"); err != nil || rec.CaseId != wantIDs[0] || rec.LogIndex != 2 {
		t.Errorf("request record %v, %v", rec, err)
	}
	// The next report of 2019-05-03 (a hand-entered late case) continues the sequence.
	rep := report("rep-2", stamp, "late")
	rep.GetReport().IdDate = "20190503"
	if r := mustApply(t, f, 3, rep); r.Case.Id != prefix+"-20190503-000003" {
		t.Errorf("report after import got %s", r.Case.Id)
	}
}

func TestImportAgainChangesNothing(t *testing.T) {
	s := openStore(t)
	f := newFSM(t, s)
	first := mustApply(t, f, 1, importCmd(t, "imp-1", stamp, legacyRows()))
	before := records(t, s, true)

	// The same rows under another request id: every row is already there.
	r := mustApply(t, f, 2, importCmd(t, "imp-2", stamp+minute, legacyRows()))
	if r.Imported != 0 || r.Already != 3 || strings.Join(r.CaseIDs, ",") != strings.Join(first.CaseIDs, ",") {
		t.Fatalf("re-import: imported %d already %d ids %v, want ids %v", r.Imported, r.Already, r.CaseIDs, first.CaseIDs)
	}
	after := records(t, s, true)
	if _, ok := after["r/imp-2"]; !ok {
		t.Fatal("the second request was not recorded")
	}
	delete(after, "r/imp-2")
	sameRecords(t, "re-import under a new request id", before, after)

	// The same request again (a client retry, perhaps through another
	// leader that stamped other owners): a replay.
	retry := importCmd(t, "imp-1", stamp+2*minute, legacyRows())
	for _, ic := range retry.GetImportCases().Cases {
		ic.Case.Ownership = &pb.Ownership{Unit: "someone", Rule: "r-7"}
	}
	before = records(t, s, true)
	r = mustApply(t, f, 3, retry)
	// It answers as the first apply did: every row already there, with
	// its case id (the API answers a retry from this alone).
	if !r.Replayed || r.Imported != 0 || r.Already != 3 || r.Case != nil ||
		strings.Join(r.CaseIDs, ",") != strings.Join(first.CaseIDs, ",") {
		t.Fatalf("retry: replayed %v imported %d already %d case %v ids %v, want ids %v",
			r.Replayed, r.Imported, r.Already, r.Case, r.CaseIDs, first.CaseIDs)
	}
	sameRecords(t, "replay", before, records(t, s, true))
	// The leader's precheck answers the same without the log.
	pre, err := fsm.Precheck(s, retry)
	if err != nil || pre == nil || !pre.Replayed || pre.Already != 3 || strings.Join(pre.CaseIDs, ",") != strings.Join(first.CaseIDs, ",") {
		t.Fatalf("precheck of the retry: %+v, %v", pre, err)
	}

	// The same request id for other rows is refused and writes nothing.
	other := legacyRows()[:1]
	other[0].LegacyId = "OLD-9"
	refused(t, f, 4, importCmd(t, "imp-1", stamp, other), fsm.ErrRequestReused)
	sameRecords(t, "reused request id", before, records(t, s, true))
}

func TestImportSkipsMalformedEntries(t *testing.T) {
	s := openStore(t)
	f := newFSM(t, s)
	cmd := importCmd(t, "imp-1", stamp, legacyRows()[:1])
	good := cmd.GetImportCases().Cases[0]
	mk := func(mod func(*pb.ImportedCase)) *pb.ImportedCase {
		ic := proto.Clone(good).(*pb.ImportedCase)
		ic.Case.LegacyId += "-" + fmt.Sprint(len(cmd.GetImportCases().Cases))
		mod(ic)
		return ic
	}
	cmd.GetImportCases().Cases = append(cmd.GetImportCases().Cases,
		&pb.ImportedCase{IdDate: "20190503"}, // no case
		nil,
		mk(func(ic *pb.ImportedCase) { ic.IdDate = "2019-05/03" }),
		mk(func(ic *pb.ImportedCase) { ic.IdDate = "" }),
		mk(func(ic *pb.ImportedCase) { ic.Case.LegacyId = "" }),
		mk(func(ic *pb.ImportedCase) { ic.Case.LegacyId = "A\x00B" }),
		mk(func(ic *pb.ImportedCase) { ic.Case.GridCode = strings.Repeat("1", 5000) }),
		mk(func(ic *pb.ImportedCase) { ic.Case.OwnerUnit = strings.Repeat("u", 5000) }),
		mk(func(ic *pb.ImportedCase) { ic.Case.State = pb.State_STATE_UNSPECIFIED }),
		mk(func(ic *pb.ImportedCase) { ic.Case.State = 99 }),
		mk(func(ic *pb.ImportedCase) { ic.Case.Version = 0 }),
		mk(func(ic *pb.ImportedCase) {}), // good: a legacy id of its own
	)
	r := mustApply(t, f, 1, cmd)
	n := len(cmd.GetImportCases().Cases)
	if r.Imported != 2 || r.Skipped != n-2 || len(r.CaseIDs) != n || r.CaseIDs[0] == "" || r.CaseIDs[n-1] == "" {
		t.Fatalf("imported %d skipped %d ids %v", r.Imported, r.Skipped, r.CaseIDs)
	}
	for _, id := range r.CaseIDs[1 : n-1] {
		if id != "" {
			t.Fatalf("a skipped entry has case id %q", id)
		}
	}
	if all := allCases(t, s); len(all) != 2 {
		t.Fatalf("%d cases stored", len(all))
	}

	// Without an id prefix the whole command is refused.
	before := records(t, s, true)
	bad := importCmd(t, "imp-2", stamp, legacyRows())
	bad.GetImportCases().IdPrefix = ""
	refused(t, f, 2, bad, fsm.ErrBadCommand)
	bad.GetImportCases().IdPrefix = "11/0105"
	refused(t, f, 3, bad, fsm.ErrBadCommand)
	sameRecords(t, "refused import", before, records(t, s, true))
}

func TestImportDuplicateInOneCommandIsAlready(t *testing.T) {
	s := openStore(t)
	f := newFSM(t, s)
	cmd := importCmd(t, "imp-1", stamp, legacyRows()[:2])
	// The API refuses duplicates; the state machine must still be sound.
	dup := proto.Clone(cmd.GetImportCases().Cases[1]).(*pb.ImportedCase)
	dup.Case.LegacyId = "OLD-1"
	cmd.GetImportCases().Cases = append(cmd.GetImportCases().Cases, dup)
	r := mustApply(t, f, 1, cmd)
	if r.Imported != 2 || r.Already != 1 || r.CaseIDs[2] != r.CaseIDs[0] {
		t.Fatalf("imported %d already %d ids %v", r.Imported, r.Already, r.CaseIDs)
	}
	if got := listLegacy(t, s, store.Query{LegacyID: "OLD-1"}); len(got) != 1 || got[0].State != pb.State_STATE_FILED {
		t.Fatalf("OLD-1: %v", got)
	}
}

func TestImportInAFederationHoldsAndQueues(t *testing.T) {
	s := openStore(t)
	f := newFSM(t, s)
	mustApply(t, f, 1, fedTopology("d-110105"))
	r := mustApply(t, f, 2, importCmd(t, "imp-1", stamp, legacyRows()))
	up := outbox(t, s, "city")
	if len(up) != 3 {
		t.Fatalf("%d entries toward the city, want 3", len(up))
	}
	for i, e := range up {
		if e.Case.Id != r.CaseIDs[i] || e.Case.Holder != "d-110105" || e.Case.HolderEpoch != 1 || e.Origin != "d-110105" || e.EnqueuedUnixMs != stamp {
			t.Errorf("entry %d: %v", i, e)
		}
	}
	// A unit hosted below does not move the holder: the reconciler does.
	if down := outbox(t, s, "s-110105001"); len(down) != 0 {
		t.Errorf("%d entries down", len(down))
	}
	// Importing again queues nothing.
	mustApply(t, f, 3, importCmd(t, "imp-2", stamp, legacyRows()))
	if up := outbox(t, s, "city"); len(up) != 3 {
		t.Fatalf("re-import queued: %d entries", len(up))
	}
}

func TestImportIsDeterministic(t *testing.T) {
	rows := legacyRows()
	var more []*pb.LegacyRow
	for i := 0; i < 40; i++ {
		r := proto.Clone(rows[i%3]).(*pb.LegacyRow)
		r.LegacyId = fmt.Sprintf("OLD-%d-%d", i/3, i%3)
		more = append(more, r)
	}
	var logs []*raft.Log
	for i := 0; i < 8; i++ {
		cmd := importCmd(t, fmt.Sprintf("imp-%d", i%5), stamp+int64(i)*minute, more[i*5:i*5+5])
		if i >= 5 { // retries of earlier requests, and overlapping new ones
			cmd = importCmd(t, fmt.Sprintf("imp-%d", i-5), stamp+int64(i)*minute, more[(i-5)*5:(i-5)*5+5])
		}
		logs = append(logs, entry(uint64(2*i+1), encode(t, cmd)))
		logs = append(logs, entry(uint64(2*i+2), encode(t, importCmd(t, fmt.Sprintf("over-%d", i), stamp, more[i*4:i*4+6]))))
	}
	s1, s2 := openStore(t), openStore(t)
	f1, f2 := newFSM(t, s1), newFSM(t, s2)
	r1 := f1.ApplyBatch(logs)
	var r2 []any
	for _, l := range logs {
		r2 = append(r2, f2.Apply(l))
	}
	if !bytes.Equal(snapshotBytes(t, s1), snapshotBytes(t, s2)) {
		sameRecords(t, "replicas", records(t, s1, false), records(t, s2, false))
		t.Fatal("snapshots differ")
	}
	imported := 0
	for i := range r1 {
		a, b := result(t, r1[i]), result(t, r2[i])
		if fmt.Sprint(a.Err) != fmt.Sprint(b.Err) || a.Imported != b.Imported || a.Already != b.Already || strings.Join(a.CaseIDs, ",") != strings.Join(b.CaseIDs, ",") {
			t.Fatalf("entry %d: %+v vs %+v", i+1, a, b)
		}
		imported += a.Imported
	}
	if all := allCases(t, s1); imported != len(all) || len(all) != 34 {
		t.Fatalf("%d imported in total, %d cases stored, want 34", imported, len(all))
	}
}

// A case another node imported with the same legacy id (two old systems
// numbered alike), held or mirrored here, does not make this node's row
// "already imported".
func TestImportIgnoresAnotherNodesLegacyIDs(t *testing.T) {
	s := openStore(t)
	f := newFSM(t, s)
	other := &pb.Case{Id: "110106-20190101-000001", ReportedAtNode: "110106", LegacyId: "OLD-1", State: pb.State_STATE_FILED,
		Kind: pb.Kind_KIND_EVENT, MajorCode: "01", MinorCode: "02", GridCode: "110106001001001", Version: 1}
	if err := s.Update(func(tx *store.Tx) error { return tx.PutCase(nil, other) }); err != nil {
		t.Fatal(err)
	}
	r := mustApply(t, f, 1, importCmd(t, "imp-1", stamp, legacyRows()))
	if r.Imported != 3 || r.Already != 0 {
		t.Fatalf("imported %d, already %d: another node's legacy id counted as this node's", r.Imported, r.Already)
	}
	if got := listLegacy(t, s, store.Query{LegacyID: "OLD-1"}); len(got) != 2 {
		t.Fatalf("listing OLD-1 finds %d cases, want both", len(got))
	}
}
