package fsm

import (
	"bytes"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// sampleCommand is a command whose body is an empty message of field fd.
func sampleCommand(fd protoreflect.FieldDescriptor) *pb.Command {
	cmd := &pb.Command{RequestId: "r1"}
	m := cmd.ProtoReflect()
	m.Set(fd, protoreflect.ValueOfMessage(m.NewField(fd).Message()))
	return cmd
}

// Every body of Command's oneof has exactly one registry row, named as the
// field, with an apply function; no row names a number the oneof lacks.
func TestRegistryCoversEveryCommandBody(t *testing.T) {
	fields := bodyOneof.Fields()
	rows := map[Kind]int{}
	for _, ct := range commandTypes {
		rows[ct.kind]++
	}
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		k := Kind(fd.Number())
		if rows[k] != 1 {
			t.Errorf("command body %s (%d) has %d registry rows, want 1", fd.Name(), fd.Number(), rows[k])
			continue
		}
		ct := byKind[k]
		if ct.name != string(fd.Name()) {
			t.Errorf("row %d is named %q, the field %q", k, ct.name, fd.Name())
		}
		if ct.apply == nil {
			t.Errorf("row %s has no apply function", ct.name)
		}
		if got := KindOf(sampleCommand(fd)); got != k || got.String() != ct.name {
			t.Errorf("KindOf(%s) = %d (%s)", fd.Name(), got, got)
		}
	}
	for k := range rows {
		if fields.ByNumber(protoreflect.FieldNumber(k)) == nil {
			t.Errorf("registry row %d (%s) names no field of Command.body", k, k)
		}
	}
	if len(commandTypes) != fields.Len() {
		t.Errorf("%d registry rows for %d bodies", len(commandTypes), fields.Len())
	}
	for i := 1; i < len(commandTypes); i++ {
		if commandTypes[i].kind <= commandTypes[i-1].kind {
			t.Errorf("registry rows out of number order at %s", commandTypes[i].name)
		}
	}
}

// Command numbers, names and versions, once released, never change: a log
// written by an older release applies the same way. A new type appends a
// row here.
func TestCommandNumbersAreAppendOnly(t *testing.T) {
	released := []CommandType{
		{10, "report", 1, true},
		{11, "act", 1, true},
		{12, "register_node", 1, false},
		{13, "set_topology", 1, false},
		{14, "deliver", 1, false},
		{15, "trim_outbox", 1, false},
		{16, "mark_overdue", 1, false},
		{17, "import_cases", 1, true},
		{18, "reconcile", 1, false},
		{19, "reconcile_run", 1, false},
		{20, "repair", 1, false},
		{21, "mark_overdue_batch", 1, false},
		{22, "auth", 1, true},
		{23, "attach_evidence", 2, true},
	}
	got := CommandTypes()
	if len(got) < len(released) {
		t.Fatalf("%d command types, %d were released: a type was removed", len(got), len(released))
	}
	for i, want := range released {
		if got[i] != want {
			t.Errorf("command type %d is %+v, released as %+v", i, got[i], want)
		}
	}
	for _, ct := range got[len(released):] {
		if ct.Kind <= released[len(released)-1].Kind {
			t.Errorf("new command type %+v reuses or precedes a released number", ct)
		}
	}
}

// Only what a client's request builds may come from outside the leader.
func TestClientMayCause(t *testing.T) {
	for _, tc := range []struct {
		cmd  *pb.Command
		want bool
	}{
		{&pb.Command{Body: &pb.Command_Report{Report: &pb.ReportCase{}}}, true},
		{&pb.Command{Body: &pb.Command_Act{Act: &pb.CaseAction{}}}, true},
		{&pb.Command{Body: &pb.Command_ImportCases{ImportCases: &pb.ImportCases{}}}, true},
		{&pb.Command{Body: &pb.Command_Auth{Auth: &pb.AuthChange{}}}, true},
		{&pb.Command{Body: &pb.Command_AttachEvidence{AttachEvidence: &pb.AttachEvidence{}}}, true},
		{&pb.Command{Body: &pb.Command_Deliver{Deliver: &pb.DeliverEntries{}}}, false},
		{&pb.Command{Body: &pb.Command_SetTopology{SetTopology: &pb.SetTopology{}}}, false},
		{&pb.Command{Body: &pb.Command_RegisterNode{RegisterNode: &pb.RegisterNode{}}}, false},
		{&pb.Command{Body: &pb.Command_Repair{Repair: &pb.RepairCases{}}}, false},
		{&pb.Command{}, false},
		{nil, false},
	} {
		if got := ClientMayCause(tc.cmd); got != tc.want {
			t.Errorf("ClientMayCause(%v) = %v, want %v", tc.cmd, got, tc.want)
		}
	}
}

// A type without its own fingerprint hashes its whole body, as it always
// did (the records already stored hold these hashes); an identity change
// has none.
func TestWholeBodyFingerprint(t *testing.T) {
	d := &pb.DeliverEntries{From: "city", Floor: 3}
	if got, want := fingerprint(&pb.Command{Body: &pb.Command_Deliver{Deliver: d}}), hashMessage(d); !bytes.Equal(got, want) {
		t.Fatal("a delivery's fingerprint is not the hash of its body")
	}
	other := fingerprint(&pb.Command{Body: &pb.Command_Deliver{Deliver: &pb.DeliverEntries{From: "city", Floor: 4}}})
	if bytes.Equal(other, hashMessage(d)) {
		t.Fatal("two deliveries have one fingerprint")
	}
	if fp := fingerprint(&pb.Command{Body: &pb.Command_Auth{Auth: &pb.AuthChange{By: "admin"}}}); fp != nil {
		t.Fatalf("an identity change has a fingerprint %x", fp)
	}
	if fp := fingerprint(&pb.Command{}); fp != nil {
		t.Fatalf("a command without a body has a fingerprint %x", fp)
	}
}

// Kind names the metric's label: invalid, the body's name, unknown.
func TestKindString(t *testing.T) {
	for k, want := range map[Kind]string{0: "invalid", 10: "report", 23: "attach_evidence", 999: "unknown"} {
		if got := k.String(); got != want {
			t.Errorf("Kind(%d) = %q, want %q", k, got, want)
		}
	}
}

// A forwarded result carries what a client's command returns.
func TestResultRoundTrip(t *testing.T) {
	r := &Result{Case: &pb.Case{Id: "110105-20261203-000001"}, Replayed: true, Imported: 2, Already: 1, CaseIDs: []string{"a", "", "b"}, Skipped: 1}
	got := ResultFromProto(r.Proto())
	if got.Case.GetId() != r.Case.Id || !got.Replayed || got.Imported != 2 || got.Already != 1 || got.Skipped != 1 || len(got.CaseIDs) != 3 || got.CaseIDs[2] != "b" {
		t.Fatalf("round trip: %+v", got)
	}
	if ResultFromProto(nil).Case != nil {
		t.Fatal("a nil result carries a case")
	}
}

// BenchmarkCommandDispatch is what finding an entry's registry row costs:
// a map lookup by the body's Go type (the type switch it replaced cost a
// few nanoseconds less, protoreflect's WhichOneof ten times more; applying
// a report costs tens of microseconds).
func BenchmarkCommandDispatch(b *testing.B) {
	cmd := &pb.Command{Body: &pb.Command_Act{Act: &pb.CaseAction{}}}
	b.ReportAllocs()
	for b.Loop() {
		if typeOf(cmd) == nil {
			b.Fatal("no row")
		}
	}
}
