package fsm_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/fsm"
	"github.com/cityhub/cityhub/tiers/store"
)

// Leader stamps used by the tests: far from today, so a value taken from
// the clock could never pass for one of them.
const (
	stamp  int64 = 1_000_000_000_000 // 2001-09-09
	minute int64 = 60_000
)

const (
	prefix = "110105"
	date   = "20010909"
)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func openStore(tb testing.TB) *store.Store {
	tb.Helper()
	s, err := store.Open(store.Options{InMemory: true, Logger: quietLogger()})
	if err != nil {
		tb.Fatalf("open store: %v", err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

func newFSM(tb testing.TB, s *store.Store) *fsm.FSM {
	tb.Helper()
	f, err := fsm.New(s, quietLogger())
	if err != nil {
		tb.Fatalf("new fsm: %v", err)
	}
	return f
}

func encode(tb testing.TB, cmd *pb.Command) []byte {
	tb.Helper()
	b, err := proto.Marshal(cmd)
	if err != nil {
		tb.Fatalf("marshal command: %v", err)
	}
	return b
}

func entry(index uint64, data []byte) *raft.Log {
	return &raft.Log{Index: index, Term: 1 + index/50, Type: raft.LogCommand, Data: data}
}

func timeMs(ms int64) time.Time { return time.UnixMilli(ms) }

func caseID(seq int) string { return fmt.Sprintf("%s-%s-%06d", prefix, date, seq) }

// report builds a ReportCase command the way the leader stamps it.
func report(reqID string, at int64, desc string) *pb.Command {
	return &pb.Command{
		RequestId:     reqID,
		StampedUnixMs: at,
		StampedBy:     "node-1",
		Body: &pb.Command_Report{Report: &pb.ReportCase{
			Case: &pb.Case{
				Source:      pb.Source_SOURCE_INSPECTOR,
				Kind:        pb.Kind_KIND_EVENT,
				MajorCode:   "01",
				MinorCode:   "02",
				GridCode:    "110105001001001",
				Description: desc,
				Location:    &pb.Location{Lat: 39.9, Lng: 116.4, Address: "somewhere"},
			},
			IdPrefix: prefix,
			IdDate:   date,
			Actor:    "insp-1",
			Role:     pb.Role_ROLE_INSPECTOR,
			Note:     "seen on patrol",
		}},
	}
}

// act builds a CaseAction command; role defaults to the first allowed one.
func act(reqID string, at int64, a *pb.CaseAction) *pb.Command {
	if a.Actor == "" {
		a.Actor = "actor-1"
	}
	return &pb.Command{RequestId: reqID, StampedUnixMs: at, StampedBy: "node-1", Body: &pb.Command_Act{Act: a}}
}

func registerNode(id string) *pb.Command {
	return &pb.Command{Body: &pb.Command_RegisterNode{RegisterNode: &pb.RegisterNode{NodeId: id, RaftAddr: id + ":7000", GrpcAddr: id + ":7001", HttpAddr: id + ":7002"}}}
}

// result asserts that an Apply response is a *fsm.Result.
func result(tb testing.TB, v any) *fsm.Result {
	tb.Helper()
	r, ok := v.(*fsm.Result)
	if !ok || r == nil {
		tb.Fatalf("apply returned %T %v, want *fsm.Result", v, v)
	}
	return r
}

// mustApply applies cmd at index and fails unless it succeeded.
func mustApply(tb testing.TB, f *fsm.FSM, index uint64, cmd *pb.Command) *fsm.Result {
	tb.Helper()
	r := result(tb, f.Apply(entry(index, encode(tb, cmd))))
	if r.Err != nil {
		tb.Fatalf("apply %d: %v", index, r.Err)
	}
	return r
}

// refused applies cmd at index and fails unless it was refused with want.
func refused(tb testing.TB, f *fsm.FSM, index uint64, cmd *pb.Command, want error) *fsm.Result {
	tb.Helper()
	r := result(tb, f.Apply(entry(index, encode(tb, cmd))))
	if !errors.Is(r.Err, want) {
		tb.Fatalf("apply %d: err = %v, want %v", index, r.Err, want)
	}
	if r.Case != nil || r.Replayed {
		tb.Fatalf("apply %d: refused command returned case %v, replayed %v", index, r.Case, r.Replayed)
	}
	return r
}

// snapshotBytes streams a snapshot of the store.
func snapshotBytes(tb testing.TB, s *store.Store) []byte {
	tb.Helper()
	sn, err := s.Snapshot()
	if err != nil {
		tb.Fatalf("snapshot: %v", err)
	}
	defer sn.Release()
	var buf bytes.Buffer
	if _, err := sn.WriteTo(&buf); err != nil {
		tb.Fatalf("write snapshot: %v", err)
	}
	return buf.Bytes()
}

// records decodes a snapshot stream (format documented in store) into its
// key/value records, leaving out the applied index when withoutApplied.
func records(tb testing.TB, s *store.Store, withoutApplied bool) map[string]string {
	tb.Helper()
	b := snapshotBytes(tb, s)
	const magic = "cityhub-state-v1\n"
	if !bytes.HasPrefix(b, []byte(magic)) {
		tb.Fatal("snapshot without magic")
	}
	r := bytes.NewReader(b[len(magic):])
	chunk := func() string {
		var n uint64
		var shift uint
		for {
			c, err := r.ReadByte()
			if err != nil {
				tb.Fatalf("snapshot: %v", err)
			}
			n |= uint64(c&0x7f) << shift
			if c < 0x80 {
				break
			}
			shift += 7
		}
		buf := make([]byte, n)
		if _, err := io.ReadFull(r, buf); err != nil {
			tb.Fatalf("snapshot: %v", err)
		}
		return string(buf)
	}
	out := map[string]string{}
	for {
		k := chunk()
		if k == "" {
			break
		}
		v := chunk()
		// The applied index, the dashboard's mark (D/n follows it) and
		// the count of request records move with every entry that
		// records its request.
		if withoutApplied && (k == "m/applied" || k == "D/n" || k == "m/requests") {
			continue
		}
		out[k] = v
	}
	return out
}

// sameRecords fails with the differing keys when a and b differ.
func sameRecords(tb testing.TB, what string, a, b map[string]string) {
	tb.Helper()
	var diffs []string
	for k, v := range a {
		if w, ok := b[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("-%q", k))
		} else if v != w {
			diffs = append(diffs, fmt.Sprintf("~%q", k))
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("+%q", k))
		}
	}
	if len(diffs) > 0 {
		tb.Fatalf("%s: store changed: %s", what, strings.Join(diffs, " "))
	}
}

func allCases(tb testing.TB, s *store.Store) []*pb.Case {
	tb.Helper()
	var out []*pb.Case
	q := store.Query{PageSize: 500, WithHistory: true}
	for {
		page, next, err := s.List(q)
		if err != nil {
			tb.Fatalf("list: %v", err)
		}
		out = append(out, page...)
		if next == "" {
			return out
		}
		q.PageToken = next
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

func checkApplied(tb testing.TB, f *fsm.FSM, s *store.Store, index, term uint64) {
	tb.Helper()
	if got := f.AppliedIndex(); got != index {
		tb.Fatalf("AppliedIndex = %d, want %d", got, index)
	}
	idx, tm, err := s.Applied()
	if err != nil || idx != index || tm != term {
		tb.Fatalf("stored applied = %d, %d, %v; want %d, %d", idx, tm, err, index, term)
	}
}

// memSink is an in-memory raft.SnapshotSink.
type memSink struct {
	buf       bytes.Buffer
	failWrite error
	closed    int
	canceled  int
}

func (s *memSink) Write(p []byte) (int, error) {
	if s.failWrite != nil {
		return 0, s.failWrite
	}
	return s.buf.Write(p)
}
func (s *memSink) Close() error  { s.closed++; return nil }
func (s *memSink) ID() string    { return "mem-1" }
func (s *memSink) Cancel() error { s.canceled++; return nil }

var _ raft.SnapshotSink = (*memSink)(nil)

// trackedReader records whether Restore closed it.
type trackedReader struct {
	io.Reader
	closed int
}

func (r *trackedReader) Close() error { r.closed++; return nil }
