package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	cityhub "github.com/cityhub/cityhub"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/client"
	"github.com/cityhub/cityhub/tiers/legacy"
)

// backlogNode is the district whose old system's export the demo imports
// (testdata/city/legacy/d-320505.csv).
const (
	backlogNode = "d-320505"
	backlogFile = "legacy/d-320505.csv"
)

// backlogResult is what the demo's backlog step did.
type backlogResult struct {
	rows, imported, already, quarantined int
	badLines                             []int32
	report                               *pb.ReconcileReport
}

// importBacklog loads the sample district's legacy export into its node
// (idempotent: a restart finds every row already imported) and reconciles
// the district, which hands city-owned cases up, street and community work
// down, and disputes to the city's joint review queue.
func (d *demo) importBacklog(ctx context.Context) (*backlogResult, error) {
	f, err := legacy.Parse(bytes.NewReader(cityhub.SampleFile(backlogFile)), legacy.FormatCSV)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", backlogFile, err)
	}
	res := &backlogResult{rows: len(f.Rows) + len(f.Bad)}
	for _, b := range f.Bad {
		res.badLines = append(res.badLines, b.Err.GetLine())
	}
	rows, dups := legacy.Duplicates(f.Rows)
	for _, b := range dups {
		res.badLines = append(res.badLines, b.Err.GetLine())
	}
	cl := pb.NewOwnershipServiceClient(d.leaderConn(backlogNode)) // as the node's administrator
	const batch = 200
	for lo := 0; lo < len(rows); lo += batch {
		hi := min(lo+batch, len(rows))
		req := &pb.ImportCasesRequest{RequestId: fmt.Sprintf("demo-import/%s/%d", backlogNode, lo), Rows: rows[lo:hi], Actor: "cityhubdemo"}
		resp, err := retry(ctx, func(ctx context.Context) (*pb.ImportCasesResponse, error) { return cl.ImportCases(ctx, req) })
		if err != nil {
			return nil, fmt.Errorf("import %s rows %d-%d: %w", backlogFile, lo, hi, err)
		}
		res.imported += int(resp.Imported)
		res.already += int(resp.Already)
		for _, r := range resp.Rejected {
			res.badLines = append(res.badLines, r.Line)
		}
	}
	res.quarantined = len(res.badLines)
	slices.Sort(res.badLines)
	res.report, err = retry(ctx, func(ctx context.Context) (*pb.ReconcileReport, error) {
		return cl.Reconcile(ctx, &pb.ReconcileRequest{})
	})
	if err != nil {
		return nil, fmt.Errorf("reconcile %s: %w", backlogNode, err)
	}
	return res, nil
}

// leaderConn is the connection to node's leader (its calls carry the
// credentials identities.credentials picks: the administrator's here).
func (d *demo) leaderConn(node string) *grpc.ClientConn {
	for i, r := range d.groups[node] {
		if r.Node.IsLeader() {
			return d.byNode[node][i]
		}
	}
	return d.byNode[node][0]
}

// retry calls fn by tiers/client's policy (at most 20 calls of up to a
// minute each, backing off from 250 ms), for calls made while a freshly
// started federation settles (elections, links opening, a reconciliation
// run resumed by the new leader: Aborted, retried). fn sends the same
// request, with its request id, every time.
func retry[T any](ctx context.Context, fn func(context.Context) (T, error)) (T, error) {
	var last T
	err := client.Do(ctx, client.Policy{Initial: 250 * time.Millisecond, Max: 2 * time.Second, Attempts: 20, Timeout: time.Minute,
		Classify: client.ClassifyAlso(client.RetryHere, codes.Aborted, codes.Unauthenticated)},
		func(ctx context.Context) (err error) {
			last, err = fn(ctx)
			return err
		})
	return last, err
}

func (r *backlogResult) print(w io.Writer, ctl, password, districtAddr, cityAddr string) {
	lines := make([]string, len(r.badLines))
	for i, l := range r.badLines {
		lines[i] = fmt.Sprint(l)
	}
	rep := r.report
	fmt.Fprintf(w, `Backlog of %s: %d rows of its old system's export (testdata/city/%s): %d imported, %d imported before, %d quarantined (lines %s).
Reconciled (run %s): %d cases scanned, %d in place, %d moved to their owners, %d pending, %d disputed and %d rejected sent to the city's joint review queue.
  %[15]s --addr %[17]s login --user admin --password-stdin <<< '%[16]s'; %[15]s --addr %[17]s reconcile report   the run's report (by kind, class, unit, age, destination)
  %[15]s --addr %[18]s review list   the city's joint review queue (疑难案件会诊; after logging in there as lead, above)

`, backlogNode, r.rows, backlogFile, r.imported, r.already, r.quarantined, strings.Join(lines, ", "),
		rep.GetRunId(), rep.GetScanned(), rep.GetInPlace(), rep.GetMoved(), rep.GetPending(), rep.GetDisputed(), rep.GetRejected(), ctl, password, districtAddr, cityAddr)
}
