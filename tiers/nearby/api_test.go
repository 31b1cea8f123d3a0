package nearby_test

import (
	"context"
	"slices"
	"testing"
	"time"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/replica/testcluster"
)

// TestReportOffersDuplicatesAndLinksRecurrence: through a running node, a
// second report at the same place is offered the first as a duplicate, and
// a report after the first case closed is linked to it (反弹).
func TestReportOffersDuplicatesAndLinksRecurrence(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test")
	}
	c := testcluster.New(t, 1)
	cl := c.Cases(0)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rep := func(rid string) *pb.CaseResponse {
		t.Helper()
		r, err := cl.ReportCase(ctx, &pb.ReportCaseRequest{RequestId: rid, Actor: "insp", Role: pb.Role_ROLE_INSPECTOR, Source: pb.Source_SOURCE_INSPECTOR,
			Kind: pb.Kind_KIND_EVENT, MajorCode: "01", MinorCode: "02", GridCode: "320582110152102", Description: "garbage",
			Location: &pb.Location{Lat: 31.3, Lng: 120.6}})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	a := rep("n-1")
	if len(a.PossibleDuplicates) != 0 || a.Case.RecurrenceOf != "" {
		t.Fatalf("first report: duplicates %v, recurrence %q", a.PossibleDuplicates, a.Case.RecurrenceOf)
	}
	b := rep("n-2")
	if !slices.Equal(b.PossibleDuplicates, []string{a.Case.Id}) {
		t.Fatalf("second report: duplicates %v, want [%s]", b.PossibleDuplicates, a.Case.Id)
	}
	if _, err := cl.SelfHandle(ctx, &pb.ActRequest{CaseId: a.Case.Id, RequestId: "n-3", Actor: "insp", Role: pb.Role_ROLE_INSPECTOR}); err != nil {
		t.Fatal(err)
	}
	c3 := rep("n-4")
	if c3.Case.RecurrenceOf != a.Case.Id || !slices.Equal(c3.PossibleDuplicates, []string{b.Case.Id}) {
		t.Fatalf("third report: recurrence of %q (want %s), duplicates %v (want [%s])", c3.Case.RecurrenceOf, a.Case.Id, c3.PossibleDuplicates, b.Case.Id)
	}
	// A retry of the same report returns the first answer, link included.
	again := rep("n-4")
	if !again.Replayed || again.Case.RecurrenceOf != a.Case.Id {
		t.Fatalf("replayed report: replayed %v, recurrence %q", again.Replayed, again.Case.RecurrenceOf)
	}
}
