package api

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/auth"
	"github.com/cityhub/cityhub/tiers/node"
	"github.com/cityhub/cityhub/tiers/store"
)

// electedLeader is a replica that has just taken the lead: its store lacks
// the last entries its predecessor committed until a read barrier applies
// them (pending).
type electedLeader struct {
	st       *store.Store
	pending  []*pb.Case // applied by the barrier
	barriers int
	lost     bool // the lead is lost: the barrier fails
}

func (l *electedLeader) Store() *store.Store { return l.st }
func (l *electedLeader) IsLeader() bool      { return true }
func (l *electedLeader) ReadBarrier(_ context.Context, level pb.Consistency) error {
	l.barriers++
	if level != pb.Consistency_CONSISTENCY_LINEARIZABLE {
		return errors.New("want a linearizable barrier")
	}
	if l.lost {
		return node.ErrNotLeader
	}
	for _, c := range l.pending {
		if err := l.st.Update(func(tx *store.Tx) error { return tx.PutCase(nil, c) }); err != nil {
			return err
		}
	}
	l.pending = nil
	return nil
}

// TestScopeOnANewLeader: a case was dispatched to unit city-water and the
// leader that acknowledged the dispatch died; its successor has the entry
// but has not applied it when the unit's accept arrives. The scope is
// decided on the copy after a read barrier, so the unit may accept; a case
// still outside the unit's scope after the barrier is refused (one
// barrier, no more); and a leader that lost the lead answers Unavailable,
// not PermissionDenied. Before, the new leader refused the accept on its
// stale copy ("outside the unit scope"), a refusal the client could not
// retry (e2e-federation, 2026-12-04).
func TestScopeOnANewLeader(t *testing.T) {
	st, err := store.Open(store.Options{InMemory: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	const id = "320500-20261205-000041"
	filed := &pb.Case{Id: id, State: pb.State_STATE_FILED, Version: 2, Holder: "city", GridCode: "320505001001007"}
	if err := st.Update(func(tx *store.Tx) error { return tx.PutCase(nil, filed) }); err != nil {
		t.Fatal(err)
	}
	dispatched := &pb.Case{Id: id, State: pb.State_STATE_DISPATCHED, Version: 3, Holder: "city", GridCode: "320505001001007", OwnerUnit: "city-water"}
	unit := &auth.Principal{ID: "acct:fed-city-water", Kind: auth.KindPerson, Role: pb.Role_ROLE_HANDLING_UNIT, Unit: "city-water", Node: "city"}
	perm := auth.ActPermission(pb.Action_ACTION_ACCEPT)
	if auth.Authorize(unit, perm, filed) == nil {
		t.Fatal("the unit may accept the case before its dispatch: the test proves nothing")
	}
	if err := auth.Authorize(unit, perm, dispatched); err != nil {
		t.Fatalf("the unit may not accept the dispatched case: %v", err)
	}

	l := &electedLeader{st: st, pending: []*pb.Case{dispatched}}
	c, err := scopeCase(context.Background(), l, unit, perm, id)
	if err != nil {
		t.Fatalf("the accept on a leader that has not applied the dispatch: %v", err)
	}
	if c.OwnerUnit != "city-water" || l.barriers != 1 {
		t.Fatalf("decided on owner %q after %d barriers, want city-water after 1", c.OwnerUnit, l.barriers)
	}

	other := &auth.Principal{ID: "acct:fed-city-parks", Kind: auth.KindPerson, Role: pb.Role_ROLE_HANDLING_UNIT, Unit: "city-parks", Node: "city"}
	l.barriers = 0
	if _, err := scopeCase(context.Background(), l, other, perm, id); err != nil {
		t.Fatalf("reading the copy for another unit: %v", err)
	} else if auth.Authorize(other, perm, c) == nil {
		t.Fatal("another unit may accept city-water's case")
	}
	if l.barriers != 1 {
		t.Fatalf("a case outside the scope after the barrier: %d barriers, want 1", l.barriers)
	}

	if _, err := scopeCase(context.Background(), &electedLeader{st: st}, unit, perm, "320500-20261205-000999"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a case the leader does not have after the barrier: %v, want NotFound", err)
	}

	gone := &electedLeader{st: st, lost: true}
	_, err = scopeCase(context.Background(), gone, other, perm, id)
	if !errors.Is(err, node.ErrNotLeader) {
		t.Fatalf("a leader that lost the lead: %v, want ErrNotLeader", err)
	}
	if code := status.Code(toStatus(err)); code != codes.Unavailable {
		t.Fatalf("a leader that lost the lead answers %v, want Unavailable (try another replica)", code)
	}
}
