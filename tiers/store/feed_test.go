package store_test

import (
	"encoding/binary"
	"errors"
	"math"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/store"
)

func openFeed(tb testing.TB, o store.FeedOptions) *store.Store {
	tb.Helper()
	s, err := store.Open(store.Options{InMemory: true, Logger: quietLogger(), Feed: o})
	if err != nil {
		tb.Fatalf("open in-memory store: %v", err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

// changes reads every change after after.
func allChanges(tb testing.TB, s *store.Store, after uint64) []*pb.CaseChange {
	tb.Helper()
	var out []*pb.CaseChange
	for {
		page, _, _, err := s.Changes(after, 7)
		if err != nil {
			tb.Fatalf("changes after %d: %v", after, err)
		}
		if len(page) == 0 {
			return out
		}
		out = append(out, page...)
		after = page[len(page)-1].Revision
	}
}

// TestFeedRecordsEveryCaseWrite: each PutCase and DeleteCase is one change
// at the next revision, with what watchers filter on, the command's index
// and stamped time, in the same transaction as the case.
func TestFeedRecordsEveryCaseWrite(t *testing.T) {
	s := openMem(t)
	a := mkCase(caseID("320582", 1), pb.State_STATE_REPORTED, "", "320582110152102", 0)
	a.ReportedBy = "key:app"
	b := mkCase(caseID("320582", 2), pb.State_STATE_FILED, "", "320582110152103", 0)
	err := s.Update(func(tx *store.Tx) error {
		tx.SetChangeContext(7, t0)
		if err := tx.PutCase(nil, a); err != nil {
			return err
		}
		return tx.PutCase(nil, b)
	})
	if err != nil {
		t.Fatal(err)
	}
	a2 := clone(a)
	a2.State, a2.OwnerUnit, a2.Version, a2.Overdue, a2.Holder = pb.State_STATE_DISPATCHED, "huanwei-01", 3, true, "c-1"
	a2.History = append(a2.History, &pb.HistoryEntry{Action: pb.Action_ACTION_DISPATCH, Version: 3})
	err = s.Update(func(tx *store.Tx) error {
		tx.SetChangeContext(9, t0+minute)
		if err := tx.PutCase(a, a2); err != nil {
			return err
		}
		return tx.DeleteCase(b.Id)
	})
	if err != nil {
		t.Fatal(err)
	}
	// A refused transaction leaves the feed as it was.
	boom := errors.New("boom")
	if err := s.Update(func(tx *store.Tx) error {
		if err := tx.PutCase(a2, a2); err != nil {
			return err
		}
		return boom
	}); !errors.Is(err, boom) {
		t.Fatalf("update: %v", err)
	}

	got := allChanges(t, s, 0)
	if len(got) != 4 {
		t.Fatalf("%d changes, want 4: %v", len(got), got)
	}
	want := []struct {
		rev     uint64
		id      string
		kind    pb.ChangeKind
		state   pb.State
		version uint64
		index   uint64
		at      int64
	}{
		{1, a.Id, pb.ChangeKind_CHANGE_KIND_CREATED, pb.State_STATE_REPORTED, 2, 7, t0},
		{2, b.Id, pb.ChangeKind_CHANGE_KIND_CREATED, pb.State_STATE_FILED, 2, 7, t0},
		{3, a.Id, pb.ChangeKind_CHANGE_KIND_UPDATED, pb.State_STATE_DISPATCHED, 3, 9, t0 + minute},
		{4, b.Id, pb.ChangeKind_CHANGE_KIND_REMOVED, pb.State_STATE_FILED, 2, 9, t0 + minute},
	}
	for i, w := range want {
		g := got[i]
		if g.Revision != w.rev || g.CaseId != w.id || g.Kind != w.kind || g.State != w.state || g.Version != w.version ||
			g.LogIndex != w.index || g.At.AsTime().UnixMilli() != w.at {
			t.Errorf("change %d = %v, want %+v", i, g, w)
		}
	}
	if g := got[0]; g.ReportedBy != "key:app" || g.GridCode != a.GridCode || g.Action != pb.Action_ACTION_SUPERVISE {
		t.Errorf("first change lost its fields: %v", g)
	}
	if g := got[2]; g.OwnerUnit != "huanwei-01" || !g.Overdue || g.Holder != "c-1" || g.Action != pb.Action_ACTION_DISPATCH {
		t.Errorf("dispatch change lost its fields: %v", g)
	}
	head, oldest, err := s.FeedBounds()
	if err != nil || head != 4 || oldest != 1 {
		t.Fatalf("bounds = %d, %d, %v; want 4, 1", head, oldest, err)
	}
	if page, _, _, err := s.Changes(4, 10); err != nil || len(page) != 0 {
		t.Fatalf("changes after the head = %v, %v; want none", page, err)
	}
	if page, _, _, err := s.Changes(99, 10); err != nil || len(page) != 0 {
		t.Fatalf("changes past the head (a replica behind) = %v, %v; want none", page, err)
	}
}

// TestFeedWindowTrimsAndRefusesOldPositions: the feed keeps the last
// Window changes; a position before them is ErrCompacted with the bounds.
// A store reopened with a smaller window catches up a few changes at a
// time, never in one long transaction.
func TestFeedWindowTrimsAndRefusesOldPositions(t *testing.T) {
	dir := t.TempDir()
	s, err := store.Open(store.Options{Dir: dir, Logger: quietLogger(), Feed: store.FeedOptions{Window: 10}})
	if err != nil {
		t.Fatal(err)
	}
	c := mkCase(caseID("320582", 1), pb.State_STATE_REPORTED, "", "320582110152102", 0)
	for i := 0; i < 25; i++ {
		next := clone(c)
		next.Version++
		putCase(t, s, c, next)
		c = next
	}
	head, oldest, err := s.FeedBounds()
	if err != nil || head != 25 || oldest != 16 {
		t.Fatalf("bounds = %d, %d, %v; want 25, 16", head, oldest, err)
	}
	if got := allChanges(t, s, 15); len(got) != 10 || got[0].Revision != 16 || got[9].Revision != 25 {
		t.Fatalf("kept changes: %d from %v", len(got), got)
	}
	_, _, _, err = s.Changes(14, 10)
	var ce *store.CompactedError
	if !errors.As(err, &ce) || !errors.Is(err, store.ErrCompacted) || ce.Oldest != 16 || ce.Head != 25 || ce.After != 14 {
		t.Fatalf("position 14 = %v, want ErrCompacted naming oldest 16 and head 25", err)
	}
	if page, _, _, err := s.Changes(15, 1); err != nil || len(page) != 1 || page[0].Revision != 16 {
		t.Fatalf("the position just before the oldest kept = %v, %v; want revision 16", page, err)
	}

	// Reopened with a window of 3: each new change trims a few more,
	// until 3 are left; the numbering goes on.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = store.Open(store.Options{Dir: dir, Logger: quietLogger(), Feed: store.FeedOptions{Window: 3}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	oldests := []uint64{}
	for i := 0; i < 3; i++ {
		next := clone(c)
		next.Version++
		putCase(t, s, c, next)
		c = next
		_, oldest, err := s.FeedBounds()
		if err != nil {
			t.Fatal(err)
		}
		oldests = append(oldests, oldest)
	}
	if want := []uint64{20, 24, 26}; !slices.Equal(oldests, want) {
		t.Fatalf("oldest after each change with the smaller window = %v, want %v (4 at a time, then the window)", oldests, want)
	}
	if got := allChanges(t, s, 25); len(got) != 3 || got[0].Revision != 26 || got[2].Revision != 28 {
		t.Fatalf("kept changes: %v", got)
	}
}

// TestFeedMaxAgeTrimsByStampedTime: changes older than MaxAge, measured
// on the stamped time of the newest change (never a clock), are dropped.
func TestFeedMaxAgeTrimsByStampedTime(t *testing.T) {
	s := openFeed(t, store.FeedOptions{Window: 1000, MaxAge: time.Hour})
	c := mkCase(caseID("320582", 1), pb.State_STATE_REPORTED, "", "320582110152102", 0)
	write := func(atMs int64) {
		t.Helper()
		next := clone(c)
		next.Version++
		if err := s.Update(func(tx *store.Tx) error {
			tx.SetChangeContext(uint64(next.Version), atMs)
			return tx.PutCase(c, next)
		}); err != nil {
			t.Fatal(err)
		}
		c = next
	}
	for i := int64(0); i < 3; i++ {
		write(t0 + i*minute)
	}
	write(t0 + 62*minute) // the first three are now more than an hour old
	_, oldest, err := s.FeedBounds()
	if err != nil || oldest != 3 {
		t.Fatalf("oldest = %d, %v; want 3 (revisions 1 and 2 older than an hour)", oldest, err)
	}
}

// TestFeedOneRecordPerCommand: the changes of one command are one stored
// record (a page), whatever the transaction holds, and a read may begin
// and end inside a page.
func TestFeedOneRecordPerCommand(t *testing.T) {
	s := openMem(t)
	n := 0
	put := func(tx *store.Tx, k int) error {
		for range k {
			n++
			if err := tx.PutCase(nil, mkCase(caseID("320582", n), pb.State_STATE_REPORTED, "", "320582110152102", 0)); err != nil {
				return err
			}
		}
		return nil
	}
	if err := s.Update(func(tx *store.Tx) error {
		tx.SetChangeContext(7, t0)
		if err := put(tx, 3); err != nil {
			return err
		}
		tx.SetChangeContext(8, t0+minute)
		return put(tx, 2)
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Update(func(tx *store.Tx) error {
		tx.SetChangeContext(9, t0+2*minute)
		return put(tx, 1)
	}); err != nil {
		t.Fatal(err)
	}
	if recs, err := s.FeedRecords(); err != nil || !slices.Equal(recs, []uint64{1, 4, 6}) {
		t.Fatalf("stored records begin at %v (%v); want 1, 4, 6: one a command", recs, err)
	}
	got := allChanges(t, s, 0)
	var revs, idx []uint64
	for _, ch := range got {
		revs, idx = append(revs, ch.Revision), append(idx, ch.LogIndex)
	}
	if !slices.Equal(revs, []uint64{1, 2, 3, 4, 5, 6}) || !slices.Equal(idx, []uint64{7, 7, 7, 8, 8, 9}) {
		t.Fatalf("revisions %v with indexes %v; want 1..6 with 7 7 7 8 8 9", revs, idx)
	}
	if got[3].CaseId != caseID("320582", 4) || got[3].At.AsTime().UnixMilli() != t0+minute {
		t.Fatalf("change 4 = %v", got[3])
	}
	// Inside a page, across the next one's start.
	page, head, oldest, err := s.Changes(1, 3)
	if err != nil || head != 6 || oldest != 1 || len(page) != 3 || page[0].Revision != 2 || page[2].Revision != 4 {
		t.Fatalf("3 changes after 1 = %v (head %d, oldest %d, %v); want 2, 3, 4", page, head, oldest, err)
	}
}

// TestFeedReadsRecordsOfOneChange: a store written by a release that kept
// one record a change (the CaseChange itself, without its revision) reads
// on with the pages written after it, and trims both alike.
func TestFeedReadsRecordsOfOneChange(t *testing.T) {
	s := openFeed(t, store.FeedOptions{Window: 3})
	for rev := uint64(1); rev <= 3; rev++ {
		b, err := proto.Marshal(&pb.CaseChange{CaseId: caseID("320582", int(rev)), Version: 1, Kind: pb.ChangeKind_CHANGE_KIND_CREATED})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.RawSetStored(store.FeedKey(rev), b); err != nil {
			t.Fatal(err)
		}
	}
	meta := binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, 3), 1)
	if err := s.RawSetStored("F/m", meta); err != nil {
		t.Fatal(err)
	}
	if got := allChanges(t, s, 0); len(got) != 3 || got[2].Revision != 3 || got[2].CaseId != caseID("320582", 3) {
		t.Fatalf("the old records read as %v", got)
	}
	if err := s.Update(func(tx *store.Tx) error {
		tx.SetChangeContext(11, t0)
		for i := 4; i <= 5; i++ {
			if err := tx.PutCase(nil, mkCase(caseID("320582", i), pb.State_STATE_REPORTED, "", "320582110152102", 0)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// Head 5, window 3: records 1 and 2 go (3, 4 and 5 are the window).
	head, oldest, err := s.FeedBounds()
	if err != nil || head != 5 || oldest != 3 {
		t.Fatalf("bounds = %d, %d, %v; want 5, 3", head, oldest, err)
	}
	if recs, err := s.FeedRecords(); err != nil || !slices.Equal(recs, []uint64{3, 4}) {
		t.Fatalf("stored records begin at %v (%v); want 3 (old) and 4 (a page)", recs, err)
	}
	got := allChanges(t, s, 2)
	if len(got) != 3 || got[0].Revision != 3 || got[1].CaseId != caseID("320582", 4) || got[2].Revision != 5 || got[2].LogIndex != 11 {
		t.Fatalf("changes after 2 = %v", got)
	}
}

// TestFeedWindowKeepsWholePages: a page goes only when the changes after
// it are still the window, so the feed keeps at least Window changes and
// its oldest position is the first of a page.
func TestFeedWindowKeepsWholePages(t *testing.T) {
	s := openFeed(t, store.FeedOptions{Window: 4})
	n := 0
	var oldests []uint64
	for cmd := uint64(1); cmd <= 3; cmd++ {
		if err := s.Update(func(tx *store.Tx) error {
			tx.SetChangeContext(cmd, t0)
			for range 3 {
				n++
				if err := tx.PutCase(nil, mkCase(caseID("320582", n), pb.State_STATE_REPORTED, "", "320582110152102", 0)); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		_, oldest, err := s.FeedBounds()
		if err != nil {
			t.Fatal(err)
		}
		oldests = append(oldests, oldest)
	}
	// Pages 1-3, 4-6, 7-9: at head 6 dropping 1-3 would leave 3 < 4;
	// at head 9 dropping it leaves 6, dropping 4-6 would leave 3.
	if !slices.Equal(oldests, []uint64{1, 1, 4}) {
		t.Fatalf("oldest after each page = %v, want 1 1 4", oldests)
	}
	_, _, _, err := s.Changes(2, 10)
	if !errors.Is(err, store.ErrCompacted) {
		t.Fatalf("position 2 = %v, want ErrCompacted", err)
	}
	if got := allChanges(t, s, 3); len(got) != 6 || got[0].Revision != 4 {
		t.Fatalf("kept changes: %v", got)
	}
}

// TestFeedDamagedRecordIsAnError: a record that is neither a page nor a
// change is an error to the reader, never a panic or a silent skip.
func TestFeedDamagedRecordIsAnError(t *testing.T) {
	s := openMem(t)
	putCase(t, s, nil, mkCase(caseID("320582", 1), pb.State_STATE_REPORTED, "", "320582110152102", 0))
	putCase(t, s, nil, mkCase(caseID("320582", 2), pb.State_STATE_REPORTED, "", "320582110152102", 0))
	for _, bad := range [][]byte{{0x00, 0x0a, 0x7f}, {0x00, 0x12, 0x00}, {0x00}, {0xff, 0xff}} {
		if err := s.RawSetStored(store.FeedKey(2), bad); err != nil {
			t.Fatal(err)
		}
		if page, _, _, err := s.Changes(0, 10); err == nil {
			t.Fatalf("record %x read as %v, want an error", bad, page)
		}
	}
}

// TestAuditOneRecordPerCommand: a command's audit events are one stored
// record; Audit reads them one by one, a page token may fall inside a
// record, and a record of one event (written before pages) reads alike.
func TestAuditOneRecordPerCommand(t *testing.T) {
	s := openMem(t)
	ev := func(atMs int64, who, id string) *pb.AuditEvent {
		return &pb.AuditEvent{AtUnixMs: atMs, Principal: who, Action: "ACTION_REPORT", CaseId: id}
	}
	// A release before pages: one record an event (entry 3, items 0, 1).
	for n, id := range []string{"c-1", "c-2"} {
		b, err := proto.Marshal(ev(t0, "app", id))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.RawSetStored(store.AuditKey(t0, 3, n), b); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Update(func(tx *store.Tx) error {
		tx.SetChangeContext(7, t0+minute)
		for n, id := range []string{"c-3", "c-4", "c-5"} {
			who := "app"
			if n == 1 {
				who = "wang"
			}
			if err := tx.PutAudit(7, n, ev(t0+minute, who, id)); err != nil {
				return err
			}
		}
		// Item 4 after a refused item 3: a record of its own.
		if err := tx.PutAudit(7, 4, ev(t0+minute, "app", "c-6")); err != nil {
			return err
		}
		tx.SetChangeContext(8, t0+2*minute)
		return tx.PutAudit(8, 0, ev(t0+2*minute, "app", "c-7"))
	}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.AuditRecords(); err != nil || n != 5 {
		t.Fatalf("audit records = %d (%v), want 5: two old, entry 7's items 0-2 and 4, entry 8", n, err)
	}
	// One event a page of the listing, each token naming the next event.
	var got []string
	token := ""
	for range 10 {
		evs, next, err := s.Audit(0, math.MaxInt64, "", 1, token)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			got = append(got, e.CaseId)
		}
		if token = next; token == "" {
			break
		}
	}
	if want := []string{"c-1", "c-2", "c-3", "c-4", "c-5", "c-6", "c-7"}; !slices.Equal(got, want) {
		t.Fatalf("audit one at a time = %v, want %v", got, want)
	}
	// Two at a time, one principal, a time range.
	evs, next, err := s.Audit(t0+minute, t0+2*minute, "app", 2, "")
	if err != nil || len(evs) != 2 || evs[0].CaseId != "c-3" || evs[1].CaseId != "c-5" || next == "" {
		t.Fatalf("app's first two in the second minute = %v, %q, %v; want c-3, c-5 and a token", evs, next, err)
	}
	evs, next, err = s.Audit(t0+minute, t0+2*minute, "app", 2, next)
	if err != nil || len(evs) != 1 || evs[0].CaseId != "c-6" || next != "" {
		t.Fatalf("then = %v, %q, %v; want c-6 and no token", evs, next, err)
	}
}

// TestPagesFollowCommandsNotTransactions: the same commands applied in one
// transaction on one replica and one a transaction on another (raft hands
// each replica its entries in batches of its own) store the same feed and
// audit records, byte for byte, and the same bounds.
func TestPagesFollowCommandsNotTransactions(t *testing.T) {
	type command struct {
		index uint64
		cases []*pb.Case
	}
	var cmds []command
	n := 0
	for i, k := range []int{3, 1, 2, 4} {
		c := command{index: uint64(10 + i)}
		for range k {
			n++
			c.cases = append(c.cases, mkCase(caseID("320582", n), pb.State_STATE_REPORTED, "", "320582110152102", 0))
		}
		cmds = append(cmds, c)
	}
	apply := func(tx *store.Tx, c command) error {
		tx.SetChangeContext(c.index, t0+int64(c.index)*minute)
		for item, cs := range c.cases {
			if err := tx.PutCase(nil, cs); err != nil {
				return err
			}
			ev := &pb.AuditEvent{AtUnixMs: t0 + int64(c.index)*minute, Principal: "app", CaseId: cs.Id}
			if err := tx.PutAudit(c.index, item, ev); err != nil {
				return err
			}
		}
		return nil
	}
	// Window 6: both replicas trim, at the same commands.
	one, each := openFeed(t, store.FeedOptions{Window: 6}), openFeed(t, store.FeedOptions{Window: 6})
	if err := one.Update(func(tx *store.Tx) error {
		for _, c := range cmds {
			if err := apply(tx, c); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, c := range cmds {
		if err := each.Update(func(tx *store.Tx) error { return apply(tx, c) }); err != nil {
			t.Fatal(err)
		}
	}
	for _, prefix := range []string{"F/", "a/"} {
		a, err := one.RawRecords(prefix)
		if err != nil {
			t.Fatal(err)
		}
		b, err := each.RawRecords(prefix)
		if err != nil {
			t.Fatal(err)
		}
		if len(a) == 0 || !slices.Equal(a, b) {
			t.Fatalf("%s records differ:\n one transaction: %q\n one a command:   %q", prefix, a, b)
		}
	}
	// The feed's records: pages of 2 and 4 are left (the 3 and the 1
	// trimmed: 6 changes kept at least, whole pages).
	if recs, err := each.FeedRecords(); err != nil || !slices.Equal(recs, []uint64{5, 7}) {
		t.Fatalf("feed records begin at %v (%v); want 5 and 7", recs, err)
	}
	if n, err := each.AuditRecords(); err != nil || n != 4 {
		t.Fatalf("audit records = %d (%v), want 4: one a command", n, err)
	}
}
