package replica_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
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

// BenchmarkCreateAuth: case creation by 64 gRPC clients against the leader
// of an in-process 3-replica tier, with authentication and client-API TLS
// off, then on (an intake clerk's access token on every call, TLS 1.3),
// in one run, alternating three times. creates/s and the process's CPU
// time per create (servers and clients: everything is in this process,
// so the CPU figure holds on a machine busy with other work) are
// reported per sub-benchmark; compare the two modes.
//
//	go test -run '^$' -bench CreateAuth -benchtime 3000x ./tiers/replica/
func BenchmarkCreateAuth(b *testing.B) {
	for round := 1; round <= 3; round++ {
		for _, on := range []bool{false, true} {
			name := "off"
			if on {
				name = "auth+tls"
			}
			b.Run(fmt.Sprintf("%d/%s", round, name), func(b *testing.B) { benchCreate(b, on) })
		}
	}
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func benchCreate(b *testing.B, secure bool) {
	dir := b.TempDir()
	var opts []testcluster.Option
	var tc *tls.Config
	if secure {
		if err := certs.GenerateDev(dir, []string{"api"}, certs.DevOptions{}); err != nil {
			b.Fatal(err)
		}
		pw := filepath.Join(dir, "pw")
		if err := os.WriteFile(pw, []byte("bench-admin-password"), 0o600); err != nil {
			b.Fatal(err)
		}
		opts = append(opts, func(c *config.Config) {
			c.TLS = config.APITLSConfig{Cert: filepath.Join(dir, "api.pem"), Key: filepath.Join(dir, "api-key.pem"), CA: filepath.Join(dir, "ca.pem")}
			c.Auth.Disabled = false
			c.Auth.AdminPasswordFile = pw
		})
		ca, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
		if err != nil {
			b.Fatal(err)
		}
		roots := x509.NewCertPool()
		roots.AppendCertsFromPEM(ca)
		tc = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	}
	c := testcluster.New(b, 3, opts...)
	leader := c.WaitLeader(20 * time.Second)
	creds := insecure.NewCredentials()
	if secure {
		creds = credentials.NewTLS(tc)
	}
	cc, err := grpc.NewClient(c.Members[leader].Cfg.GRPC.Addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		b.Fatal(err)
	}
	defer cc.Close()
	ctx := context.Background()
	if secure {
		authc := pb.NewAuthServiceClient(cc)
		var admin string
		testcluster.WaitFor(b, 20*time.Second, "admin", func() bool {
			tok, err := authc.Login(ctx, &pb.LoginRequest{Username: "admin", Password: "bench-admin-password"})
			if err == nil {
				admin = tok.AccessToken
			}
			return err == nil
		})
		actx := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+admin)
		if _, err := authc.CreateAccount(actx, &pb.CreateAccountRequest{RequestId: "bench-clerk", Name: "clerk", Role: pb.Role_ROLE_INTAKE_CLERK, Password: "bench-clerk-password"}); err != nil {
			b.Fatal(err)
		}
		tok, err := authc.Login(ctx, &pb.LoginRequest{Username: "clerk", Password: "bench-clerk-password"})
		if err != nil {
			b.Fatal(err)
		}
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok.AccessToken)
	}
	cs := pb.NewCaseServiceClient(cc)
	var seq, grids atomic.Int64
	req := func() *pb.ReportCaseRequest {
		r := report(fmt.Sprintf("%v-%d", secure, seq.Add(1)), "bench")
		if secure {
			r.Actor, r.Role = "", pb.Role_ROLE_UNSPECIFIED
		}
		r.Source = pb.Source_SOURCE_HOTLINE_12345
		r.GridCode = fmt.Sprintf("320582%09d", 110000000+grids.Add(1))
		return r
	}
	// Warm up: connections, TLS sessions, the first entries.
	for i := 0; i < 200; i++ {
		if _, err := cs.ReportCase(ctx, req()); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime()
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < 64; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				if _, err := cs.ReportCase(ctx, req()); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "creates/s")
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/create")
}
