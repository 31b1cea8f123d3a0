package node

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/deadline"
	"github.com/cityhub/cityhub/tiers/fsm"
	"github.com/cityhub/cityhub/tiers/nearby"
	"github.com/cityhub/cityhub/tiers/store"
)

type fixedClock struct{ t time.Time }

func (c fixedClock) Now() time.Time { return c.t }

// The leader stamps a report's fingerprint, last, over whatever a
// forwarding replica put there: the one Apply would compute.
func TestStampSetsTheReportsFingerprint(t *testing.T) {
	n := &Node{cfg: Config{ID: "n1", Jurisdiction: "110105", Location: time.UTC, Clock: fixedClock{time.UnixMilli(1_765_000_000_000)}}}
	cmd := &pb.Command{RequestId: "r1", Fingerprint: []byte("from a forwarding replica"),
		Body: &pb.Command_Report{Report: &pb.ReportCase{Case: &pb.Case{Description: "暴露垃圾", GridCode: "110105001001001"}}}}
	n.stamp(cmd, nil)
	unstamped := proto.Clone(cmd).(*pb.Command)
	unstamped.Fingerprint = nil
	fsm.StampFingerprint(unstamped)
	if len(cmd.Fingerprint) != 32 || !bytes.Equal(cmd.Fingerprint, unstamped.Fingerprint) {
		t.Fatalf("stamped %x, want %x", cmd.Fingerprint, unstamped.Fingerprint)
	}
	if cmd.GetReport().IdPrefix != "110105" || cmd.GetReport().IdDate == "" {
		t.Fatalf("report not stamped: %v", cmd.GetReport())
	}
}

// stampers runs stamps in order (replica's composition, which this package
// cannot import).
type stampers []Stamper

func (s stampers) Stamp(now time.Time, cmd *pb.Command, read func(string) (*pb.Case, error)) {
	for _, st := range s {
		st.Stamp(now, cmd, read)
	}
}

// A report is stamped in place, not on a copy (stampsInPlace): stamping a
// report the leader stamped already, with another clock and another
// state, must give exactly what stamping the client's report afresh
// gives, or a retry through Propose would carry the first attempt's
// stamps. The real stampers run: the deadline policy and the recurrence
// look-up, which finds a closed case only at the second stamp.
func TestReportStampedTwiceIsStampedOnce(t *testing.T) {
	policy, st, finder := realStampers(t)
	clock := &fixedClock{time.Date(2026, 12, 7, 23, 59, 0, 0, time.UTC)}
	n := &Node{cfg: Config{ID: "n1", Jurisdiction: "320582", Location: time.UTC, Clock: clock,
		Stamper: stampers{policy, finder}}}

	const grid = "320582110152102"
	client := &pb.Command{RequestId: "r-twice", Body: &pb.Command_Report{Report: &pb.ReportCase{Case: &pb.Case{
		Kind: pb.Kind_KIND_EVENT, MajorCode: "01", MinorCode: "02", GridCode: grid, Description: "暴露垃圾",
		Location: &pb.Location{Lat: 31.30, Lng: 120.60}}}}}
	batch := &pb.Command{RequestId: "b-twice", Body: &pb.Command_ReportBatch{ReportBatch: &pb.ReportBatch{Items: []*pb.ReportBatchItem{
		{RequestId: "b-twice-1", Report: proto.Clone(client.GetReport()).(*pb.ReportCase)},
		{RequestId: "b-twice-2"}, // no report: Apply refuses it
	}}}}
	for _, orig := range []*pb.Command{client, batch} {
		cmd := proto.Clone(orig).(*pb.Command)
		n.stamp(cmd, st.GetCase)
		first := proto.Clone(cmd).(*pb.Command)

		// Another day, and a closed case at the spot since.
		clock.t = time.Date(2026, 12, 8, 0, 1, 0, 0, time.UTC)
		closed := &pb.Case{Id: "320582-20261201-000001", State: pb.State_STATE_CLOSED, Kind: pb.Kind_KIND_EVENT,
			MajorCode: "01", MinorCode: "02", GridCode: grid, Location: &pb.Location{Lat: 31.30, Lng: 120.60},
			ReportedAt: timestamppb.New(clock.t.Add(-72 * time.Hour)), ClosedAt: timestamppb.New(clock.t.Add(-time.Hour))}
		if err := st.Update(func(tx *store.Tx) error { return tx.PutCase(nil, closed) }); err != nil {
			t.Fatal(err)
		}
		n.stamp(cmd, st.GetCase)
		fresh := proto.Clone(orig).(*pb.Command)
		n.stamp(fresh, st.GetCase)
		if !proto.Equal(cmd, fresh) {
			t.Fatalf("%s stamped twice:\n%v\nstamped once:\n%v", orig.RequestId, cmd, fresh)
		}
		// And the second stamp changed what the state and the clock
		// decide (else the comparison proves little).
		if proto.Equal(first, fresh) {
			t.Fatalf("%s: the second stamp changed nothing: %v", orig.RequestId, fresh)
		}
		r := fresh.GetReport()
		if b := fresh.GetReportBatch(); b != nil {
			r = b.Items[0].GetReport()
		}
		if r.GetCase().GetRecurrenceOf() != closed.Id || r.IdDate != "20261208" {
			t.Fatalf("%s: not stamped with the new state: %v", orig.RequestId, r)
		}
		if err := st.Update(func(tx *store.Tx) error { return tx.DeleteCase(closed.Id) }); err != nil {
			t.Fatal(err)
		}
		clock.t = time.Date(2026, 12, 7, 23, 59, 0, 0, time.UTC)
	}
}

// ownerStamper stands for the replica's owner stamper (tiers/replica,
// which this package cannot import): it writes the report's owner.
type ownerStamper struct{}

func (ownerStamper) Stamp(_ time.Time, cmd *pb.Command, _ func(string) (*pb.Case, error)) {
	if r := cmd.GetReport(); r != nil {
		r.Ownership = &pb.Ownership{Unit: "320582-sanitation", Rule: "r1"}
	}
}

// A report stamped in place by an attempt that failed (leadership moved)
// is put back as the client sent it before the next attempt (Propose):
// that attempt may be forwarded, and a leader refuses a forwarded command
// that carries stamps. Every stamp is saved and restored: with the real
// deadline policy and recurrence look-up (which finds a closed case) and
// an owner, stamping then restoring gives the client's command exactly.
func TestReportStampsPutBack(t *testing.T) {
	policy, st, finder := realStampers(t)
	now := time.Date(2026, 12, 8, 0, 1, 0, 0, time.UTC)
	n := &Node{cfg: Config{ID: "n1", Jurisdiction: "320582", Location: time.UTC, Clock: fixedClock{now},
		Stamper: stampers{policy, finder, ownerStamper{}}}}
	const grid = "320582110152102"
	closed := &pb.Case{Id: "320582-20261201-000001", State: pb.State_STATE_CLOSED, Kind: pb.Kind_KIND_EVENT,
		MajorCode: "01", MinorCode: "02", GridCode: grid, Location: &pb.Location{Lat: 31.30, Lng: 120.60},
		ReportedAt: timestamppb.New(now.Add(-72 * time.Hour)), ClosedAt: timestamppb.New(now.Add(-time.Hour))}
	if err := st.Update(func(tx *store.Tx) error { return tx.PutCase(nil, closed) }); err != nil {
		t.Fatal(err)
	}
	client := &pb.Command{RequestId: "r-back", Body: &pb.Command_Report{Report: &pb.ReportCase{Actor: "clerk-1", Role: pb.Role_ROLE_INTAKE_CLERK,
		Case: &pb.Case{Kind: pb.Kind_KIND_EVENT, MajorCode: "01", MinorCode: "02", GridCode: grid, Description: "暴露垃圾",
			Location: &pb.Location{Lat: 31.30, Lng: 120.60}}}}}
	cmd := proto.Clone(client).(*pb.Command)
	saved := saveReportStamps(cmd)
	n.stamp(cmd, st.GetCase)
	r := cmd.GetReport()
	if cmd.StampedUnixMs == 0 || len(cmd.Fingerprint) == 0 || r.IdDate == "" || r.StageDeadlineUnixMs == 0 ||
		r.Ownership == nil || r.Case.RecurrenceOf != closed.Id {
		t.Fatalf("not every stamp was written (the test proves little): %v", cmd)
	}
	saved.restore(cmd)
	if !proto.Equal(cmd, client) {
		t.Fatalf("restored:\n%v\nthe client's:\n%v", cmd, client)
	}
	// Not a report: nothing saved, nothing restored.
	act := &pb.Command{RequestId: "a", Body: &pb.Command_Act{Act: &pb.CaseAction{CaseId: closed.Id, StageDeadlineUnixMs: 7}}}
	saveReportStamps(&pb.Command{}).restore(act)
	if act.GetAct().StageDeadlineUnixMs != 7 {
		t.Fatalf("an action changed by a report's restore: %v", act)
	}
}

// Propose's retries start from the client's report: an attempt that
// stamped it in place as leader and then lost the leadership
// (ErrNotLeader) leaves no stamp in the command the next attempt sends
// (forwarded, it would be refused).
func TestProposeRetriesTheUnstampedReport(t *testing.T) {
	n := &Node{cfg: Config{ID: "n1", Jurisdiction: "320582", Location: time.UTC, Clock: fixedClock{time.UnixMilli(1_765_000_000_000)},
		Stamper: ownerStamper{}}, done: make(chan struct{})}
	client := &pb.Command{RequestId: "r-retry", Body: &pb.Command_Report{Report: &pb.ReportCase{Actor: "clerk-1", Role: pb.Role_ROLE_INTAKE_CLERK,
		Case: &pb.Case{Kind: pb.Kind_KIND_EVENT, MajorCode: "01", MinorCode: "02", GridCode: "320582110152102", Description: "暴露垃圾"}}}}
	cmd := proto.Clone(client).(*pb.Command)
	attempts := 0
	res, err := n.retry(context.Background(), cmd, func(_ context.Context, c *pb.Command) (*fsm.Result, error) {
		attempts++
		if attempts == 1 {
			n.stamp(c, nil) // as the leader, in place
			return nil, ErrNotLeader
		}
		if !proto.Equal(c, client) {
			return nil, fmt.Errorf("attempt %d sent a stamped command: %v", attempts, c)
		}
		return &fsm.Result{}, nil
	})
	if err != nil || res == nil || attempts != 2 {
		t.Fatalf("after %d attempts: %v, %v", attempts, res, err)
	}
}

// realStampers are the deadline policy of config/deadlines/default.yaml
// and a recurrence look-up over an in-memory store (closed at the end of
// the test): the stampers a replica runs for a report, but the owner's.
func realStampers(t *testing.T) (*deadline.Policy, *store.Store, *nearby.Finder) {
	t.Helper()
	raw, err := os.ReadFile("../../config/deadlines/default.yaml")
	if err != nil {
		t.Fatal(err)
	}
	policy, err := deadline.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(store.Options{InMemory: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	finder := nearby.New(nearby.Options{Radius: 50, DuplicateWindow: 72 * time.Hour, RecurrenceWindow: 30 * 24 * time.Hour})
	finder.SetStore(st)
	return policy, st, finder
}
