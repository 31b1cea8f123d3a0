package fedtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/cityhub/cityhub/config"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/evidence"
	"github.com/cityhub/cityhub/tiers/replica/testcluster"
)

const evAdminPassword = "admin-password-0001"

// evIdentities makes the seats of a test on node: the administrator logs
// in once (bcrypt is slow under the race detector, so every login counts),
// then each seat is an account (logged in) or an integrator key.
type evIdentities struct {
	t     *testing.T
	f     *Federation
	node  string
	admin string
}

func evAdmin(t *testing.T, f *Federation, node string) *evIdentities {
	t.Helper()
	g := f.Groups[node]
	// The first administrator is created by the leader: wait for it in
	// every running replica's store (a login is checked against the
	// replica it reaches) rather than by failing logins.
	testcluster.WaitFor(t, 60*time.Second, "the first administrator at "+node, func() bool {
		for _, i := range g.Up() {
			r := g.Replica(i)
			if r == nil {
				return false
			}
			if _, err := r.Node.Store().GetAccount("admin"); err != nil {
				return false
			}
		}
		return true
	})
	id := &evIdentities{t: t, f: f, node: node}
	id.admin = id.login("admin", evAdminPassword)
	return id
}

// call runs fn on the node's running replicas until one answers without a
// retryable error.
func (id *evIdentities) call(what string, fn func(ctx context.Context, ac pb.AuthServiceClient) error) {
	id.t.Helper()
	g := id.f.Groups[id.node]
	var last error
	deadline := time.Now().Add(120 * time.Second)
	for k := 0; time.Now().Before(deadline); k++ {
		up := g.Up()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		err := fn(ctx, pb.NewAuthServiceClient(g.Conn(up[k%len(up)])))
		cancel()
		if err == nil {
			return
		}
		if !Retryable(err) {
			id.t.Fatalf("%s at %s: %v", what, id.node, err)
		}
		last = err
		time.Sleep(200 * time.Millisecond)
	}
	id.t.Fatalf("%s at %s: %v", what, id.node, last)
}

func (id *evIdentities) login(name, pw string) string {
	id.t.Helper()
	var tok string
	id.call("login "+name, func(ctx context.Context, ac pb.AuthServiceClient) error {
		r, err := ac.Login(ctx, &pb.LoginRequest{Username: name, Password: pw})
		if err == nil {
			tok = r.AccessToken
		}
		return err
	})
	return tok
}

// account makes an account with role (and unit or grids) and logs it in.
func (id *evIdentities) account(name string, role pb.Role, unit string, grids ...string) string {
	id.t.Helper()
	id.call("account "+name, func(ctx context.Context, ac pb.AuthServiceClient) error {
		_, err := ac.CreateAccount(withCred(ctx, id.admin), &pb.CreateAccountRequest{
			RequestId: "acct-" + id.node + "-" + name, Name: name, DisplayName: name, Role: role, Unit: unit, Grids: grids, Password: "seat-password-0001"})
		return err
	})
	return id.login(name, "seat-password-0001")
}

// key makes an integrator key with role, reporting as source.
func (id *evIdentities) key(name string, role pb.Role, source pb.Source) string {
	id.t.Helper()
	var key string
	id.call("key "+name, func(ctx context.Context, ac pb.AuthServiceClient) error {
		r, err := ac.CreateAPIKey(withCred(ctx, id.admin), &pb.CreateAPIKeyRequest{RequestId: "key-" + id.node + "-" + name, Name: name, Role: role, Sources: []pb.Source{source}})
		if err == nil {
			key = r.Key
		}
		return err
	})
	return key
}

func withCred(ctx context.Context, cred string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+cred)
}

// evDownload reads evidence through any running replica of node as cred
// (retrying Unavailable: a replica catching up, a fetch through a link
// whose replica was just killed); other errors are returned at once.
func evDownload(t *testing.T, f *Federation, node, cred, caseID, sha string) ([]byte, error) {
	t.Helper()
	g := f.Groups[node]
	var (
		out  []byte
		last error
	)
	deadline := time.Now().Add(60 * time.Second)
	for k := 0; time.Now().Before(deadline); k++ {
		up := g.Up()
		i := up[k%len(up)]
		ctx, cancel := context.WithTimeout(withCred(context.Background(), cred), 20*time.Second)
		var buf bytes.Buffer
		_, err := evidence.Download(ctx, pb.NewEvidenceServiceClient(g.Conn(i)), caseID, sha, &buf)
		cancel()
		if err == nil {
			return buf.Bytes(), nil
		}
		if !Retryable(err) {
			return nil, err
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("download %s at %s: %v", sha, node, last)
	return out, nil
}

// Acceptance (issue 15, evidence): a photo uploaded at a community is read
// at the district and the city through their own APIs (the bytes fetched
// through the federation's links from the community's group), by callers
// allowed to read the case; a caller outside the case's scope is refused;
// with a replica of the community and of the district killed, the photo is
// still read, from the others.
func TestEvidenceUploadAtCommunityReadAboveAndAfterAKill(t *testing.T) {
	pw := filepath.Join(t.TempDir(), "admin-password")
	if err := os.WriteFile(pw, []byte(evAdminPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f := New(t, chain(), 3, func(c *config.Config) {
		c.Auth.Disabled = false
		c.Auth.AdminPasswordFile = pw
		c.Evidence.ChunkBytes = 256 << 10
	})
	const comm, grid = "c-320505001001", "320505001001007"
	insp := evAdmin(t, f, comm).account("insp", pb.Role_ROLE_INSPECTOR, "", grid[:12])
	ctx, cancel := context.WithTimeout(withCred(context.Background(), insp), 120*time.Second)
	defer cancel()
	var c *pb.Case
	if err := f.Client(comm).Do(ctx, func(ctx context.Context, cl pb.CaseServiceClient) error {
		resp, err := cl.ReportCase(ctx, &pb.ReportCaseRequest{RequestId: "ev-report-1", Source: pb.Source_SOURCE_INSPECTOR,
			Kind: pb.Kind_KIND_EVENT, MajorCode: "01", MinorCode: "02", GridCode: grid, Description: "暴露垃圾"})
		if err == nil {
			c = resp.Case
		}
		return err
	}); err != nil {
		t.Fatalf("report: %v", err)
	}
	photo := make([]byte, 900<<10)
	r := rand.New(rand.NewPCG(15, 3))
	for i := range photo {
		photo[i] = byte(r.UintN(256))
	}
	copy(photo, []byte{0xff, 0xd8, 0xff, 0xe0, 0, 0x10, 'J', 'F', 'I', 'F', 0}) // a JPEG as far as sniffing goes
	sum := sha256.Sum256(photo)
	sha := hex.EncodeToString(sum[:])
	g := f.Groups[comm]
	testcluster.WaitFor(t, 60*time.Second, "upload at the community", func() bool {
		up := g.Up()
		uctx, ucancel := context.WithTimeout(ctx, 20*time.Second)
		defer ucancel()
		resp, err := evidence.UploadStream(uctx, pb.NewEvidenceServiceClient(g.Conn(up[0])), &pb.UploadEvidenceHeader{
			CaseId: c.Id, RequestId: "ev-upload-1", Stage: pb.EvidenceStage_EVIDENCE_STAGE_REPORT, Kind: pb.EvidenceKind_EVIDENCE_KIND_BEFORE,
		}, bytes.NewReader(photo))
		if err != nil && !Retryable(err) {
			t.Fatalf("upload: %v", err)
		}
		if err == nil && (resp.Evidence.GetNode() != comm || resp.Evidence.UploadedBy != "acct:insp") {
			t.Fatalf("uploaded ref %v: want node %s, uploader acct:insp", resp.Evidence, comm)
		}
		return err == nil
	})
	// The reference travels up with the case.
	for _, n := range []string{"d-320505", "city"} {
		waitFor(t, 60*time.Second, "the case with its evidence at "+n, func() bool {
			got := f.stored(t, n, c.Id)
			return got != nil && len(got.Evidence) == 1 && got.Evidence[0].Sha256 == sha
		})
	}
	district, city := evAdmin(t, f, "d-320505"), evAdmin(t, f, "city")
	leader := district.account("leader", pb.Role_ROLE_SHIFT_LEADER, "")
	outside := district.account("insp-other", pb.Role_ROLE_INSPECTOR, "", "320505002")
	// At the city, integrator keys (no bcrypt): the 12345 hotline's reads
	// every case of the node, an app only its own reports.
	hotline := city.key("hotline", pb.Role_ROLE_INTAKE_CLERK, pb.Source_SOURCE_HOTLINE_12345)
	app := city.key("app", pb.Role_ROLE_CITIZEN, pb.Source_SOURCE_APP)
	for _, rd := range []struct{ node, cred, who string }{{"d-320505", leader, "district shift leader"}, {"city", hotline, "city hotline"}} {
		got, err := evDownload(t, f, rd.node, rd.cred, c.Id, sha)
		if err != nil || !bytes.Equal(got, photo) {
			t.Fatalf("%s reading at %s: %d bytes, %v", rd.who, rd.node, len(got), err)
		}
	}
	// Outside the case's scope: refused, naming the permission.
	for _, rd := range []struct{ node, cred, who string }{{"d-320505", outside, "an inspector of other grids"}, {"city", app, "an app that did not report the case"}} {
		_, err := evDownload(t, f, rd.node, rd.cred, c.Id, sha)
		if status.Code(err) != codes.PermissionDenied {
			t.Errorf("%s at %s: %v, want PermissionDenied", rd.who, rd.node, err)
		}
	}
	// Kill a replica of the community (where the bytes are) and one of the
	// district: the photo is read from the others, at every tier.
	g.Kill(g.WaitLeader(10 * time.Second))
	dg := f.Groups["d-320505"]
	dg.Kill(dg.Up()[0])
	for _, rd := range []struct{ node, cred string }{{comm, insp}, {"d-320505", leader}, {"city", hotline}} {
		got, err := evDownload(t, f, rd.node, rd.cred, c.Id, sha)
		if err != nil || !bytes.Equal(got, photo) {
			t.Fatalf("after the kills, at %s: %d bytes, %v", rd.node, len(got), err)
		}
	}
}
