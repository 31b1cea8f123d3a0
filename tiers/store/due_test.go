package store_test

import (
	"time"

	"slices"
	"testing"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/store"
)

func TestDueAfterPagesInDeadlineOrder(t *testing.T) {
	s := openMem(t)
	var cases []*pb.Case
	for i := 1; i <= 7; i++ {
		cases = append(cases, mkCase(caseID("110105", i), pb.State_STATE_DISPATCHED, "unit-a", "110105001001001", t0+int64(8-i)*minute))
	}
	cases = append(cases, mkCase(caseID("110105", 8), pb.State_STATE_SUSPENDED, "unit-a", "110105001001001", t0))            // clock stands
	cases = append(cases, mkCase(caseID("110105", 9), pb.State_STATE_DISPATCHED, "unit-a", "110105001001001", t0+60*minute)) // not yet due
	putCases(t, s, cases)
	var got []string
	var after *store.DueCase
	for {
		page, err := s.DueAfter(msTime(t0+10*minute), after, 3)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range page {
			got = append(got, d.ID)
		}
		if len(page) < 3 {
			break
		}
		after = &page[len(page)-1]
	}
	want := []string{caseID("110105", 7), caseID("110105", 6), caseID("110105", 5), caseID("110105", 4), caseID("110105", 3), caseID("110105", 2), caseID("110105", 1)}
	if !slices.Equal(got, want) {
		t.Fatalf("paged due: %q, want %q", got, want)
	}
}

func TestCountOverdue(t *testing.T) {
	s := openMem(t)
	a := mkCase(caseID("110105", 1), pb.State_STATE_DISPATCHED, "unit-a", "110105001001001", t0)
	a.Overdue = true
	b := mkCase(caseID("110105", 2), pb.State_STATE_CLOSED, "unit-a", "110105001001001", t0)
	b.Overdue = true // closed: off the list
	c := mkCase(caseID("110105", 3), pb.State_STATE_ACCEPTED, "unit-a", "110105001001001", t0)
	putCases(t, s, []*pb.Case{a, b, c})
	if n, err := s.CountOverdue(); err != nil || n != 1 {
		t.Fatalf("CountOverdue = %d, %v; want 1", n, err)
	}
	got := listAll(t, s, store.Query{Overdue: true})
	if len(got) != 1 || got[0].Id != a.Id {
		t.Fatalf("overdue list %q", ids(got))
	}
	// A marked case is off the deadline index.
	if due, _ := s.Due(msTime(t0+time.Hour.Milliseconds()), 10); len(due) != 1 || due[0].ID != c.Id {
		t.Fatalf("due %v, want only the unmarked open case", due)
	}
}
