package replica_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cityhub/cityhub/config"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/diskspace"
	"github.com/cityhub/cityhub/tiers/replica"
	"github.com/cityhub/cityhub/tiers/replica/testcluster"
)

const (
	// smallFS is the size of the tmpfs the data directories live on, and
	// smallReserve the reserve on it.
	smallFS      = 96 << 20
	smallReserve = 8 << 20
	// portableGap: without a mount, the reserve is set this far below the
	// free space of an ordinary directory (room for the replicas' own
	// files, a raft-wal segment of 64 MiB each, and for what other
	// processes on the machine write meanwhile), and the ballast takes
	// the free space portableBelow under the reserve (room for what they
	// delete).
	portableGap   = 512 << 20
	portableBelow = 128 << 20
)

// TestWritesStopBelowDiskReserve (issue 11, acceptance 3): the data
// directories of a 1- and a 3-replica tier sit on a small filesystem of
// their own (a tmpfs; where it cannot be mounted, a reserve just below
// the free space of an ordinary directory). Writes succeed; a ballast
// file takes the free space below the reserve; then every write, through
// the leader or a follower, gRPC or REST, is refused at once as
// Unavailable with DISK_SPACE_LOW and a retry delay, and no replica's raft
// log grows, while a replay of an acknowledged request and every read
// still answer. With the ballast gone the same refused request succeeds
// when retried, without a restart, and every acknowledged case is there.
// The leader's own jobs pause too: a case that falls overdue below the
// reserve is not marked (the sweeper's proposal is refused and counted)
// until space returns, and then it is.
func TestWritesStopBelowDiskReserve(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test: run without -short")
	}
	for _, replicas := range []int{1, 3} {
		t.Run(fmt.Sprintf("replicas=%d", replicas), func(t *testing.T) { diskReserveScenario(t, replicas) })
	}
}

func diskReserveScenario(t *testing.T, replicas int) {
	root := filepath.Join(t.TempDir(), "fs")
	if err := os.Mkdir(root, 0o700); err != nil {
		t.Fatal(err)
	}
	mounted, why := mountSmallFS(t, root, smallFS)
	var reserve uint64 = smallReserve
	if !mounted {
		u, err := diskspace.Statfs(root)
		if err != nil {
			t.Fatal(err)
		}
		if u.Free < 2*portableGap {
			t.Fatalf("no tmpfs (%v) and only %s free in %s: the portable variant needs %s", why, diskspace.Bytes(u.Free), root, diskspace.Bytes(2*portableGap))
		}
		reserve = u.Free - portableGap
		t.Logf("no tmpfs (%v): reserve %s, %s below the free space of %s", why, diskspace.Bytes(reserve), diskspace.Bytes(portableGap), root)
	}
	clk := testcluster.NewClock(time.Date(2026, 11, 23, 9, 0, 0, 0, time.FixedZone("CST", 8*3600))) // a Monday
	c := testcluster.NewWith(t, replicas, func(config.Config) replica.Options { return replica.Options{Clock: clk} }, func(cfg *config.Config) {
		cfg.Node.DataDir = filepath.Join(root, cfg.Node.ID)
		cfg.Limits.DiskReserveBytes = int64(reserve)
		cfg.Limits.DiskCheckInterval = 20 * time.Millisecond
		cfg.Deadlines.SweepInterval = 50 * time.Millisecond
	})
	leader := c.Leader()
	via := []int{leader}
	if replicas > 1 {
		via = append(via, (leader+1)%replicas)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// Before: writes through every way in succeed.
	acked := map[string]string{} // case id -> description
	var firstReport *pb.ReportCaseRequest
	for _, i := range via {
		for k := 0; k < 5; k++ {
			desc := fmt.Sprintf("道路积水 %s-%d", c.Members[i].ID, k)
			req := report(fmt.Sprintf("disk-before-%s-%d", c.Members[i].ID, k), desc)
			resp, err := c.Cases(i).ReportCase(ctx, req)
			if err != nil {
				t.Fatalf("report before filling, through %s: %v", c.Members[i].ID, err)
			}
			acked[resp.Case.Id] = desc
			if firstReport == nil {
				firstReport = req
			}
		}
	}
	var someID, dueID string
	for id := range acked {
		if someID == "" {
			someID = id
		} else if dueID == "" {
			dueID = id
		}
	}
	for _, id := range []string{someID, dueID} {
		if _, err := c.Cases(leader).Act(ctx, &pb.ActRequest{CaseId: id, RequestId: "disk-file-before-" + id, Action: pb.Action_ACTION_FILE,
			Actor: "lead", Role: pb.Role_ROLE_SHIFT_LEADER, Note: "立案"}); err != nil {
			t.Fatalf("file before filling: %v", err)
		}
	}
	// dueID's handling deadline is 09:30.
	if _, err := c.Cases(leader).Dispatch(ctx, &pb.ActRequest{CaseId: dueID, RequestId: "disk-dispatch-before", Actor: "disp",
		Role: pb.Role_ROLE_DISPATCHER, Unit: "sanitation", TimeLimitMinutes: 30}); err != nil {
		t.Fatalf("dispatch before filling: %v", err)
	}
	for _, i := range c.Up() {
		if st := c.Members[i].R.Node.DiskSpace().State(); st.Low || st.Reserve != reserve {
			t.Fatalf("%s before filling: %+v (reserve %d)", c.Members[i].ID, st, reserve)
		}
	}
	u, _ := diskspace.Statfs(root)
	t.Logf("before filling: %s free of %s (tmpfs %v), reserve %s", diskspace.Bytes(u.Free), diskspace.Bytes(u.Total), mounted, diskspace.Bytes(reserve))

	// Fill: a ballast file takes the free space below the reserve (half of
	// it on the tmpfs: the node must stop well before the filesystem is
	// full, which is the point).
	target := reserve / 2
	if !mounted {
		target = reserve - portableBelow
	}
	ballast := filepath.Join(root, "ballast")
	fill(t, ballast, root, target)
	testcluster.WaitFor(t, 30*time.Second, "every replica below the reserve", func() bool {
		for _, i := range c.Up() {
			if !c.Members[i].R.Node.DiskSpace().State().Low {
				return false
			}
		}
		return true
	})
	// The sweeper's marks are refused (on whichever replica leads now):
	// nothing is marked, nothing written.
	clk.Set(time.Date(2026, 11, 23, 10, 0, 0, 0, time.FixedZone("CST", 8*3600)))
	testcluster.WaitFor(t, 30*time.Second, "the sweeper's mark refused", func() bool { return refusedOf(c, "mark_overdue_batch") > 0 })
	for _, i := range c.Up() {
		if cs, err := c.Members[i].R.Node.Store().GetCase(dueID); err != nil || cs.Overdue {
			t.Fatalf("%s marked overdue on %s below the reserve: %v", dueID, c.Members[i].ID, err)
		}
	}
	before := quietIndexes(t, c)

	// Writes are refused at once, through the leader and a follower.
	refused := report("disk-refused", "井盖缺失 (refused, then retried)")
	for _, i := range via {
		cctx, ccancel := context.WithTimeout(ctx, 5*time.Second) // a forwarded refusal must not be retried until a deadline
		_, err := c.Cases(i).ReportCase(cctx, refused)
		ccancel()
		wantDiskRefusal(t, "report through "+c.Members[i].ID, err)
		cctx, ccancel = context.WithTimeout(ctx, 5*time.Second)
		_, err = c.Cases(i).Act(cctx, &pb.ActRequest{CaseId: someID, RequestId: "disk-dispatch-refused-" + c.Members[i].ID, Action: pb.Action_ACTION_DISPATCH,
			Actor: "lead", Role: pb.Role_ROLE_SHIFT_LEADER, Unit: "unit-water", UnitTier: pb.Tier_TIER_DISTRICT, TimeLimitMinutes: 120})
		ccancel()
		wantDiskRefusal(t, "dispatch through "+c.Members[i].ID, err)
		// A replay of an acknowledged request answers from the state.
		resp, err := c.Cases(i).ReportCase(ctx, firstReport)
		if err != nil || !resp.Replayed {
			t.Fatalf("replay through %s below the reserve: %v, %v", c.Members[i].ID, resp, err)
		}
	}
	code, hdr, body := restPost(t, c.HTTPBase(via[len(via)-1])+"/v1/cases",
		`{"request_id":"disk-rest-refused","actor":"insp-7","role":"ROLE_INSPECTOR","source":"SOURCE_INSPECTOR","kind":"KIND_EVENT",`+
			`"major_code":"01","minor_code":"02","grid_code":"320582110152102","description":"占道经营"}`)
	errBody, _ := body["error"].(map[string]any)
	if code != http.StatusServiceUnavailable || hdr.Get("Retry-After") != strconv.Itoa(int(diskspace.RetryAfter/time.Second)) ||
		errBody["reason"] != diskspace.Reason || errBody["code"] != "Unavailable" || !strings.Contains(fmt.Sprint(errBody["message"]), "below the reserve") {
		t.Fatalf("REST report below the reserve: %d, Retry-After %q, %v", code, hdr.Get("Retry-After"), body)
	}
	if got := quietIndexes(t, c); got != before {
		t.Fatalf("refused writes moved the raft logs from %d to %d", before, got)
	}

	// Reads go on, at the default (linearizable) consistency and stale.
	for _, i := range via {
		for id, desc := range acked {
			got, err := c.Cases(i).GetCase(ctx, &pb.GetCaseRequest{CaseId: id})
			if err != nil || got.Description != desc {
				t.Fatalf("read %s through %s below the reserve: %v, %v", id, c.Members[i].ID, got, err)
			}
		}
		list, err := c.Cases(i).ListCases(ctx, &pb.ListCasesRequest{PageSize: 500, Consistency: pb.Consistency_CONSISTENCY_STALE})
		if err != nil || len(list.Cases) != len(acked) {
			t.Fatalf("list through %s below the reserve: %d cases, %v; want %d", c.Members[i].ID, len(list.GetCases()), err, len(acked))
		}
	}
	// Operators see it: /readyz stays ready (reads answer) but says writes
	// are refused; the metrics count the refusals.
	for _, i := range c.Up() {
		code, rz := readyz(c, i)
		disk, _ := rz["disk"].(map[string]any)
		if code != http.StatusOK || disk["low"] != true || rz["writes"] == nil {
			t.Fatalf("%s /readyz below the reserve: %d %v", c.Members[i].ID, code, rz)
		}
	}
	// Refusals are counted where they happen: on the leader of the
	// moment (leadership may move under a loaded machine).
	var reports, acts float64
	for _, i := range c.Up() {
		metrics := scrape(t, c.HTTPBase(i))
		if metricNumber(t, metrics, `cityhub_disk_low`) != 1 || metricNumber(t, metrics, `cityhub_disk_reserve_bytes`) != float64(reserve) {
			t.Fatalf("%s's metrics below the reserve:\n%s", c.Members[i].ID, grepLines(metrics, "cityhub_disk_"))
		}
		if free := metricNumber(t, metrics, `cityhub_disk_free_bytes{dir=`); free < 0 || free >= float64(reserve) {
			t.Fatalf("%s: cityhub_disk_free_bytes %v, not below the reserve %d", c.Members[i].ID, free, reserve)
		}
		reports += max(0, metricNumber(t, metrics, `cityhub_disk_refused_writes_total{command="report"}`))
		acts += max(0, metricNumber(t, metrics, `cityhub_disk_refused_writes_total{command="act"}`))
	}
	if reports < float64(len(via)) || acts < float64(len(via)) {
		t.Fatalf("cityhub_disk_refused_writes_total: %v reports, %v actions, want at least %d of each", reports, acts, len(via))
	}

	// Space returns: the refused request, retried with its id, goes
	// through without a restart.
	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	var retried *pb.CaseResponse
	testcluster.WaitFor(t, 60*time.Second, "the refused report to succeed once space is freed", func() bool {
		cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
		defer ccancel()
		resp, err := c.Cases(via[len(via)-1]).ReportCase(cctx, refused)
		if err != nil {
			if !diskspace.IsRefusal(err) {
				t.Logf("retry: %v", err)
			}
			return false
		}
		retried = resp
		return true
	})
	acked[retried.Case.Id] = refused.Description
	if _, err := c.Cases(leader).Act(ctx, &pb.ActRequest{CaseId: retried.Case.Id, RequestId: "disk-file-after", Action: pb.Action_ACTION_FILE,
		Actor: "lead", Role: pb.Role_ROLE_SHIFT_LEADER, Note: "立案"}); err != nil {
		t.Fatalf("file after freeing: %v", err)
	}
	// Each replica's monitor finds the space on its own next check (the
	// leader's found it already, or the write would have been refused).
	for _, i := range c.Up() {
		testcluster.WaitFor(t, 60*time.Second, c.Members[i].ID+" above the reserve again", func() bool {
			return !c.Members[i].R.Node.DiskSpace().State().Low
		})
	}

	// The sweeper resumes by itself: the case that fell due is marked.
	for _, i := range c.Up() {
		testcluster.WaitFor(t, 30*time.Second, dueID+" marked overdue on "+c.Members[i].ID+" after space returned", func() bool {
			cs, err := c.Members[i].R.Node.Store().GetCase(dueID)
			return err == nil && cs.Overdue && cs.OverdueCount == 1
		})
	}

	// Nothing acknowledged is lost, nothing refused was written, on every
	// replica.
	var last uint64
	for _, idx := range lastIndexes(c) {
		last = max(last, idx)
	}
	for _, i := range c.Up() {
		testcluster.WaitFor(t, 30*time.Second, c.Members[i].ID+" applied everything", func() bool {
			return c.Members[i].R.Node.AppliedIndex() >= last
		})
		cases := allCases(t, c, i)
		if len(cases) != len(acked) {
			t.Fatalf("%s holds %d cases, want the %d acknowledged", c.Members[i].ID, len(cases), len(acked))
		}
		for _, cs := range cases {
			if acked[cs.Id] != cs.Description {
				t.Fatalf("%s: case %s %q was not acknowledged as such", c.Members[i].ID, cs.Id, cs.Description)
			}
		}
	}
}

// refusedOf sums the writes of kind refused for low disk space over the
// running replicas.
func refusedOf(c *testcluster.Cluster, kind string) uint64 {
	var n uint64
	for _, i := range c.Up() {
		n += c.Members[i].R.Node.DiskSpace().Refused()[kind]
	}
	return n
}

// fill writes a ballast file in dir until the filesystem's free space is
// below target.
func fill(t *testing.T, path, dir string, target uint64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 256<<10)
	for n := 0; ; n++ {
		u, err := diskspace.Statfs(dir)
		if err != nil {
			t.Fatal(err)
		}
		if u.Free < target {
			t.Logf("ballast of %s: %s free", diskspace.Bytes(uint64(n*len(chunk))), diskspace.Bytes(u.Free))
			return
		}
		if _, err := f.Write(chunk); err != nil {
			t.Fatalf("write ballast (%s free, target %s): %v", diskspace.Bytes(u.Free), diskspace.Bytes(target), err)
		}
		if n%64 == 63 {
			if err := f.Sync(); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// wantDiskRefusal fails unless err refuses a write for low disk space as a
// client sees it: Unavailable, DISK_SPACE_LOW, a retry delay.
func wantDiskRefusal(t *testing.T, what string, err error) {
	t.Helper()
	st, _ := status.FromError(err)
	if st.Code() != codes.Unavailable || !diskspace.IsRefusal(err) || !strings.Contains(st.Message(), "below the reserve") {
		t.Fatalf("%s below the reserve: %v, want Unavailable with %s", what, err, diskspace.Reason)
	}
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok && ri.GetRetryDelay().AsDuration() == diskspace.RetryAfter {
			return
		}
	}
	t.Fatalf("%s below the reserve: no RetryInfo of %v in %v", what, diskspace.RetryAfter, st.Details())
}

func restPost(t *testing.T, url, body string) (int, http.Header, map[string]any) {
	t.Helper()
	cl := http.Client{Timeout: 10 * time.Second}
	resp, err := cl.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, resp.Header, out
}

func scrape(t *testing.T, base string) string {
	t.Helper()
	cl := http.Client{Timeout: 10 * time.Second}
	resp, err := cl.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// metricNumber is the value of the first sample whose line starts with
// prefix (-1 when there is none).
func metricNumber(t *testing.T, text, prefix string) float64 {
	t.Helper()
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(prefix) + `[^ ]* (\S+)$`)
	m := re.FindStringSubmatch(text)
	if m == nil {
		return -1
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatalf("metric %s: %v", prefix, err)
	}
	return v
}

func grepLines(text, sub string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
