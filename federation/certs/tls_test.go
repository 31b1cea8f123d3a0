package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// seen records what PeerName said for each call the server let through.
type seen struct {
	mu    sync.Mutex
	names []string
	errs  []error
}

func (s *seen) get() ([]string, []error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.names...), append([]error(nil), s.errs...)
}

// serve runs a gRPC health server on 127.0.0.1:0 with creds and an
// interceptor that records PeerName.
func serve(t *testing.T, creds credentials.TransportCredentials) (string, *seen) {
	t.Helper()
	s := &seen{}
	opts := []grpc.ServerOption{grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		name, err := PeerName(ctx)
		s.mu.Lock()
		s.names, s.errs = append(s.names, name), append(s.errs, err)
		s.mu.Unlock()
		return h(ctx, req)
	})}
	if creds != nil {
		opts = append(opts, grpc.Creds(creds))
	}
	srv := grpc.NewServer(opts...)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	return lis.Addr().String(), s
}

// check makes one health call over a fresh connection.
func check(t *testing.T, addr string, creds credentials.TransportCredentials) error {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	return err
}

func mustConfig(t *testing.T, f func() (*tls.Config, error)) *tls.Config {
	t.Helper()
	cfg, err := f()
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	if err := GenerateDev(dir, []string{"city", "d-320505"}, DevOptions{}); err != nil {
		t.Fatal(err)
	}
	server, client := NodeFiles(dir, "city"), NodeFiles(dir, "d-320505")
	srvCfg := mustConfig(t, server.ServerConfig)
	if srvCfg.MinVersion != tls.VersionTLS13 || srvCfg.ClientAuth != tls.RequireAndVerifyClientCert {
		t.Errorf("server config: min version %x, client auth %v", srvCfg.MinVersion, srvCfg.ClientAuth)
	}
	addr, s := serve(t, credentials.NewTLS(srvCfg))

	// A node of the same CA gets through and is known by its name.
	if err := check(t, addr, credentials.NewTLS(mustConfig(t, client.ClientConfig))); err != nil {
		t.Fatalf("mTLS call: %v", err)
	}
	names, errs := s.get()
	if len(names) != 1 || names[0] != "d-320505" || errs[0] != nil {
		t.Fatalf("server saw %q, %v; want d-320505", names, errs)
	}

	// Dialled as localhost, and pinned to the server's node name.
	_, port, _ := net.SplitHostPort(addr)
	if err := check(t, net.JoinHostPort("localhost", port), credentials.NewTLS(mustConfig(t, client.ClientConfig))); err != nil {
		t.Errorf("via localhost: %v", err)
	}
	pinned := mustConfig(t, client.ClientConfig)
	pinned.ServerName = "city"
	if err := check(t, addr, credentials.NewTLS(pinned)); err != nil {
		t.Errorf("pinned to city: %v", err)
	}
	pinned = mustConfig(t, client.ClientConfig)
	pinned.ServerName = "d-320506"
	if err := check(t, addr, credentials.NewTLS(pinned)); status.Code(err) != codes.Unavailable {
		t.Errorf("pinned to the wrong node: %v, want Unavailable", err)
	}

	// A node certificate from another CA is refused by the server (the
	// client itself trusts the server's CA, so only the server can say no).
	otherDir := t.TempDir()
	if err := GenerateDev(otherDir, []string{"d-320505"}, DevOptions{}); err != nil {
		t.Fatal(err)
	}
	stranger := NodeFiles(otherDir, "d-320505")
	stranger.CA = client.CA
	err := check(t, addr, credentials.NewTLS(mustConfig(t, stranger.ClientConfig)))
	if status.Code(err) != codes.Unavailable {
		t.Errorf("certificate of another CA: %v, want Unavailable", err)
	}
	t.Logf("another CA: %v", err)

	// A client with no certificate is refused.
	pool := x509.NewCertPool()
	caPEM, _ := os.ReadFile(client.CA)
	pool.AppendCertsFromPEM(caPEM)
	err = check(t, addr, credentials.NewTLS(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13}))
	if status.Code(err) != codes.Unavailable {
		t.Errorf("no client certificate: %v, want Unavailable", err)
	}
	t.Logf("no certificate: %v", err)

	// A client that trusts only the other CA refuses the server.
	err = check(t, addr, credentials.NewTLS(mustConfig(t, NodeFiles(otherDir, "d-320505").ClientConfig)))
	if status.Code(err) != codes.Unavailable {
		t.Errorf("server of an unknown CA: %v, want Unavailable", err)
	}

	// Plaintext does not reach a handler either.
	if err := check(t, addr, insecure.NewCredentials()); status.Code(err) != codes.Unavailable {
		t.Errorf("plaintext: %v, want Unavailable", err)
	}

	if names, _ := s.get(); len(names) != 3 {
		t.Errorf("%d calls reached the handler (%q), want 3", len(names), names)
	}
}

func TestPeerNameWithoutIdentity(t *testing.T) {
	// A plaintext server: the handler runs, PeerName says why it has no name.
	addr, s := serve(t, nil)
	if err := check(t, addr, insecure.NewCredentials()); err != nil {
		t.Fatal(err)
	}
	names, errs := s.get()
	if len(errs) != 1 || !errors.Is(errs[0], ErrNoPeerIdentity) || names[0] != "" {
		t.Errorf("plaintext: %q, %v; want ErrNoPeerIdentity", names, errs)
	}

	tcp := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 7101}
	for name, ctx := range map[string]context.Context{
		"no peer":      context.Background(),
		"no auth":      peer.NewContext(context.Background(), &peer.Peer{Addr: tcp}),
		"no chain":     peer.NewContext(context.Background(), &peer.Peer{Addr: tcp, AuthInfo: credentials.TLSInfo{}}),
		"nil pointer":  peer.NewContext(context.Background(), &peer.Peer{Addr: tcp, AuthInfo: (*credentials.TLSInfo)(nil)}),
		"empty chain":  peer.NewContext(context.Background(), &peer.Peer{Addr: tcp, AuthInfo: credentials.TLSInfo{State: tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{}}}}}),
		"unverified":   peer.NewContext(context.Background(), &peer.Peer{Addr: tcp, AuthInfo: credentials.TLSInfo{State: tls.ConnectionState{PeerCertificates: []*x509.Certificate{{}}}}}),
		"bad CN":       peer.NewContext(context.Background(), &peer.Peer{Addr: tcp, AuthInfo: verified("Mallory")}),
		"empty CN":     peer.NewContext(context.Background(), &peer.Peer{Addr: tcp, AuthInfo: verified("")}),
		"pointer, bad": peer.NewContext(context.Background(), &peer.Peer{Addr: tcp, AuthInfo: ptr(verified("a b"))}),
	} {
		got, err := PeerName(ctx)
		if !errors.Is(err, ErrNoPeerIdentity) || got != "" {
			t.Errorf("%s: %q, %v; want ErrNoPeerIdentity", name, got, err)
		}
	}
	got, err := PeerName(peer.NewContext(context.Background(), &peer.Peer{Addr: tcp, AuthInfo: ptr(verified("s-320505001"))}))
	if got != "s-320505001" || err != nil {
		t.Errorf("pointer TLSInfo: %q, %v", got, err)
	}
}

func verified(cn string) credentials.TLSInfo {
	leaf := &x509.Certificate{}
	leaf.Subject.CommonName = cn
	return credentials.TLSInfo{State: tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{leaf}}}}
}

func ptr[T any](v T) *T { return &v }

func TestFilesErrorsNameTheFile(t *testing.T) {
	dir := t.TempDir()
	if err := GenerateDev(dir, []string{"city"}, DevOptions{}); err != nil {
		t.Fatal(err)
	}
	good := NodeFiles(dir, "city")
	missing := filepath.Join(dir, "missing.pem")
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not PEM\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		f      Files
		want   string
		notExi bool
	}{
		{"CA missing", Files{CA: missing, Cert: good.Cert, Key: good.Key}, missing, true},
		{"cert missing", Files{CA: good.CA, Cert: missing, Key: good.Key}, missing, true},
		{"key missing", Files{CA: good.CA, Cert: good.Cert, Key: missing}, missing, true},
		{"CA garbage", Files{CA: garbage, Cert: good.Cert, Key: good.Key}, garbage, false},
		{"key garbage", Files{CA: good.CA, Cert: good.Cert, Key: garbage}, garbage, false},
		{"key of another cert", Files{CA: good.CA, Cert: good.Cert, Key: filepath.Join(dir, CAKeyFile)}, good.Cert, false},
	} {
		for cfgName, f := range map[string]func() (*tls.Config, error){"server": tc.f.ServerConfig, "client": tc.f.ClientConfig} {
			cfg, err := f()
			if err == nil || cfg != nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s, %s: %v, want an error naming %s", tc.name, cfgName, err, tc.want)
			}
			if tc.notExi && !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("%s, %s: %v does not wrap fs.ErrNotExist", tc.name, cfgName, err)
			}
		}
	}
}
