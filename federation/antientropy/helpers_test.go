package antientropy

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/cityhub/cityhub/federation/topology"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/fsm"
	"github.com/cityhub/cityhub/tiers/store"
)

// testTopology: a city with two districts; d-1 has streets s-1 (with
// communities c-1, c-2) and s-2; d-2 has street s-3 (with community c-3).
const testTopology = `nodes:
  - {name: city, tier: city, jurisdiction: "320500", replicas: ["127.0.0.1:9001"]}
  - {name: d-1, tier: district, jurisdiction: "320501", parent: city, replicas: ["127.0.0.1:9002"]}
  - {name: d-2, tier: district, jurisdiction: "320502", parent: city, replicas: ["127.0.0.1:9003"]}
  - {name: s-1, tier: street, jurisdiction: "320501001", parent: d-1, replicas: ["127.0.0.1:9004"]}
  - {name: s-2, tier: street, jurisdiction: "320501002", parent: d-1, replicas: ["127.0.0.1:9005"]}
  - {name: s-3, tier: street, jurisdiction: "320502001", parent: d-2, replicas: ["127.0.0.1:9006"]}
  - {name: c-1, tier: community, jurisdiction: "320501001001", parent: s-1, replicas: ["127.0.0.1:9007"]}
  - {name: c-2, tier: community, jurisdiction: "320501001002", parent: s-1, replicas: ["127.0.0.1:9008"]}
  - {name: c-3, tier: community, jurisdiction: "320502001001", parent: s-3, replicas: ["127.0.0.1:9009"]}
`

func testTopo(tb testing.TB) *topology.Topology {
	tb.Helper()
	t, err := topology.Load([]byte(testTopology))
	if err != nil {
		tb.Fatal(err)
	}
	return t
}

// memLocal is a one-replica group without raft: commands go straight
// through a real FSM over an in-memory or on-disk store.
type memLocal struct {
	st  *store.Store
	f   *fsm.FSM
	mu  sync.Mutex
	idx uint64
}

func newMemLocal(tb testing.TB, t *topology.Topology, self, dir string) *memLocal {
	tb.Helper()
	m := openMemLocal(tb, t, self, dir)
	tb.Cleanup(func() { _ = m.st.Close() })
	return m
}

// openMemLocal is newMemLocal for a store the caller closes.
func openMemLocal(tb testing.TB, t *topology.Topology, self, dir string) *memLocal {
	tb.Helper()
	st, err := store.Open(store.Options{Dir: dir, InMemory: dir == "", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		tb.Fatal(err)
	}
	f, err := fsm.New(st, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		tb.Fatal(err)
	}
	m := &memLocal{st: st, f: f}
	if _, err := m.ApplyLocal(context.Background(), &pb.Command{Body: &pb.Command_SetTopology{SetTopology: &pb.SetTopology{Topology: t.Proto(self)}}}); err != nil {
		tb.Fatal(err)
	}
	return m
}

func (m *memLocal) IsLeader() bool           { return true }
func (m *memLocal) Now() time.Time           { return time.Now() }
func (m *memLocal) Applied() <-chan struct{} { return make(chan struct{}) }
func (m *memLocal) Store() *store.Store      { return m.st }
func (m *memLocal) ApplyLocal(_ context.Context, cmd *pb.Command) (*fsm.Result, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	data, err := proto.Marshal(cmd)
	if err != nil {
		return nil, err
	}
	m.idx++
	res := m.f.Apply(&raft.Log{Index: m.idx, Term: 1, Type: raft.LogCommand, Data: data}).(*fsm.Result)
	if res.Err != nil {
		return nil, res.Err
	}
	return res, nil
}

// put writes cases straight into the store, the way a bug or a restore
// would: no log, no outbox.
func (m *memLocal) put(tb testing.TB, cases ...*pb.Case) {
	tb.Helper()
	if err := m.st.Update(func(tx *store.Tx) error {
		for _, c := range cases {
			old, err := tx.GetCase(c.Id)
			if err != nil {
				old = nil
			}
			if err := tx.PutCase(old, c); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		tb.Fatal(err)
	}
}

func (m *memLocal) del(tb testing.TB, ids ...string) {
	tb.Helper()
	if err := m.st.Update(func(tx *store.Tx) error {
		for _, id := range ids {
			if err := tx.DeleteCase(id); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		tb.Fatal(err)
	}
}

func (m *memLocal) get(tb testing.TB, id string) *pb.Case {
	tb.Helper()
	c, err := m.st.GetCase(id)
	if err != nil {
		return nil
	}
	return c
}

// testCase is a plausible case: reported at the node of jurisdiction
// reportedAt, held by holder at epoch and version, with a short history.
func testCase(n int, reportedAt, holder string, epoch, version uint64, desc string) *pb.Case {
	c := &pb.Case{
		Id: fmt.Sprintf("%s-20261122-%06d", reportedAt, n), State: pb.State_STATE_DISPATCHED, Source: pb.Source_SOURCE_INSPECTOR,
		Kind: pb.Kind_KIND_EVENT, MajorCode: "01", MinorCode: "02", GridCode: "320501001001007",
		Description: desc, Location: &pb.Location{Lat: 31.3, Lng: 120.6, Address: "苏州市姑苏区人民路 88 号"},
		ReportedAtNode: reportedAt, Holder: holder, HolderEpoch: epoch, Version: version, OwnerUnit: "unit-" + holder,
		ReportedAt: timestamppb.New(timestampOf(n)),
	}
	for v := uint64(1); v <= version; v++ {
		c.History = append(c.History, &pb.HistoryEntry{
			Version: v, Action: pb.Action(1 + v%5), Actor: "actor-7", Role: pb.Role_ROLE_DISPATCHER, Note: "按时处置",
			At: timestamppb.New(timestampOf(n + int(v))),
		})
	}
	return c
}

func timestampOf(n int) time.Time {
	return time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC).Add(time.Duration(n) * time.Minute)
}

// lead runs r as its node's leader job would (node.AddLeaderJob) for one
// term that lasts until the test ends, then closes it.
func lead(t *testing.T, r *Runner) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.Lead(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		r.Close()
	})
}
