package replica_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/cityhub/cityhub/config"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/replica/testcluster"
	"github.com/cityhub/cityhub/tiers/store"
)

// TestWriteCostDoesNotGrowWithTheStore is the write path's complexity
// guard: it counts the state store's reads (point reads and keys visited),
// case decodes and writes for one report and for one case action, end to
// end through the gRPC API of a running replica (stamping with the
// duplicate and recurrence look-ups, the leader's precheck, the state
// machine's apply, the answer's possible duplicates), first with 100 cases
// of the report's grid and class stored, then with 10,000, and fails when
// the second costs more than the first beyond a small constant. Counts,
// not time: a loaded machine cannot make it flaky.
//
// The stored cases are what makes a grid expensive: an imported backlog
// (open cases reported long ago, closed ones closed long ago) of the same
// class at the same spot. Three open cases reported in the last hours and
// one closed a few days ago are in the windows both times, so each report
// finds them (its duplicates and its recurrence) at both sizes.
func TestWriteCostDoesNotGrowWithTheStore(t *testing.T) {
	c := quietReplica(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const grid = "320582110152102"
	imp := pb.NewOwnershipServiceClient(c.Conn(0))
	now := time.Now()
	batch := 0
	importRows := func(n int, status string, reportedAt func(i int) time.Time) []string {
		t.Helper()
		var ids []string
		for start := 0; start < n; start += 1000 {
			var rows []*pb.LegacyRow
			for i := start; i < min(n, start+1000); i++ {
				rows = append(rows, &pb.LegacyRow{Line: int32(i + 2), LegacyId: fmt.Sprintf("G-%d-%d", batch, i),
					ReportedAt: reportedAt(i).Format(time.RFC3339), Source: "app", Kind: "event", Major: "01", Minor: "02",
					GridCode: grid, Lat: "31.3", Lng: "120.6", Description: "暴露垃圾", Status: status})
			}
			batch++
			resp, err := imp.ImportCases(ctx, &pb.ImportCasesRequest{RequestId: fmt.Sprint("guard-import-", batch), Rows: rows})
			if err != nil {
				t.Fatal(err)
			}
			if len(resp.Rejected) != 0 || int(resp.Imported) != len(rows) {
				t.Fatalf("import: %d imported of %d, %d rejected, the first: %v", resp.Imported, len(rows), len(resp.Rejected), resp.Rejected[:min(1, len(resp.Rejected))])
			}
			ids = append(ids, resp.CaseIds...)
		}
		return ids
	}
	// backlog imports n cases of the class, outside both windows: half
	// open (reported over the last years), half closed as long ago.
	backlog := func(n int) {
		t.Helper()
		old := func(i int) time.Time { return now.Add(-400*24*time.Hour - time.Duration(i)*time.Hour) }
		importRows(n/2, "filed", old)
		importRows(n-n/2, "closed", old)
	}
	// Row i reported i+1 hours ago: most recently reported first.
	recent := importRows(3, "reported", func(i int) time.Time { return now.Add(-time.Duration(i+1) * time.Hour) })
	closedRecently := importRows(1, "closed", func(int) time.Time { return now.Add(-5 * 24 * time.Hour) })[0]
	backlog(100 - 4)

	st := c.Replica(0).Node.Store()
	stats := st.EnableStats()
	cl := c.Cases(0)
	trial := 0
	// measure reports one case and rejects it (不予立案), which takes it
	// out of the open cases, so the next report sees the same duplicates,
	// and returns what each of the two calls read and wrote, the least of
	// three tries (anything else reading the store only adds).
	measure := func() (report, act store.StatsSnapshot) {
		t.Helper()
		for try := 0; try < 3; try++ {
			trial++
			s0 := stats.Snapshot()
			r, err := cl.ReportCase(ctx, &pb.ReportCaseRequest{RequestId: fmt.Sprint("guard-report-", trial), Actor: "insp", Role: pb.Role_ROLE_INSPECTOR,
				Source: pb.Source_SOURCE_INSPECTOR, Kind: pb.Kind_KIND_EVENT, MajorCode: "01", MinorCode: "02", GridCode: grid,
				Description: "暴露垃圾", Location: &pb.Location{Lat: 31.3, Lng: 120.6}})
			if err != nil {
				t.Fatal(err)
			}
			s1 := stats.Snapshot()
			if !slices.Equal(r.PossibleDuplicates, recent) || r.Case.RecurrenceOf != closedRecently {
				t.Fatalf("trial %d: duplicates %v (want %v), recurrence of %q (want %s)", trial, r.PossibleDuplicates, recent, r.Case.RecurrenceOf, closedRecently)
			}
			if _, err := cl.Reject(ctx, &pb.ActRequest{CaseId: r.Case.Id, RequestId: fmt.Sprint("guard-reject-", trial), Actor: "s",
				Role: pb.Role_ROLE_SHIFT_LEADER, Note: "重复上报"}); err != nil {
				t.Fatal(err)
			}
			s2 := stats.Snapshot()
			rep, a := s1.Sub(s0), s2.Sub(s1)
			if try == 0 {
				report, act = rep, a
			}
			report, act = least(report, rep), least(act, a)
		}
		return report, act
	}
	smallReport, smallAct := measure()
	backlog(10_000 - 100)
	bigReport, bigAct := measure()
	t.Logf("one report: %+v with 100 cases of its class stored, %+v with 10,000", smallReport, bigReport)
	t.Logf("one action: %+v with 100 cases, %+v with 10,000", smallAct, bigAct)
	if smallReport.Reads() == 0 || smallAct.Reads() == 0 || smallReport.Writes == 0 || smallAct.Decoded == 0 {
		t.Fatalf("nothing counted: report %+v, action %+v", smallReport, smallAct)
	}
	// A constant of slack: a key visited past a window's end may or may
	// not belong to the class next door.
	const slack = 2
	for _, m := range []struct {
		what       string
		small, big store.StatsSnapshot
	}{{"report", smallReport, bigReport}, {"action", smallAct, bigAct}} {
		if m.big.Reads() > m.small.Reads()+slack || m.big.Decoded > m.small.Decoded || m.big.Writes > m.small.Writes+slack {
			t.Errorf("one %s costs more with 10,000 cases stored than with 100: %+v, then %+v", m.what, m.small, m.big)
		}
	}
}

// quietReplica is a one-replica group where nothing else reads the store
// while a test counts: no overdue sweep within the test's time, no
// snapshot.
func quietReplica(t *testing.T) *testcluster.Cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("cluster test")
	}
	return testcluster.New(t, 1, func(cfg *config.Config) {
		cfg.Deadlines.SweepInterval = time.Hour
		cfg.Raft.SnapshotThreshold = 1 << 30
	})
}

func least(a, b store.StatsSnapshot) store.StatsSnapshot {
	return store.StatsSnapshot{Gets: min(a.Gets, b.Gets), Scanned: min(a.Scanned, b.Scanned), Decoded: min(a.Decoded, b.Decoded), Writes: min(a.Writes, b.Writes)}
}

// TestLeaderReportsLeaveTheIndexTreeInPlace: the leader's reads for a
// report (its stamping with the recurrence look-up, its precheck, the
// answer's possible duplicates) take no copy of the in-memory index tree
// once the report's class has its nearby list, so the commits of reports
// change the tree in place and copy none of its nodes
// (store.ViewRecords). Counted by the store: commits applied to the tree
// and readers' copies of it.
func TestLeaderReportsLeaveTheIndexTreeInPlace(t *testing.T) {
	c := quietReplica(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cl := c.Cases(0)
	report := func(i int) {
		t.Helper()
		if _, err := cl.ReportCase(ctx, &pb.ReportCaseRequest{RequestId: fmt.Sprint("in-place-", i), Actor: "insp", Role: pb.Role_ROLE_INSPECTOR,
			Source: pb.Source_SOURCE_INSPECTOR, Kind: pb.Kind_KIND_EVENT, MajorCode: "01", MinorCode: "02", GridCode: "320582110152102",
			Description: "暴露垃圾", Location: &pb.Location{Lat: 31.3, Lng: 120.6}}); err != nil {
			t.Fatal(err)
		}
	}
	report(0) // the class's nearby lists made
	st := c.Replica(0).Node.Store()
	commits0, copies0 := st.IndexCopies()
	const n = 40
	for i := 1; i <= n; i++ {
		report(i)
	}
	commits, copies := st.IndexCopies()
	commits, copies = commits-commits0, copies-copies0
	t.Logf("%d reports: %d commits applied to the tree, %d copies taken", n, commits, copies)
	if commits < n {
		t.Fatalf("%d reports, %d commits counted", n, commits)
	}
	// Anything else of the replica that reads an index now and then (a
	// cluster status, an address look-up) may take one; the leader's
	// reads through View took one a report (39 of 40).
	if copies > n/4 {
		t.Fatalf("%d reports took %d copies of the index tree: want the leader's reads of a report to take none", n, copies)
	}
}
