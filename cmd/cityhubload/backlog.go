package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/cityhub/cityhub/cmd/internal/authclient"
	"github.com/cityhub/cityhub/cmd/internal/casegen"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/client"
)

// backlogBatch is the rows of one ImportCases call (the API's limit).
const backlogBatch = 1000

// legacySource is how an old system's export names each source.
var legacySource = map[pb.Source]string{
	pb.Source_SOURCE_INSPECTOR: "inspector", pb.Source_SOURCE_HOTLINE_12345: "12345", pb.Source_SOURCE_HOTLINE_12319: "12319",
	pb.Source_SOURCE_APP: "app", pb.Source_SOURCE_CAMERA: "camera", pb.Source_SOURCE_LEADER: "leader", pb.Source_SOURCE_MEDIA: "media",
}

// importBacklog stores n cases in the tier before a measurement, the
// fastest way the API offers: an old system's backlog through ImportCases,
// 1,000 rows a call, o.clients calls in flight, to the tier's leader
// (tiers/client: following it over --addrs, a batch retried by
// backlogPolicy under its one request id; the login is made at the first
// address and its token serves the group). The
// cases have the DOMAIN.md class mix, grids and places of the load's
// reports, and were reported over the two years before now (outside any
// duplicate window): half closed, the others reported or filed.
// backlogPolicy retries a batch of the backlog: up to 8 calls of a
// minute each, backing off from 200 ms.
var backlogPolicy = client.Policy{Initial: 200 * time.Millisecond, Max: 5 * time.Second, Attempts: 8, Timeout: time.Minute}

func importBacklog(o options, n int64) error {
	rs := client.NewReplicas("tier", o.addrs, grpc.WithTransportCredentials(insecure.NewCredentials()))
	defer rs.Close()
	cc, err := rs.Conn(0)
	if err != nil {
		return err
	}
	var callOpts []grpc.CallOption
	switch {
	case o.token != "":
		callOpts = append(callOpts, grpc.PerRPCCredentials(authclient.Bearer(o.token)))
	case o.user != "":
		ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
		sess, err := authclient.Login(ctx, cc, o.user, o.pass)
		cancel()
		if err != nil {
			return err
		}
		callOpts = append(callOpts, grpc.PerRPCCredentials(sess))
	}
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	now := time.Now()
	var (
		next, done atomic.Int64
		firstErr   error
		mu         sync.Mutex
		wg         sync.WaitGroup
	)
	batches := (n + backlogBatch - 1) / backlogBatch
	start := time.Now()
	for w := 0; w < o.clients; w++ {
		wg.Go(func() {
			gen := casegen.New(uint64(now.UnixNano())+uint64(w), o.jurisdiction, "backlog")
			rng := rand.New(rand.NewPCG(uint64(w), uint64(now.UnixNano())))
			for b := next.Add(1) - 1; b < batches; b = next.Add(1) - 1 {
				rows := make([]*pb.LegacyRow, 0, backlogBatch)
				for i := b * backlogBatch; i < min(n, (b+1)*backlogBatch); i++ {
					r := gen.Report()
					status := [...]string{"closed", "closed", "reported", "filed"}[rng.IntN(4)]
					at := now.Add(-7*24*time.Hour - time.Duration(rng.Int64N(int64(2*365*24*time.Hour))))
					kind := "event"
					if r.Kind == pb.Kind_KIND_COMPONENT {
						kind = "component"
					}
					rows = append(rows, &pb.LegacyRow{Line: int32(i%backlogBatch + 2), LegacyId: fmt.Sprintf("%s-%d", run, i),
						ReportedAt: at.Format(time.RFC3339), Source: legacySource[r.Source], Kind: kind, Major: r.MajorCode, Minor: r.MinorCode,
						GridCode: r.GridCode, ComponentId: r.ComponentId, Lat: strconv.FormatFloat(r.Location.GetLat(), 'f', 6, 64),
						Lng: strconv.FormatFloat(r.Location.GetLng(), 'f', 6, 64), Address: r.Location.GetAddress(), Description: r.Description, Status: status})
				}
				req := &pb.ImportCasesRequest{RequestId: fmt.Sprintf("backlog-%s-%d", run, b), Rows: rows, Actor: "cityhubload"}
				var resp *pb.ImportCasesResponse
				err := rs.Call(context.Background(), backlogPolicy, func(ctx context.Context, c *grpc.ClientConn) (err error) {
					resp, err = pb.NewOwnershipServiceClient(c).ImportCases(ctx, req, callOpts...)
					return err
				})
				if err == nil && len(resp.Rejected) > 0 {
					err = fmt.Errorf("%d rows rejected, e.g. line %d %s: %s", len(resp.Rejected), resp.Rejected[0].Line, resp.Rejected[0].Field, resp.Rejected[0].Reason)
				}
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("import batch %d: %w", b, err)
					}
					mu.Unlock()
					return
				}
				if d := done.Add(int64(len(rows))); d/100_000 != (d-int64(len(rows)))/100_000 {
					fmt.Fprintf(os.Stderr, "cityhubload: %d cases imported, %.0f/s\n", d, float64(d)/time.Since(start).Seconds())
				}
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	fmt.Fprintf(os.Stderr, "cityhubload: backlog of %d cases imported in %s (%.0f/s)\n", done.Load(), time.Since(start).Round(time.Millisecond), float64(done.Load())/time.Since(start).Seconds())
	return nil
}
