package replica_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/protobuf/proto"

	"github.com/cityhub/cityhub/config"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/node"
	"github.com/cityhub/cityhub/tiers/raftlog"
	"github.com/cityhub/cityhub/tiers/replica/testcluster"
	"github.com/cityhub/cityhub/tiers/store"
)

// stoppedNode is the data directory a stopped 1-replica tier left, with
// what it held: its cases, the request ids it acknowledged and the case
// each created, and its raft log's bounds and segment files.
type stoppedNode struct {
	cfg         config.Config
	dir         string
	cases       map[string]*pb.Case
	requests    map[string]string // request id -> case id
	reports     map[string]*pb.ReportCaseRequest
	snapshotIdx uint64
	first, last uint64
}

// damageConfig runs the replica with small raft-wal segments (the log has
// a head and a tail segment to damage) and a short trail of log entries
// behind each snapshot (so the log is compacted and the state cannot be
// replayed from the first entry).
func damageConfig(c *config.Config) {
	c.Raft.WALSegmentSize = 64 << 10
	c.Raft.TrailingLogs = 20
	c.Raft.SnapshotThreshold = 1 << 20 // only the test's own snapshot
	c.Raft.SnapshotInterval = time.Hour
}

// newStoppedNode writes cases to a 1-replica tier, takes a snapshot
// (raft compacts its log behind it), writes more, and stops the replica.
func newStoppedNode(t *testing.T, mods ...testcluster.Option) *stoppedNode {
	t.Helper()
	c := testcluster.New(t, 1, append([]testcluster.Option{damageConfig}, mods...)...)
	sn := &stoppedNode{cfg: c.Members[0].Cfg, dir: c.Members[0].Cfg.Node.DataDir,
		requests: map[string]string{}, reports: map[string]*pb.ReportCaseRequest{}}
	cl := c.Cases(0)
	write := func(from, to int) {
		for k := from; k < to; k++ {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			req := report(fmt.Sprintf("dmg-%d", k), fmt.Sprintf("damage case %d with some words to make the log longer: %s", k, strings.Repeat("路面破损 ", 20)))
			resp, err := cl.ReportCase(ctx, req)
			if err == nil && k%3 == 0 {
				_, err = cl.Act(ctx, &pb.ActRequest{CaseId: resp.Case.Id, RequestId: fmt.Sprintf("dmg-file-%d", k), Action: pb.Action_ACTION_FILE,
					Actor: "lead-1", Role: pb.Role_ROLE_SHIFT_LEADER})
			}
			cancel()
			if err != nil {
				t.Fatalf("write %d: %v", k, err)
			}
			sn.requests[req.RequestId] = resp.Case.Id
			sn.reports[req.RequestId] = req
		}
	}
	write(0, 150)
	r := c.Members[0].R
	if err := r.Node.Raft().Snapshot().Error(); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	sn.snapshotIdx = r.Node.Raft().LastIndex()
	write(150, 450)
	sn.cases = casesOf(t, r.Node.Store())
	c.Stop(0)
	sn.first, sn.last = logBounds(t, sn.dir)
	if sn.first <= 1 {
		t.Fatalf("the log was not compacted: first index %d", sn.first)
	}
	if len(segments(t, sn.dir)) < 3 {
		t.Fatalf("want several raft-wal segments, have %v", segments(t, sn.dir))
	}
	return sn
}

func casesOf(t *testing.T, st *store.Store) map[string]*pb.Case {
	t.Helper()
	out := map[string]*pb.Case{}
	tok := ""
	for {
		page, next, err := st.List(store.Query{PageSize: 500, PageToken: tok, WithHistory: true})
		if err != nil {
			t.Fatalf("list: %v", err)
		}
		for _, c := range page {
			out[c.Id] = c
		}
		if next == "" {
			return out
		}
		tok = next
	}
}

func segments(t *testing.T, dir string) []string {
	t.Helper()
	segs, err := filepath.Glob(filepath.Join(dir, "raft", "*.wal"))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(segs)
	return segs
}

// segmentOf is the segment file holding log entry i.
func segmentOf(t *testing.T, dir string, i uint64) string {
	t.Helper()
	var best string
	for _, s := range segments(t, dir) {
		var base uint64
		if _, err := fmt.Sscanf(filepath.Base(s), "%020d-", &base); err == nil && base <= i {
			best = s
		}
	}
	return best
}

// logBounds reads the stopped replica's raft log as its start-up check does.
func logBounds(t *testing.T, dir string) (first, last uint64) {
	t.Helper()
	l, err := raftlog.OpenEngine(raftlog.EngineWAL, raftlog.Options{Dir: filepath.Join(dir, "raft"), SegmentSize: 64 << 10}, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	first, last, err = raftlog.Verify(l)
	if err != nil {
		t.Fatal(err)
	}
	return first, last
}

func snapshotDirs(t *testing.T, dir string) []string {
	t.Helper()
	ds, err := filepath.Glob(filepath.Join(dir, "snapshots", "snapshots", "*"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, d := range ds {
		if fi, err := os.Stat(d); err == nil && fi.IsDir() && !strings.HasSuffix(d, ".tmp") {
			out = append(out, d)
		}
	}
	return out
}

// copyData copies the stopped node's data directory.
func copyData(t *testing.T, from string) string {
	t.Helper()
	to := filepath.Join(t.TempDir(), filepath.Base(from))
	if err := os.CopyFS(to, os.DirFS(from)); err != nil {
		t.Fatal(err)
	}
	return to
}

func truncateBy(path string, to func(size int64) int64) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	return os.Truncate(path, to(fi.Size()))
}

func onlyFile(t *testing.T, pattern string) string {
	t.Helper()
	m, err := filepath.Glob(pattern)
	if err != nil || len(m) == 0 {
		t.Fatalf("no file matches %s (%v)", pattern, err)
	}
	slices.Sort(m)
	return m[0]
}

// TestDamagedFiles is issue 11's acceptance 1: each file a stopped replica
// owns is damaged in turn on a copy of its data directory, and the replica
// either rebuilds and serves exactly what it had (same cases, same
// contents, retried request ids answered with their first case, a new case
// under a new id), or refuses to start with an error naming the file.
func TestDamagedFiles(t *testing.T) {
	if testing.Short() {
		t.Skip("start-up integrity test: run without -short")
	}
	sn := newStoppedNode(t)
	state := func(dir string) string { return filepath.Join(dir, "state") }
	firstSnapshot := func(t *testing.T, dir string) string {
		ds := snapshotDirs(t, dir)
		if len(ds) == 0 {
			t.Fatal("no snapshot")
		}
		return ds[len(ds)-1]
	}
	for _, tc := range []struct {
		name string
		// damage returns the file the refusal must name ("" when the
		// replica must rebuild and serve).
		damage func(t *testing.T, dir string) string
		// evidence is a glob (in the data directory) that must match
		// what was moved aside, when the replica rebuilt.
		evidence string
		// snapshot: the replica must have a usable snapshot again.
		snapshot bool
	}{
		{"nothing damaged", func(t *testing.T, dir string) string { return "" }, "", true},
		{"state MANIFEST truncated", func(t *testing.T, dir string) string {
			if err := truncateBy(filepath.Join(state(dir), "MANIFEST"), func(n int64) int64 { return n / 2 }); err != nil {
				t.Fatal(err)
			}
			return ""
		}, "state.damaged-*", false},
		{"state MANIFEST deleted", func(t *testing.T, dir string) string {
			if err := os.Remove(filepath.Join(state(dir), "MANIFEST")); err != nil {
				t.Fatal(err)
			}
			return ""
		}, "state.damaged-*", false},
		{"state table truncated", func(t *testing.T, dir string) string {
			if err := truncateBy(onlyFile(t, filepath.Join(state(dir), "*.sst")), func(n int64) int64 { return n * 2 / 3 }); err != nil {
				t.Fatal(err)
			}
			return ""
		}, "state.damaged-*", false},
		{"state value log truncated", func(t *testing.T, dir string) string {
			if err := truncateBy(onlyFile(t, filepath.Join(state(dir), "*.vlog")), func(n int64) int64 { return min(n, 10) }); err != nil {
				t.Fatal(err)
			}
			return "" // values live in the tables: nothing is lost
		}, "", false},
		{"state directory deleted", func(t *testing.T, dir string) string {
			if err := os.RemoveAll(state(dir)); err != nil {
				t.Fatal(err)
			}
			return ""
		}, "", false},
		{"state MANIFEST deleted and snapshot state.bin truncated", func(t *testing.T, dir string) string {
			if err := os.Remove(filepath.Join(state(dir), "MANIFEST")); err != nil {
				t.Fatal(err)
			}
			if err := truncateBy(filepath.Join(firstSnapshot(t, dir), "state.bin"), func(n int64) int64 { return n / 2 }); err != nil {
				t.Fatal(err)
			}
			return filepath.Join(state(dir), "MANIFEST")
		}, "", false},
		{"state directory and snapshots deleted", func(t *testing.T, dir string) string {
			if err := os.RemoveAll(state(dir)); err != nil {
				t.Fatal(err)
			}
			if err := os.RemoveAll(filepath.Join(dir, "snapshots")); err != nil {
				t.Fatal(err)
			}
			return filepath.Join(dir, "snapshots")
		}, "", false},
		{"raft log head segment truncated", func(t *testing.T, dir string) string {
			head := segments(t, dir)[0]
			if err := truncateBy(head, func(n int64) int64 { return n / 2 }); err != nil {
				t.Fatal(err)
			}
			return head
		}, "", false},
		{"raft log tail truncated", func(t *testing.T, dir string) string {
			segs := segments(t, dir)
			tail := segs[len(segs)-1]
			if err := truncateBy(tail, func(int64) int64 { return 40 }); err != nil {
				t.Fatal(err)
			}
			// A sealed segment cut short is named as unreadable; the
			// unsealed tail recovers as a crash-torn tail, shorter than
			// the state has applied, and is named as the log's end.
			return tail
		}, "", false},
		{"raft log metadata deleted", func(t *testing.T, dir string) string {
			meta := filepath.Join(dir, "raft", "wal-meta.db")
			if err := os.Remove(meta); err != nil {
				t.Fatal(err)
			}
			return meta
		}, "", false},
		{"raft log metadata truncated", func(t *testing.T, dir string) string {
			meta := filepath.Join(dir, "raft", "wal-meta.db")
			if err := truncateBy(meta, func(n int64) int64 { return n / 3 }); err != nil {
				t.Fatal(err)
			}
			return meta
		}, "", false},
		{"snapshot meta.json garbled", func(t *testing.T, dir string) string {
			if err := os.WriteFile(filepath.Join(firstSnapshot(t, dir), "meta.json"), []byte("{not json"), 0o600); err != nil {
				t.Fatal(err)
			}
			return ""
		}, "snapshots.damaged-*/*", true},
		{"snapshot state.bin truncated", func(t *testing.T, dir string) string {
			if err := truncateBy(filepath.Join(firstSnapshot(t, dir), "state.bin"), func(n int64) int64 { return n / 2 }); err != nil {
				t.Fatal(err)
			}
			return ""
		}, "snapshots.damaged-*/*", true},
		{"snapshot directory deleted", func(t *testing.T, dir string) string {
			if err := os.RemoveAll(firstSnapshot(t, dir)); err != nil {
				t.Fatal(err)
			}
			return ""
		}, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyData(t, sn.dir)
			named := tc.damage(t, dir)
			c, err := sn.startOn(t, dir)
			if named != "" {
				if err == nil {
					t.Fatalf("the replica started on %s; want a refusal naming %s", tc.name, named)
				}
				if !errors.Is(err, node.ErrDamaged) || !strings.Contains(err.Error(), named) || !strings.Contains(err.Error(), "--rejoin") {
					t.Fatalf("refusal: %v\nwant node.ErrDamaged naming %s and the way out", err, named)
				}
				t.Logf("refused: %v", err)
				return
			}
			if err != nil {
				t.Fatalf("start after %s: %v", tc.name, err)
			}
			sn.servesAll(t, c)
			if tc.snapshot && len(snapshotDirs(t, dir)) == 0 {
				t.Fatal("no usable snapshot after the start: a follower could not be sent one")
			}
			if tc.evidence != "" {
				if m, _ := filepath.Glob(filepath.Join(dir, tc.evidence)); len(m) == 0 {
					t.Fatalf("nothing moved aside matches %s", tc.evidence)
				}
			}
		})
	}
}

// TestDamagedStateUnderAMarker: a replica whose snapshots are markers
// (raft.marker_snapshot_cases reached) has no copy of its state to rebuild
// a damaged state store from: it refuses to start, naming the file and the
// way out, instead of serving what it has. It starts and serves on
// undamaged data, and a damaged marker is moved aside and replaced.
func TestDamagedStateUnderAMarker(t *testing.T) {
	if testing.Short() {
		t.Skip("start-up integrity test: run without -short")
	}
	sn := newStoppedNode(t, func(c *config.Config) { c.Raft.MarkerSnapshotCases = 100 })
	ds := snapshotDirs(t, sn.dir)
	if len(ds) == 0 || !isMarkerFile(t, filepath.Join(ds[len(ds)-1], "state.bin")) {
		t.Fatalf("the stopped replica's snapshot is not a marker: %v", ds)
	}
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, dir string) string // the file the refusal names ("": it starts)
	}{
		{"nothing damaged", func(t *testing.T, dir string) string { return "" }},
		{"state MANIFEST deleted", func(t *testing.T, dir string) string {
			m := filepath.Join(dir, "state", "MANIFEST")
			if err := os.Remove(m); err != nil {
				t.Fatal(err)
			}
			return m
		}},
		{"state directory deleted", func(t *testing.T, dir string) string {
			if err := os.RemoveAll(filepath.Join(dir, "state")); err != nil {
				t.Fatal(err)
			}
			return filepath.Join(dir, "state")
		}},
		{"marker damaged", func(t *testing.T, dir string) string {
			ds := snapshotDirs(t, dir)
			bin := filepath.Join(ds[len(ds)-1], "state.bin")
			b, err := os.ReadFile(bin)
			if err != nil {
				t.Fatal(err)
			}
			b[len(b)-6] ^= 0xff // the term: same size, wrong checksum
			if err := os.WriteFile(bin, b, 0o600); err != nil {
				t.Fatal(err)
			}
			return ""
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyData(t, sn.dir)
			named := tc.damage(t, dir)
			c, err := sn.startOn(t, dir)
			if named != "" {
				if !errors.Is(err, node.ErrDamaged) || !strings.Contains(err.Error(), named) || !strings.Contains(err.Error(), "--rejoin") ||
					!strings.Contains(err.Error(), "marker") {
					t.Fatalf("start: %v\nwant node.ErrDamaged naming %s, the marker and the way out", err, named)
				}
				t.Logf("refused: %v", err)
				return
			}
			if err != nil {
				t.Fatalf("start after %s: %v", tc.name, err)
			}
			sn.servesAll(t, c)
			if len(snapshotDirs(t, dir)) == 0 {
				t.Fatal("no usable snapshot after the start")
			}
			if m, _ := filepath.Glob(filepath.Join(dir, "snapshots.damaged-*", "*")); (len(m) > 0) != (tc.name == "marker damaged") {
				t.Fatalf("moved aside: %v", m)
			}
		})
	}
}

// startOn starts the stopped replica on the data directory dir (a
// damaged copy of its own) on new ports.
func (sn *stoppedNode) startOn(t *testing.T, dir string) (*testcluster.Cluster, error) {
	t.Helper()
	cfg := sn.cfg
	cfg.Node.DataDir = dir
	cfg.Raft.Addr = testcluster.FreePort(t)
	cfg.Raft.Advertise = cfg.Raft.Addr
	cfg.GRPC.Addr, cfg.HTTP.Addr, cfg.Internal.Addr = testcluster.FreePort(t), testcluster.FreePort(t), testcluster.FreePort(t)
	c := testcluster.FromConfigs(t, cfg)
	return c, c.TryStart(0)
}

// servesAll checks that the restarted replica holds exactly the cases the
// stopped one had, answers a retried request id with the case it created
// first, and gives a new case an id no case had.
func (sn *stoppedNode) servesAll(t *testing.T, c *testcluster.Cluster) {
	t.Helper()
	c.WaitLeader(readyWait)
	r := c.Replica(0)
	testcluster.WaitFor(t, readyWait, "the replica applied its log", func() bool {
		return r.Node.AppliedIndex() >= r.Node.Raft().CommitIndex() && r.Node.Raft().CommitIndex() > 0
	})
	cl := c.Cases(0)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// A linearizable read first: the replica serves only what it vouches for.
	var any string
	for id := range sn.cases {
		any = id
		break
	}
	if got, err := cl.GetCase(ctx, &pb.GetCaseRequest{CaseId: any}); err != nil || got.Id != any {
		t.Fatalf("read %s: %v", any, err)
	}
	have := casesOf(t, r.Node.Store())
	if len(have) != len(sn.cases) {
		t.Fatalf("the replica holds %d cases, it had %d", len(have), len(sn.cases))
	}
	for id, want := range sn.cases {
		if got := have[id]; !proto.Equal(got, want) {
			t.Fatalf("case %s differs:\n got %v\nwant %v", id, got, want)
		}
	}
	// Retries of requests from before the snapshot (restored) and after
	// it (replayed from the log) answer with their first case.
	for _, rid := range []string{"dmg-3", "dmg-149", "dmg-150", "dmg-449"} {
		resp, err := cl.ReportCase(ctx, sn.reports[rid])
		if err != nil || !resp.Replayed || resp.Case.GetId() != sn.requests[rid] {
			t.Fatalf("retry of %s: %v (replayed %v, case %s), want case %s", rid, err, resp.GetReplayed(), resp.GetCase().GetId(), sn.requests[rid])
		}
	}
	resp, err := cl.ReportCase(ctx, report("dmg-new", "a case after the damage"))
	if err != nil {
		t.Fatalf("new report: %v", err)
	}
	if _, reused := sn.cases[resp.Case.Id]; reused || resp.Replayed {
		t.Fatalf("the new report got id %s (replayed %v): it reuses a case id", resp.Case.Id, resp.Replayed)
	}
}
