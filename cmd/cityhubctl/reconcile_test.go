package main

import (
	"context"
	"encoding/csv"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/cityhub/cityhub/config"
	"github.com/cityhub/cityhub/federation/fedtest"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/export"
	"github.com/cityhub/cityhub/tiers/replica/testcluster"
	"github.com/cityhub/cityhub/tiers/store"
)

// sampleCity starts the sample city's federation (15 nodes, one replica
// each, with the sample responsibility catalogue) and imports a backlog of
// n cases of 虎丘区's old system at d-320505. It returns the case ids by
// legacy id.
func sampleCity(t *testing.T, n int) (*fedtest.Federation, map[string]string) {
	t.Helper()
	f := startSampleCity(t)
	ids := f.Import(context.Background(), "d-320505", fedtest.Backlog(t, "320505", n, 7), 100)
	if len(ids) != n {
		t.Fatalf("imported %d of %d", len(ids), n)
	}
	f.WaitSettled(30 * time.Second)
	return f, ids
}

// startSampleCity starts the sample city's federation (15 nodes, one
// replica each, authentication off, the city's follow loop every 200ms).
func startSampleCity(t *testing.T) *fedtest.Federation {
	t.Helper()
	start := time.Now()
	f := fedtest.New(t, fedtest.SampleSpecs(t), 1, fedtest.SampleCity(t), func(c *config.Config) {
		c.Reconcile.FollowInterval = 200 * time.Millisecond
		// The backlog's deadlines passed years ago: a sweeper marking them
		// would change versions while the dry run is checked to change none.
		c.Deadlines.SweepInterval = time.Hour
		// One replica per group: it elects itself after one heartbeat
		// timeout, and the 15 groups start one after the other.
		c.Raft.HeartbeatTimeout, c.Raft.ElectionTimeout, c.Raft.LeaderLeaseTimeout = 150*time.Millisecond, 150*time.Millisecond, 75*time.Millisecond
	})
	t.Logf("15 nodes up in %v", time.Since(start).Round(time.Millisecond))
	return f
}

// grpcAddr is the gRPC address of a node's (only) replica.
func grpcAddr(f *fedtest.Federation, node string) string {
	return f.Groups[node].Members[0].Cfg.GRPC.Addr
}

// allVersions records (epoch, version) of every copy on every node.
func allVersions(t *testing.T, f *fedtest.Federation) map[string][2]uint64 {
	t.Helper()
	out := map[string][2]uint64{}
	for name, g := range f.Groups {
		err := g.Replica(0).Node.Store().Digests(func(id string, d store.Digest) error {
			out[name+"/"+id] = [2]uint64{d.Epoch, d.Version}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

var summaryRe = regexp.MustCompile(`(?m)^(dry run \(nothing written\)|run (\S+) \(finished\)) at (\S+): scanned (\d+), in place (\d+), moved (\d+), pending (\d+), disputed (\d+), rejected (\d+)$`)

// parsedSummary is the summary line of a reconcile table.
type parsedSummary struct {
	runID, node                                          string
	scanned, inPlace, moved, pending, disputed, rejected int64
}

func parseSummary(t *testing.T, out string) parsedSummary {
	t.Helper()
	m := summaryRe.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no summary line:\n%s", out)
	}
	n := func(i int) int64 {
		v, _ := strconv.ParseInt(m[i], 10, 64)
		return v
	}
	return parsedSummary{runID: m[2], node: m[3], scanned: n(4), inPlace: n(5), moved: n(6), pending: n(7), disputed: n(8), rejected: n(9)}
}

func (s parsedSummary) matches(rep *pb.ReconcileReport) bool {
	return s.runID == rep.RunId && s.node == rep.Node && s.scanned == rep.Scanned && s.inPlace == rep.InPlace &&
		s.moved == rep.Moved && s.pending == rep.Pending && s.disputed == rep.Disputed && s.rejected == rep.Rejected
}

// dimensionRows returns the rows of one dimension's table: key → moved,
// pending, disputed, rejected, total.
func dimensionRows(t *testing.T, out, title string) map[string][5]int64 {
	t.Helper()
	i := strings.Index(out, "\n"+title+":\n")
	if i < 0 {
		t.Fatalf("no %q table:\n%s", title, out)
	}
	lines := strings.Split(out[i+len(title)+3:], "\n")
	rows := map[string][5]int64{}
	for _, l := range lines[1:] { // after the header
		f := strings.Fields(l)
		if len(f) < 6 {
			break
		}
		var v [5]int64
		for j := range v {
			x, err := strconv.ParseInt(f[len(f)-5+j], 10, 64)
			if err != nil {
				t.Fatalf("row %q of %s: %v", l, title, err)
			}
			v[j] = x
		}
		rows[strings.Join(f[:len(f)-5], " ")] = v
	}
	return rows
}

// TestReconcileReviewAgainstSampleCity drives reconcile, reconcile report,
// review list/decide, cases get/list and owner resolve against the sample
// city's federation with a 200-case backlog at 虎丘区 (d-320505).
func TestReconcileReviewAgainstSampleCity(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 15-node federation")
	}
	withUTC(t)
	start := time.Now()
	f, ids := sampleCity(t, 200)
	t.Logf("federation up and backlog imported in %v", time.Since(start).Round(time.Millisecond))
	ctx := context.Background()
	district, city := grpcAddr(f, "d-320505"), grpcAddr(f, "city")
	own := pb.NewOwnershipServiceClient(f.Groups["d-320505"].Conn(0))

	// No run yet: the stored report is not found (exit 1, the server's code).
	code, out, errOut := runCLI(t, "--addr", district, "reconcile", "report")
	if code != 1 || !strings.Contains(errOut, "error: NotFound") {
		t.Fatalf("report before any run: exit %d\n%s%s", code, out, errOut)
	}

	// A dry run prints the plan and changes nothing.
	before := allVersions(t, f)
	planPath := filepath.Join(t.TempDir(), "plan.csv")
	code, out, errOut = runCLI(t, "--addr", district, "reconcile", "--dry-run", "--limit", "5", "--plan-csv", planPath)
	if code != 0 {
		t.Fatalf("dry run: exit %d\n%s%s", code, out, errOut)
	}
	t.Logf("dry run:\n%s", out)
	plan := parseSummary(t, out)
	acted := plan.moved + plan.pending + plan.disputed + plan.rejected
	if plan.node != "d-320505" || plan.scanned != 200 || plan.moved == 0 || plan.disputed == 0 || plan.inPlace+acted != plan.scanned {
		t.Fatalf("dry run summary %+v", plan)
	}
	if !strings.Contains(out, "plan ("+strconv.FormatInt(acted, 10)+" cases to act on):") ||
		!strings.Contains(out, "… "+strconv.FormatInt(acted-5, 10)+" more") {
		t.Fatalf("plan header or cap line missing (%d planned):\n%s", acted, out)
	}
	planRows := regexp.MustCompile(`(?m)^320505-\d{8}-\d{6} +(moved|pending|disputed|rejected) +\S+ +\S+→\S+ +\S+→\S+ `).FindAllString(out, -1)
	if len(planRows) != 5 {
		t.Fatalf("%d plan rows shown, want the 5 of --limit:\n%s", len(planRows), out)
	}
	if !regexp.MustCompile(`(?m)^CASE +OUTCOME +ACTION +FROM→TO NODE +FROM UNIT→OWNER +RULE +REASON$`).MatchString(out) {
		t.Fatalf("no plan header:\n%s", out)
	}
	pf, err := os.Open(planPath)
	if err != nil {
		t.Fatal(err)
	}
	planCSV, err := csv.NewReader(pf).ReadAll()
	pf.Close()
	if err != nil || int64(len(planCSV)) != acted+1 || !slices.Equal(planCSV[0], planHeader) {
		t.Fatalf("--plan-csv: %d rows (want %d and the header), %v", len(planCSV), acted+1, err)
	}
	// The plan's disputed rows go to the joint review; every row names its case.
	disputedPlanned := 0
	known := map[string]bool{}
	for _, id := range ids {
		known[id] = true
	}
	for _, r := range planCSV[1:] {
		if !known[r[0]] {
			t.Fatalf("plan row of unknown case %q", r)
		}
		if r[1] == "disputed" {
			disputedPlanned++
			if r[2] != "refer-review" || r[6] != "city" {
				t.Fatalf("disputed plan row %q: want refer-review to city", r)
			}
		}
	}
	if int64(disputedPlanned) != plan.disputed {
		t.Fatalf("plan CSV has %d disputed rows, summary %d", disputedPlanned, plan.disputed)
	}
	if after := allVersions(t, f); !maps.Equal(before, after) {
		t.Fatal("the dry run changed cases")
	}
	if _, err := own.GetReconcileReport(ctx, &pb.ReconcileReportRequest{}); err == nil {
		t.Fatal("the dry run recorded a run")
	}
	// -o json is the report itself, with the whole plan.
	code, out, errOut = runCLI(t, "--addr", district, "-o", "json", "reconcile", "--dry-run")
	var jrep pb.ReconcileReport
	if code != 0 || protojson.Unmarshal([]byte(out), &jrep) != nil || !jrep.DryRun ||
		jrep.Moved != plan.moved || int64(len(jrep.Plan)) != acted {
		t.Fatalf("json dry run: exit %d %s, report %v", code, errOut, summaryOf(&jrep))
	}

	// The run: its summary is the stored report's; --progress follows it
	// on stderr up to every case the plan acts on.
	code, out, errOut = runCLI(t, "--addr", district, "reconcile", "--batch", "50", "--progress")
	if code != 0 {
		t.Fatalf("run: exit %d\n%s%s", code, out, errOut)
	}
	t.Logf("run:\n%s", out)
	if want := fmt.Sprintf("reconcile: %d of %d cases (100%%)", acted, acted); !strings.Contains(errOut, want) || !strings.Contains(errOut, "done in") {
		t.Fatalf("progress on stderr lacks %q and its duration:\n%s", want, errOut)
	}
	if strings.Contains(out, "reconcile: ") {
		t.Fatalf("progress went to stdout:\n%s", out)
	}
	got := parseSummary(t, out)
	// Member 0 may be a follower that passed the run to the leader: the
	// run's finish mark is committed when the run answers, and applied
	// here a moment later (the report is read from this replica's store).
	var stored *pb.ReconcileReport
	testcluster.WaitFor(t, 60*time.Second, "the finished run's report on member 0", func() bool {
		var err error
		stored, err = own.GetReconcileReport(ctx, &pb.ReconcileReportRequest{})
		return err == nil && stored.Finished
	})
	if !got.matches(stored) || got.runID == "" || !stored.Finished {
		t.Fatalf("printed %+v, stored %s", got, summaryOf(stored))
	}
	if got.moved != plan.moved || got.disputed != plan.disputed || got.scanned != plan.scanned {
		t.Fatalf("run %+v differs from its plan %+v", got, plan)
	}
	if strings.Contains(out, "plan (") {
		t.Fatalf("a run printed a plan:\n%s", out)
	}
	// Every dimension's table adds up to the totals.
	for _, title := range []string{"by kind", "by class", "by owner unit", "by age of the case", "by destination node"} {
		var sum [5]int64
		for _, v := range dimensionRows(t, out, title) {
			for j := range sum {
				sum[j] += v[j]
			}
			if v[4] != v[0]+v[1]+v[2]+v[3] {
				t.Fatalf("%s: row total %v", title, v)
			}
		}
		if sum != [5]int64{stored.Moved, stored.Pending, stored.Disputed, stored.Rejected, stored.Moved + stored.Pending + stored.Disputed + stored.Rejected} {
			t.Fatalf("%s adds up to %v, report %s", title, sum, summaryOf(stored))
		}
	}
	if rows := dimensionRows(t, out, "by destination node"); rows["city"][2] != stored.Disputed {
		t.Fatalf("disputed cases not counted toward the city: %v", rows)
	}

	// The stored report: the same summary as a table; CSV with the header
	// and a total row.
	code, out, _ = runCLI(t, "--addr", district, "reconcile", "report", "--run-id", stored.RunId)
	if code != 0 || !parseSummary(t, out).matches(stored) {
		t.Fatalf("reconcile report: exit %d\n%s", code, out)
	}
	code, out, errOut = runCLI(t, "--addr", district, "-o", "csv", "reconcile", "report")
	if code != 0 {
		t.Fatalf("csv: exit %d: %s", code, errOut)
	}
	recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil {
		t.Fatalf("not CSV: %v\n%s", err, out)
	}
	if !slices.Equal(recs[0], []string{"run_id", "dimension", "key", "moved", "pending", "disputed", "rejected", "failed"}) {
		t.Fatalf("header %q", recs[0])
	}
	total := recs[len(recs)-1]
	n := func(s string) int64 { v, _ := strconv.ParseInt(s, 10, 64); return v }
	if total[0] != stored.RunId || total[1] != "total" || n(total[3]) != stored.Moved || n(total[4]) != stored.Pending ||
		n(total[5]) != stored.Disputed || n(total[6]) != stored.Rejected || len(recs) != len(stored.Counts)+2 {
		t.Fatalf("total row %q (%d rows), report %s", total, len(recs), summaryOf(stored))
	}
	var want strings.Builder
	if err := export.WriteReconcileCSV(&want, stored); err != nil || want.String() != out {
		t.Fatalf("CSV differs from export.WriteReconcileCSV:\n%s\nwant\n%s", out, want.String())
	}

	// The disputed cases end at the city, in its joint review queue.
	inReview := waitReviewQueue(t, f, int(stored.Disputed+stored.Rejected))
	code, out, errOut = runCLI(t, "--addr", city, "review", "list")
	if code != 0 {
		t.Fatalf("review list: exit %d\n%s%s", code, out, errOut)
	}
	t.Logf("review list:\n%s", out)
	if !strings.Contains(out, "joint review queue (疑难案件会诊): "+strconv.Itoa(len(inReview))+" cases\n") {
		t.Fatalf("review list count:\n%s", out)
	}
	for _, c := range inReview {
		re := `(?m)^` + regexp.QuoteMeta(c.Id) + ` +` + regexp.QuoteMeta(caseClass(c)) + ` +` + c.GridCode + ` +\S+ +city +0 +.*referred to joint review by `
		if !regexp.MustCompile(re).MatchString(out) {
			t.Fatalf("review list lacks %s (%s) with its reasons:\n%s", c.Id, re, out)
		}
		if c.Ownership.GetDispute() == "" || !strings.Contains(out, oneLine(c.Ownership.GetDispute())) {
			t.Fatalf("review list lacks the dispute of %s (%q)", c.Id, c.Ownership.GetDispute())
		}
	}
	code, out, _ = runCLI(t, "--addr", city, "-o", "csv", "review", "list")
	if recs, err := csv.NewReader(strings.NewReader(out)).ReadAll(); code != 0 || err != nil || len(recs) != len(inReview)+1 || recs[0][0] != "id" {
		t.Fatalf("review list csv: exit %d, %v:\n%s", code, err, out)
	}

	// cases list --in-review is the same queue; --legacy-id finds an import.
	code, out, _ = runCLI(t, "--addr", city, "cases", "list", "--in-review", "--all")
	if code != 0 || strings.Count(out, "\n320505-") != len(inReview) {
		t.Fatalf("cases list --in-review: exit %d\n%s", code, out)
	}
	legacy := "320505-L0000001"
	code, out, _ = runCLI(t, "--addr", district, "cases", "list", "--legacy-id", legacy)
	if code != 0 || strings.Count(out, "\n320505-") != 1 || !strings.Contains(out, ids[legacy]) {
		t.Fatalf("cases list --legacy-id %s (%s): exit %d\n%s", legacy, ids[legacy], code, out)
	}

	// The joint review decides one: it goes to the named unit at its node.
	target := inReview[0]
	code, out, errOut = runCLI(t, "--addr", city, "review", "decide", target.Id, "--unit", "320505-roads",
		"--note", "2019 移交记录: the district maintains it", "--actor", "张主任")
	if code != 0 {
		t.Fatalf("review decide: exit %d\n%s%s", code, out, errOut)
	}
	t.Logf("review decide:\n%s", out)
	for _, re := range []string{
		`(?m)^decided: ` + regexp.QuoteMeta(target.Id) + ` is owned by 320505-roads, held by d-320505$`,
		`(?m)^state: +dispatched$`,
		`(?m)^holder: +d-320505$`,
		`(?m)^ownership: +320505-roads \(district\) at node d-320505$`,
		`(?m)^  rule: +joint-review`,
		`(?m)^  status: +decided by joint review`,
		`(?m)^  reasons: +.*referred to joint review by `,
		`(?m)^ +decided by 张主任: 320505-roads owns it: 2019 移交记录`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Fatalf("decide output lacks %s:\n%s", re, out)
		}
	}
	after, err := f.Groups["city"].Cases(0).GetCase(ctx, &pb.GetCaseRequest{CaseId: target.Id})
	if err != nil {
		t.Fatal(err)
	}
	o := after.GetOwnership()
	if after.OwnerUnit != "320505-roads" || after.Holder != "d-320505" || after.State != pb.State_STATE_DISPATCHED ||
		after.Deadline == nil || !o.GetDecided() || o.GetInReview() || o.GetRule() != "joint-review" || o.GetUnit() != "320505-roads" {
		t.Fatalf("after the decision: %v", after)
	}
	last := after.History[len(after.History)-1]
	if last.Action != pb.Action_ACTION_DECIDE_OWNER || last.Role != pb.Role_ROLE_SHIFT_LEADER || last.Actor != "张主任" {
		t.Fatalf("last history entry %v", last)
	}
	code, out, _ = runCLI(t, "--addr", city, "review", "list")
	if code != 0 || strings.Contains(out, target.Id) || !strings.Contains(out, ": "+strconv.Itoa(len(inReview)-1)+" cases\n") {
		t.Fatalf("review list after the decision: exit %d\n%s", code, out)
	}
	// cases get shows the ownership block and the legacy id.
	code, out, _ = runCLI(t, "--addr", city, "cases", "get", target.Id)
	if code != 0 || !regexp.MustCompile(`(?m)^legacy id: +320505-L\d{7}$`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^ownership: +320505-roads \(district\) at node d-320505$`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^  explanation: +decided by joint review \(会诊\) by 张主任`).MatchString(out) {
		t.Fatalf("cases get: exit %d\n%s", code, out)
	}
	// Decided once: a second decision is refused by the server (exit 1).
	code, _, errOut = runCLI(t, "--addr", city, "review", "decide", target.Id, "--unit", "320505-parks", "--note", "again")
	if code != 1 || !strings.Contains(errOut, "error: FailedPrecondition") {
		t.Fatalf("second decision: exit %d, stderr %q", code, errOut)
	}
	// A bad unit is refused naming the field.
	code, _, errOut = runCLI(t, "--addr", city, "review", "decide", inReview[1].Id, "--unit", "no such unit", "--note", "x")
	if code != 1 || !strings.Contains(errOut, "error: InvalidArgument") || !strings.Contains(errOut, "field: unit") {
		t.Fatalf("bad unit: exit %d, stderr %q", code, errOut)
	}

	// A second run, named (a new run's default id is the node and the
	// second it starts: this one could start within the first's second),
	// moves nothing.
	code, out, _ = runCLI(t, "--addr", district, "reconcile", "--run-id", "second")
	if s := parseSummary(t, out); code != 0 || s.moved != 0 || s.disputed != 0 || s.runID != "second" || s.scanned != s.inPlace+s.pending {
		t.Fatalf("second run: exit %d\n%s", code, out)
	}

	t.Run("owner resolve", func(t *testing.T) { ownerResolveSampleCity(t, city) })
	t.Logf("whole test %v", time.Since(start).Round(time.Millisecond))
}

// waitReviewQueue waits until the city's joint review queue holds n cases
// and returns them.
func waitReviewQueue(t *testing.T, f *fedtest.Federation, n int) []*pb.Case {
	t.Helper()
	var (
		got []*pb.Case
		err error
	)
	deadline := time.Now().Add(30 * time.Second)
	for {
		var resp *pb.ListCasesResponse
		resp, err = f.Groups["city"].Cases(0).ListCases(context.Background(), &pb.ListCasesRequest{InReview: true, PageSize: 500})
		got = resp.GetCases()
		if err == nil && len(got) == n {
			break
		}
		if time.Now().After(deadline) {
			ok, why := f.Settled()
			t.Fatalf("the joint review queue at the city has %d cases (%v), want %d; settled %v %s", len(got), err, n, ok, why)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n < 2 {
		t.Fatalf("only %d cases in review: the test needs two", n)
	}
	return got
}

func summaryOf(r *pb.ReconcileReport) string {
	return reconcileSummary(proto.Clone(r).(*pb.ReconcileReport))
}

// fakeReconciler records Reconcile and GetReconcileReport requests and
// whether they came with a deadline.
type fakeReconciler struct {
	pb.UnimplementedOwnershipServiceServer
	mu        sync.Mutex
	runs      []*pb.ReconcileRequest
	reports   []*pb.ReconcileReportRequest
	deadlines []time.Duration
}

func (f *fakeReconciler) Reconcile(ctx context.Context, r *pb.ReconcileRequest) (*pb.ReconcileReport, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.runs = append(f.runs, proto.Clone(r).(*pb.ReconcileRequest))
	dl, _ := ctx.Deadline()
	f.deadlines = append(f.deadlines, time.Until(dl))
	return &pb.ReconcileReport{RunId: r.RunId, Node: "d-320505", Finished: true, Scanned: 3, InPlace: 1, Moved: 2,
		Counts: []*pb.ReconcileCount{{Dimension: "kind", Key: "event", Moved: 2}}}, nil
}

func (f *fakeReconciler) GetReconcileReport(_ context.Context, r *pb.ReconcileReportRequest) (*pb.ReconcileReport, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reports = append(f.reports, proto.Clone(r).(*pb.ReconcileReportRequest))
	return nil, status.Error(codes.NotFound, "no such reconciliation run: \""+r.RunId+"\"")
}

func TestReconcileFlags(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	f := &fakeReconciler{}
	pb.RegisterOwnershipServiceServer(srv, f)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	addr := lis.Addr().String()

	code, out, errOut := runCLI(t, "--addr", addr, "reconcile", "--run-id", "r-7", "--batch", "25")
	if code != 0 || !strings.Contains(out, "run r-7 (finished) at d-320505: scanned 3, in place 1, moved 2, pending 0, disputed 0, rejected 0\n") {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	if r := f.runs[0]; r.RunId != "r-7" || r.BatchSize != 25 || r.DryRun {
		t.Fatalf("request %v", r)
	}
	// A run waits 30 minutes unless --timeout is given.
	if d := f.deadlines[0]; d < 29*time.Minute || d > 30*time.Minute {
		t.Fatalf("run deadline in %v, want 30m", d)
	}
	if code, _, _ := runCLI(t, "--addr", addr, "--timeout", "7s", "reconcile", "--dry-run"); code != 0 || f.deadlines[1] > 7*time.Second || !f.runs[1].DryRun {
		t.Fatalf("exit %d, deadline %v, request %v", code, f.deadlines[1], f.runs[1])
	}
	// The stored report: the server's error, its code printed.
	code, _, errOut = runCLI(t, "--addr", addr, "reconcile", "report", "--run-id", "r-9", "--consistency", "stale")
	if code != 1 || !strings.Contains(errOut, `error: NotFound: no such reconciliation run: "r-9"`) ||
		f.reports[0].RunId != "r-9" || f.reports[0].Consistency != pb.Consistency_CONSISTENCY_STALE {
		t.Fatalf("exit %d, stderr %q, requests %v", code, errOut, f.reports)
	}
	// Usage errors send nothing.
	for _, args := range [][]string{
		{"reconcile", "--batch", "-1"},
		{"reconcile", "--batch", "9000"},
		{"reconcile", "--limit", "-2", "--dry-run"},
		{"reconcile", "--plan-csv", "p.csv"},
		{"reconcile", "--dry-run", "--run-id", "r-1"},
		{"-o", "yaml", "reconcile"},
		{"-o", "xml", "reconcile", "report"},
		{"reconcile", "extra"},
		{"reconcile", "report", "--consistency", "eventual"},
	} {
		code, _, errOut := runCLI(t, append([]string{"--addr", addr}, args...)...)
		if code != 2 || !strings.HasPrefix(errOut, "error: ") {
			t.Errorf("%q: exit %d, stderr %q; want a usage error", args, code, errOut)
		}
	}
	if len(f.runs) != 2 || len(f.reports) != 1 {
		t.Fatalf("%d runs, %d reports after usage errors", len(f.runs), len(f.reports))
	}
}
