package replica_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/cityhub/cityhub/config"
	"github.com/cityhub/cityhub/federation/certs"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/replica/testcluster"
)

// TestClientAPITLS runs a 3-replica tier with TLS on its client API and
// authentication on: clients speak TLS (plain text is refused), a follower
// passes a linearizable read and a write to the leader over TLS with the
// caller's credentials, and a replaced certificate is served without a
// restart.
func TestClientAPITLS(t *testing.T) {
	dir := t.TempDir()
	if err := certs.GenerateDev(dir, []string{"api"}, certs.DevOptions{}); err != nil {
		t.Fatal(err)
	}
	// Each replica serves a copy, so the test can rotate one replica's.
	pw := filepath.Join(dir, "admin-password")
	if err := os.WriteFile(pw, []byte("tls-admin-password"), 0o600); err != nil {
		t.Fatal(err)
	}
	n := 0
	cl := testcluster.New(t, 3, func(c *config.Config) {
		n++
		sub := filepath.Join(dir, "r", string(rune('0'+n)))
		if err := os.MkdirAll(sub, 0o700); err != nil {
			t.Fatal(err)
		}
		copyFile(t, filepath.Join(dir, "api.pem"), filepath.Join(sub, "api.pem"))
		copyFile(t, filepath.Join(dir, "api-key.pem"), filepath.Join(sub, "api-key.pem"))
		c.TLS = config.APITLSConfig{Cert: filepath.Join(sub, "api.pem"), Key: filepath.Join(sub, "api-key.pem"), CA: filepath.Join(dir, "ca.pem")}
		c.Auth.Disabled = false
		c.Auth.AdminPasswordFile = pw
	})
	leader := cl.WaitLeader(20 * time.Second)
	follower := (leader + 1) % 3

	caPEM, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	tc := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	dial := func(i int, creds credentials.TransportCredentials) *grpc.ClientConn {
		cc, err := grpc.NewClient(cl.Members[i].Cfg.GRPC.Addr, grpc.WithTransportCredentials(creds))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cc.Close() })
		return cc
	}
	cc := dial(follower, credentials.NewTLS(tc))
	var token string
	testcluster.WaitFor(t, 20*time.Second, "admin login over TLS", func() bool {
		tok, err := pb.NewAuthServiceClient(cc).Login(context.Background(), &pb.LoginRequest{Username: "admin", Password: "tls-admin-password"})
		if err == nil {
			token = tok.AccessToken
		}
		return err == nil
	})
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+token)
	auth := pb.NewAuthServiceClient(cc)
	if _, err := auth.CreateAccount(ctx, &pb.CreateAccountRequest{RequestId: "tls-1", Name: "clerk", Role: pb.Role_ROLE_INTAKE_CLERK, Password: "clerk-password-1"}); err != nil {
		t.Fatalf("create account through a follower (forwarded write over TLS): %v", err)
	}
	var clerk string
	testcluster.WaitFor(t, 10*time.Second, "clerk login", func() bool {
		tok, err := auth.Login(context.Background(), &pb.LoginRequest{Username: "clerk", Password: "clerk-password-1"})
		if err == nil {
			clerk = tok.AccessToken
		}
		return err == nil
	})
	cctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+clerk)
	resp, err := pb.NewCaseServiceClient(cc).ReportCase(cctx, &pb.ReportCaseRequest{RequestId: "tls-r1", Source: pb.Source_SOURCE_HOTLINE_12345,
		Kind: pb.Kind_KIND_EVENT, MajorCode: "01", MinorCode: "02", GridCode: "320582110152102", Description: "暴露垃圾"})
	if err != nil {
		t.Fatalf("report through a follower: %v", err)
	}
	got, err := pb.NewCaseServiceClient(cc).GetCase(cctx, &pb.GetCaseRequest{CaseId: resp.Case.Id, Consistency: pb.Consistency_CONSISTENCY_LINEARIZABLE})
	if err != nil || got.Id != resp.Case.Id {
		t.Fatalf("linearizable read through a follower: %v", err)
	}

	// Plain text is refused on both listeners.
	plain := dial(follower, insecure.NewCredentials())
	short, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := pb.NewAuthServiceClient(plain).Login(short, &pb.LoginRequest{Username: "admin", Password: "x"}); err == nil {
		t.Error("a plain-text gRPC call was answered")
	}
	httpsClient := &http.Client{Transport: &http.Transport{TLSClientConfig: tc}, Timeout: 5 * time.Second}
	r, err := httpsClient.Get("https://" + cl.Members[follower].Cfg.HTTP.Addr + "/readyz")
	if err != nil {
		t.Fatalf("https readyz: %v", err)
	}
	r.Body.Close()
	if r, err := http.Get("http://" + cl.Members[follower].Cfg.HTTP.Addr + "/v1/cases"); err == nil {
		r.Body.Close()
		if r.StatusCode < 400 {
			t.Errorf("plain HTTP answered %d", r.StatusCode)
		}
	}

	// Rotation: a new certificate for the same name, copied over the
	// follower's files, is what the next handshake sees.
	serial := func() string {
		conn, err := tls.Dial("tcp", cl.Members[follower].Cfg.GRPC.Addr, &tls.Config{RootCAs: roots, NextProtos: []string{"h2"}})
		if err != nil {
			t.Fatalf("handshake: %v", err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	before := serial()
	if err := certs.GenerateDev(dir, []string{"api2"}, certs.DevOptions{}); err != nil {
		t.Fatal(err)
	}
	f := cl.Members[follower].Cfg.TLS
	copyFile(t, filepath.Join(dir, "api2.pem"), f.Cert+".new")
	copyFile(t, filepath.Join(dir, "api2-key.pem"), f.Key+".new")
	_ = os.Rename(f.Key+".new", f.Key)
	_ = os.Rename(f.Cert+".new", f.Cert)
	future := time.Now().Add(2 * time.Second)
	_ = os.Chtimes(f.Cert, future, future)
	testcluster.WaitFor(t, 10*time.Second, "the rotated certificate", func() bool { return serial() != before })
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
