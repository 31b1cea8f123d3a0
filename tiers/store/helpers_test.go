package store_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/store"
)

// Fixed times: the tests never read the clock.
const (
	t0     int64 = 1_780_000_000_000
	minute int64 = 60_000
)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// openMem opens an in-memory store closed at the end of the test.
func openMem(tb testing.TB) *store.Store {
	tb.Helper()
	s, err := store.Open(store.Options{InMemory: true, Logger: quietLogger()})
	if err != nil {
		tb.Fatalf("open in-memory store: %v", err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

// openDisk opens an on-disk store in dir; the caller closes it.
func openDisk(tb testing.TB, dir string) *store.Store {
	tb.Helper()
	s, err := store.Open(store.Options{Dir: dir, Logger: quietLogger()})
	if err != nil {
		tb.Fatalf("open store in %s: %v", dir, err)
	}
	return s
}

func ts(ms int64) *timestamppb.Timestamp { return timestamppb.New(time.UnixMilli(ms)) }

func clone(c *pb.Case) *pb.Case { return proto.Clone(c).(*pb.Case) }

// caseID builds ids that sort like their sequence numbers.
func caseID(prefix string, seq int) string { return fmt.Sprintf("%s-20260501-%06d", prefix, seq) }

// mkCase builds a case with some history; deadlineMs 0 means no deadline.
func mkCase(id string, st pb.State, unit, grid string, deadlineMs int64) *pb.Case {
	c := &pb.Case{
		Id:          id,
		Source:      pb.Source_SOURCE_INSPECTOR,
		Kind:        pb.Kind_KIND_EVENT,
		MajorCode:   "01",
		MinorCode:   "02",
		GridCode:    grid,
		Description: "description of " + id,
		Media:       []string{"m/" + id + ".jpg"},
		Reporter:    &pb.Reporter{Name: "r", Phone: "123", Id: "insp-1"},
		Location:    &pb.Location{Lat: 31.25, Lng: 121.5, Address: "street " + id},
		OwnerUnit:   unit,
		State:       st,
		ReportedAt:  ts(t0),
		UpdatedAt:   ts(t0 + minute),
		Version:     2,
		History: []*pb.HistoryEntry{
			{Action: pb.Action_ACTION_REPORT, Actor: "insp-1", Role: pb.Role_ROLE_INSPECTOR, At: ts(t0), ToState: pb.State_STATE_REPORTED, Version: 1, RequestId: "req-" + id},
			{Action: pb.Action_ACTION_SUPERVISE, Actor: "sup-1", Role: pb.Role_ROLE_SUPERVISOR, At: ts(t0 + minute), FromState: pb.State_STATE_REPORTED, ToState: st, Version: 2},
		},
	}
	if deadlineMs != 0 {
		c.Deadline = ts(deadlineMs)
	}
	return c
}

// putCase writes c (moving it from old, nil for a new case) in its own transaction.
func putCase(tb testing.TB, s *store.Store, old, c *pb.Case) {
	tb.Helper()
	if err := s.Update(func(tx *store.Tx) error { return tx.PutCase(old, c) }); err != nil {
		tb.Fatalf("put case %s: %v", c.Id, err)
	}
}

// putCases writes new cases in transactions of at most 500.
func putCases(tb testing.TB, s *store.Store, cs []*pb.Case) {
	tb.Helper()
	for start := 0; start < len(cs); start += 500 {
		chunk := cs[start:min(start+500, len(cs))]
		if err := s.Update(func(tx *store.Tx) error {
			for _, c := range chunk {
				if err := tx.PutCase(nil, c); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			tb.Fatalf("put cases: %v", err)
		}
	}
}

func getRequest(tb testing.TB, s *store.Store, id string) (*pb.RequestRecord, error) {
	tb.Helper()
	var r *pb.RequestRecord
	err := s.View(func(tx *store.Tx) (err error) {
		r, err = tx.GetRequest(id)
		return err
	})
	return r, err
}

func nextSeq(tb testing.TB, s *store.Store, prefix, date string) uint64 {
	tb.Helper()
	var n uint64
	if err := s.Update(func(tx *store.Tx) (err error) {
		n, err = tx.NextSeq(prefix, date)
		return err
	}); err != nil {
		tb.Fatalf("next seq %s/%s: %v", prefix, date, err)
	}
	return n
}

func setApplied(tb testing.TB, s *store.Store, index, term uint64) {
	tb.Helper()
	if err := s.Update(func(tx *store.Tx) error { return tx.SetApplied(index, term) }); err != nil {
		tb.Fatalf("set applied: %v", err)
	}
}

// snapshotBytes streams a snapshot of s into memory.
func snapshotBytes(tb testing.TB, s *store.Store) []byte {
	tb.Helper()
	sn, err := s.Snapshot()
	if err != nil {
		tb.Fatalf("snapshot: %v", err)
	}
	defer sn.Release()
	var buf bytes.Buffer
	n, err := sn.WriteTo(&buf)
	if err != nil {
		tb.Fatalf("write snapshot: %v", err)
	}
	if n != int64(buf.Len()) {
		tb.Fatalf("WriteTo reported %d bytes, wrote %d", n, buf.Len())
	}
	return buf.Bytes()
}

type record struct{ key, val string }

// parseSnapshot decodes the documented snapshot format independently of
// the store: magic line, (uvarint len, key, uvarint len, value)*, a zero
// key length, then the CRC-32C (Castagnoli) of everything before it.
func parseSnapshot(tb testing.TB, b []byte) []record {
	tb.Helper()
	const magic = "cityhub-state-v1\n"
	if !bytes.HasPrefix(b, []byte(magic)) {
		tb.Fatalf("snapshot does not start with %q", magic)
	}
	r := bytes.NewReader(b[len(magic):])
	chunk := func() string {
		n, err := binary.ReadUvarint(r)
		if err != nil {
			tb.Fatalf("snapshot length: %v", err)
		}
		buf := make([]byte, n)
		if _, err := io.ReadFull(r, buf); err != nil {
			tb.Fatalf("snapshot chunk: %v", err)
		}
		return string(buf)
	}
	var out []record
	for {
		k := chunk()
		if k == "" {
			break
		}
		out = append(out, record{k, chunk()})
	}
	body := len(b) - r.Len()
	if r.Len() != 4 {
		tb.Fatalf("snapshot has %d bytes after the end marker, want 4 (CRC)", r.Len())
	}
	want := crc32.Checksum(b[:body], crc32.MakeTable(crc32.Castagnoli))
	if got := binary.BigEndian.Uint32(b[body:]); got != want {
		tb.Fatalf("snapshot CRC %08x, computed %08x", got, want)
	}
	for i := 1; i < len(out); i++ {
		if out[i-1].key >= out[i].key {
			tb.Fatalf("snapshot keys not strictly ascending: %q then %q", out[i-1].key, out[i].key)
		}
	}
	return out
}

// keysWithPrefix lists the snapshot keys of one family.
func keysWithPrefix(recs []record, prefix string) []string {
	var out []string
	for _, r := range recs {
		if strings.HasPrefix(r.key, prefix) {
			out = append(out, r.key)
		}
	}
	return out
}

// expectedIndexKeys is the key layout documented in keys.go, built here
// independently: every index entry a set of cases must have, and no other.
func expectedIndexKeys(cases []*pb.Case) []string {
	var out []string
	for _, c := range cases {
		out = append(out, fmt.Sprintf("s/%02d/%s", int32(c.State), c.Id))
		if c.OwnerUnit != "" {
			out = append(out, "u/"+c.OwnerUnit+"\x00"+c.Id)
		}
		if c.GridCode != "" {
			out = append(out, "g/"+c.GridCode+"/"+c.Id)
		}
		if c.Deadline != nil && swept(c.State) {
			k := binary.BigEndian.AppendUint64([]byte("d/"), uint64(c.Deadline.AsTime().UnixMilli()))
			out = append(out, string(k)+"/"+c.Id)
		}
	}
	slices.Sort(out)
	return out
}

func indexKeys(tb testing.TB, recs []record) []string {
	tb.Helper()
	var out []string
	for _, r := range recs {
		for _, p := range []string{"s/", "u/", "g/", "d/"} {
			if strings.HasPrefix(r.key, p) {
				if r.val != "" {
					tb.Errorf("index key %q has value %q, want none", r.key, r.val)
				}
				out = append(out, r.key)
			}
		}
	}
	slices.Sort(out)
	return out
}

// open is the test's own notion of an open case (DOMAIN.md: NOT_FILED,
// CLOSED and VOIDED are terminal).
func open(st pb.State) bool {
	switch st {
	case pb.State_STATE_NOT_FILED, pb.State_STATE_CLOSED, pb.State_STATE_VOIDED:
		return false
	}
	return true
}

// swept: an open case whose deadline runs (a suspended case's clock stands,
// so it is not in the deadline index).
func swept(st pb.State) bool { return open(st) && st != pb.State_STATE_SUSPENDED }

// checkIndexes asserts the store's index entries are exactly those of cases.
func checkIndexes(tb testing.TB, s *store.Store, cases []*pb.Case) {
	tb.Helper()
	got := indexKeys(tb, parseSnapshot(tb, snapshotBytes(tb, s)))
	want := expectedIndexKeys(cases)
	if !slices.Equal(got, want) {
		extra, missing := diff(got, want)
		tb.Fatalf("index entries differ:\n extra:   %q\n missing: %q", extra, missing)
	}
}

// checkCounts asserts CountByState matches cases (states with no case may
// be absent or zero).
func checkCounts(tb testing.TB, s *store.Store, cases []*pb.Case) {
	tb.Helper()
	want := map[pb.State]int64{}
	for _, c := range cases {
		want[c.State]++
	}
	got, err := s.CountByState()
	if err != nil {
		tb.Fatalf("count by state: %v", err)
	}
	for st := range pb.State_name {
		if got[pb.State(st)] != want[pb.State(st)] {
			tb.Errorf("count of %s = %d, want %d (all: %v)", pb.State(st), got[pb.State(st)], want[pb.State(st)], got)
		}
	}
	for st := range got {
		if _, known := pb.State_name[int32(st)]; !known {
			tb.Errorf("count for unknown state %d", st)
		}
	}
}

func diff(got, want []string) (extra, missing []string) {
	for _, g := range got {
		if !slices.Contains(want, g) {
			extra = append(extra, g)
		}
	}
	for _, w := range want {
		if !slices.Contains(got, w) {
			missing = append(missing, w)
		}
	}
	return extra, missing
}

// listAll pages through q and returns every id, checking page sizes and
// that the paging terminates.
func listAll(tb testing.TB, s *store.Store, q store.Query) []*pb.Case {
	tb.Helper()
	var out []*pb.Case
	size := q.PageSize
	if size <= 0 {
		size = 50
	}
	for pages := 0; ; pages++ {
		if pages > 100_000 {
			tb.Fatalf("paging does not end")
		}
		page, next, err := s.List(q)
		if err != nil {
			tb.Fatalf("list %+v: %v", q, err)
		}
		if len(page) > size {
			tb.Fatalf("page of %d cases, page size %d", len(page), size)
		}
		out = append(out, page...)
		if next == "" {
			return out
		}
		q.PageToken = next
	}
}

func ids(cs []*pb.Case) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.Id
	}
	return out
}

func mustNotFound(tb testing.TB, err error, what string) {
	tb.Helper()
	if !errors.Is(err, store.ErrNotFound) {
		tb.Fatalf("%s: err = %v, want ErrNotFound", what, err)
	}
}
