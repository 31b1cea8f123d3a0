package api_test

import (
	"context"
	"net/http"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// Every staff role may locate and read geometry (this node has none: it
// answers FailedPrecondition after authorizing); integrators' keys may not.
func TestGeoAccess(t *testing.T) {
	cl, _, seats := authCluster(t)
	geoc := pb.NewGeoServiceClient(cl.Conn(0))
	for _, s := range seats {
		ctx := withCred(context.Background(), s.cred)
		_, err := geoc.Locate(ctx, &pb.LocateRequest{Lat: 31.3, Lng: 120.6, Crs: "gcj02"})
		_, gerr := geoc.GetGridGeometry(ctx, &pb.GridGeometryRequest{})
		want := codes.FailedPrecondition
		if s.role == pb.Role_ROLE_CITIZEN || s.role == pb.Role_ROLE_SYSTEM {
			want = codes.PermissionDenied
		}
		if status.Code(err) != want || status.Code(gerr) != want {
			t.Errorf("%s: Locate %v, GetGridGeometry %v; want %s", s.name, err, gerr, want)
		}
		req, _ := http.NewRequest(http.MethodGet, cl.HTTPBase(0)+"/v1/geo/grids.geojson", nil)
		req.Header.Set("Authorization", "Bearer "+s.cred)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		wantHTTP := http.StatusConflict // FailedPrecondition
		if want == codes.PermissionDenied {
			wantHTTP = http.StatusForbidden
		}
		if resp.StatusCode != wantHTTP {
			t.Errorf("%s: GET /v1/geo/grids.geojson %d, want %d", s.name, resp.StatusCode, wantHTTP)
		}
	}
}
