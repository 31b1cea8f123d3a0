package certs

import (
	"crypto/tls"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
)

func TestGroupConfigs(t *testing.T) {
	dir := t.TempDir()
	if err := GenerateDev(dir, []string{"g-320582", "d-320505"}, DevOptions{}); err != nil {
		t.Fatal(err)
	}
	member, outsider := NodeFiles(dir, "g-320582"), NodeFiles(dir, "d-320505")
	addr, s := serve(t, credentials.NewTLS(mustConfig(t, func() (*tls.Config, error) { return member.GroupServerConfig("g-320582") })))

	// A replica of the group gets through.
	if err := check(t, addr, credentials.NewTLS(mustConfig(t, func() (*tls.Config, error) { return member.GroupClientConfig("g-320582") }))); err != nil {
		t.Fatalf("replica of the group: %v", err)
	}
	// Another node of the same CA is refused by the server...
	cc := mustConfig(t, func() (*tls.Config, error) { return outsider.ClientConfig() })
	cc.ServerName = "g-320582"
	if err := check(t, addr, credentials.NewTLS(cc)); status.Code(err) != codes.Unavailable {
		t.Errorf("another node's certificate: %v, want Unavailable", err)
	}
	// ...and a member refuses a server of another name.
	other, _ := serve(t, credentials.NewTLS(mustConfig(t, func() (*tls.Config, error) { return outsider.ServerConfig() })))
	if err := check(t, other, credentials.NewTLS(mustConfig(t, func() (*tls.Config, error) { return member.GroupClientConfig("g-320582") }))); status.Code(err) != codes.Unavailable {
		t.Errorf("server of another name: %v, want Unavailable", err)
	}
	if names, _ := s.get(); len(names) != 1 || names[0] != "g-320582" {
		t.Errorf("calls through: %q, want one from g-320582", names)
	}
	if _, err := member.GroupServerConfig("Bad Name"); err == nil {
		t.Error("GroupServerConfig accepted an invalid group name")
	}
}
