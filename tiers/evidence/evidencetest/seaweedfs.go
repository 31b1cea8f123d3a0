// Package evidencetest runs a real S3-compatible server for the tests of
// the object-store mode: SeaweedFS (`weed server -s3`), built by `make
// tools` into bin/weed from the separate module in
// tiers/evidence/testdata/seaweedfs (see its README.md).
package evidencetest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/cityhub/cityhub/tiers/evidence"
)

// Credentials of the test server's one identity.
const (
	AccessKey = "cityhub-test"
	SecretKey = "cityhub-test-secret-0001"
	Bucket    = "cityhub-evidence"
)

// WeedBinary is $CITYHUB_WEED, else bin/weed of the repository. Without
// one the test is skipped, except in CI (CI=true), where it fails: .ci/run
// builds it (make tools).
func WeedBinary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("CITYHUB_WEED"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("CITYHUB_WEED: %v", err)
		}
		return p
	}
	if root, err := repoRoot(); err == nil {
		p := filepath.Join(root, "bin", "weed")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("no SeaweedFS binary: set CITYHUB_WEED or run make tools")
	}
	t.Skip("no SeaweedFS binary (the real S3 server of these tests): run `make tools` or set CITYHUB_WEED")
	return ""
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above %s", dir)
		}
		dir = parent
	}
}

// freePort finds a port whose port+10000 (SeaweedFS's gRPC port) is free
// too.
func freePort(t testing.TB) int {
	t.Helper()
	for tries := 0; tries < 200; tries++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if p+10000 > 65535 {
			continue
		}
		if l2, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p+10000)); err == nil {
			l2.Close()
			return p
		}
	}
	t.Fatal("no free port pair")
	return 0
}

// S3 is a running test server.
type S3 struct {
	Endpoint string // host:port of the S3 API
	Config   evidence.S3Config
}

// StartSeaweedFS starts a one-process SeaweedFS (master, volume, filer and
// S3 gateway) on free loopback ports with one identity, waits until the
// bucket can be made, and stops it when the test ends.
func StartSeaweedFS(t testing.TB) *S3 {
	t.Helper()
	bin := WeedBinary(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "s3.json")
	if err := os.WriteFile(cfg, []byte(`{"identities":[{"name":"cityhub","credentials":[{"accessKey":"`+AccessKey+`","secretKey":"`+SecretKey+`"}],"actions":["Admin","Read","Write","List","Tagging"]}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	master, volume, filer, s3 := freePort(t), freePort(t), freePort(t), freePort(t)
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(data, 0o700); err != nil {
		t.Fatal(err)
	}
	log, err := os.Create(filepath.Join(dir, "weed.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-dir="+data,
		"-master.port="+strconv.Itoa(master), "-master.volumeSizeLimitMB=64",
		"-volume.port="+strconv.Itoa(volume), "-volume.max=8",
		"-filer", "-filer.port="+strconv.Itoa(filer),
		"-s3", "-s3.port="+strconv.Itoa(s3), "-s3.config="+cfg)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_, _ = cmd.Process.Wait()
		log.Close()
	})
	srv := &S3{Endpoint: fmt.Sprintf("127.0.0.1:%d", s3)}
	srv.Config = evidence.S3Config{Endpoint: srv.Endpoint, Bucket: Bucket, Prefix: "evidence/", Region: "us-east-1", AccessKey: AccessKey, SecretKey: SecretKey}
	deadline := time.Now().Add(120 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, last = evidence.NewS3(ctx, srv.Config)
		cancel()
		if last == nil {
			return srv
		}
		time.Sleep(300 * time.Millisecond)
	}
	b, _ := os.ReadFile(log.Name())
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	t.Fatalf("SeaweedFS S3 at %s not ready after 120 s: %v\n%s", srv.Endpoint, last, b)
	return nil
}
