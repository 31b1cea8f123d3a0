package fedtest

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/cityhub/cityhub/config"
	"github.com/cityhub/cityhub/federation/certs"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// TestMutualTLSBetweenTiers runs a city and a district over mTLS and checks
// that a case crosses the link, and that the district refuses callers that
// are not its neighbours, that lie about who they are, or that have no
// certificate of the federation's CA.
func TestMutualTLSBetweenTiers(t *testing.T) {
	dir := t.TempDir()
	if err := certs.GenerateDev(dir, []string{"city", "d-320505", "c-999999000001"}, certs.DevOptions{}); err != nil {
		t.Fatal(err)
	}
	other := t.TempDir()
	if err := certs.GenerateDev(other, []string{"city"}, certs.DevOptions{}); err != nil {
		t.Fatal(err)
	}
	specs := chain()[:2]
	f := New(t, specs, 1, func(c *config.Config) {
		files := certs.NodeFiles(dir, c.Federation.Node)
		c.Federation.Insecure = false
		c.Federation.TLS = config.TLSConfig{CA: files.CA, Cert: files.Cert, Key: files.Key}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	city := f.Client("city")
	c := report(ctx, t, city, "tls-1", "320505001001001")
	act(ctx, t, city, c.Id, "tls-2", pb.Action_ACTION_FILE, pb.Role_ROLE_SHIFT_LEADER, nil)
	act(ctx, t, city, c.Id, "tls-3", pb.Action_ACTION_DISPATCH, pb.Role_ROLE_DISPATCHER, func(r *pb.ActRequest) { r.Unit, r.TimeLimitMinutes = "320505-roads", 60 })
	waitFor(t, 20*time.Second, "the district holds the case over mTLS", func() bool {
		got, err := f.anyReplica("d-320505", c.Id)
		return err == nil && got.Holder == "d-320505"
	})

	district := f.Topo.Neighbours("city")[0]
	n, _ := f.Topo.Node(district)
	call := func(files certs.Files, from string) error {
		cc, err := files.ClientConfig()
		if err != nil {
			t.Fatal(err)
		}
		cc.ServerName = "d-320505"
		conn, err := grpc.NewClient(n.Replicas[0], grpc.WithTransportCredentials(credentials.NewTLS(cc)))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_, err = pb.NewFederationServiceClient(conn).Deliver(cctx, &pb.DeliverRequest{From: from, To: "d-320505"})
		return err
	}
	// The real parent may ask for the link's mark (an empty batch).
	if err := call(certs.NodeFiles(dir, "city"), "city"); err != nil {
		t.Fatalf("the city's own certificate: %v", err)
	}
	for _, tc := range []struct {
		name  string
		files certs.Files
		from  string
		want  codes.Code
	}{
		{"a node of the federation that is not a neighbour", certs.NodeFiles(dir, "c-999999000001"), "c-999999000001", codes.PermissionDenied},
		{"a certificate that names another node than the request", certs.NodeFiles(dir, "c-999999000001"), "city", codes.PermissionDenied},
		{"a certificate from another CA", certs.Files{CA: filepath.Join(dir, certs.CAFile), Cert: certs.NodeFiles(other, "city").Cert, Key: certs.NodeFiles(other, "city").Key}, "city", codes.Unavailable},
	} {
		if err := call(tc.files, tc.from); status.Code(err) != tc.want {
			t.Errorf("%s: %v, want %s", tc.name, err, tc.want)
		}
	}
	// Plain text is refused by a TLS listener.
	conn, err := grpc.NewClient(n.Replicas[0], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cctx, ccancel := context.WithTimeout(ctx, 3*time.Second)
	defer ccancel()
	if _, err := pb.NewFederationServiceClient(conn).Deliver(cctx, &pb.DeliverRequest{From: "city", To: "d-320505"}); err == nil {
		t.Fatal("a plain-text call was accepted")
	}
}
