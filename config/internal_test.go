package config

import (
	"strings"
	"testing"

	"github.com/cityhub/cityhub/federation/certs"
)

// internalTLS writes a development CA and a certificate for name and
// returns their files.
func internalTLS(t *testing.T, name string) TLSConfig {
	t.Helper()
	dir := t.TempDir()
	if err := certs.GenerateDev(dir, []string{name}, certs.DevOptions{}); err != nil {
		t.Fatal(err)
	}
	f := certs.NodeFiles(dir, name)
	return TLSConfig{CA: f.CA, Cert: f.Cert, Key: f.Key}
}

func TestInternalGroup(t *testing.T) {
	c := valid()
	if g := c.Group(); g != "320582" {
		t.Errorf("default group %q, want the jurisdiction 320582", g)
	}
	c.Node.Group = "zjg"
	if g := c.Group(); g != "zjg" {
		t.Errorf("group %q, want node.group zjg", g)
	}
	c.Node.Group = ""
	c.Federation.Topology, c.Federation.Node = "topology.yaml", "d-320505"
	if g := c.Group(); g != "d-320505" {
		t.Errorf("federated group %q, want federation.node d-320505", g)
	}
}

func TestValidateInternal(t *testing.T) {
	group := internalTLS(t, "320582")
	other := internalTLS(t, "d-320505")
	tests := []struct {
		name   string
		mutate func(*Config)
		keys   []string // nil: valid
		msg    string
	}{
		{"insecure on loopback", func(c *Config) {}, nil, ""},
		{"insecure with localhost", func(c *Config) { c.Internal.Addr = "localhost:7401" }, nil, ""},
		{"insecure on a network address", func(c *Config) { c.Internal.Addr = "10.0.0.7:7401" }, []string{"internal.insecure"}, `internal.addr is "10.0.0.7:7401"`},
		{"insecure on every interface", func(c *Config) { c.Internal.Addr = ":7401" }, []string{"internal.insecure"}, "only on loopback"},
		{"insecure, a peer elsewhere", func(c *Config) { c.Raft.Peers[2].RaftAddr = "10.0.0.9:7003" }, []string{"internal.insecure"}, "raft.peers[2].raft_addr"},
		{"insecure, a peer's internal addr elsewhere", func(c *Config) { c.Raft.Peers[1].InternalAddr = "10.0.0.8:7402" }, []string{"internal.insecure"}, "raft.peers[1].internal_addr"},
		{"insecure, advertised elsewhere", func(c *Config) { c.Raft.Advertise = "10.0.0.7:7001"; c.Raft.Peers = nil }, []string{"internal.insecure"}, "raft.advertise"},
		{"mTLS on the network", func(c *Config) {
			c.Internal = InternalConfig{Addr: "10.0.0.7:7401", TLS: group}
			c.Raft.Peers[2].RaftAddr = "10.0.0.9:7003"
		}, nil, ""},
		{"mTLS without files", func(c *Config) { c.Internal.Insecure = false }, []string{"internal.tls.ca", "internal.tls.cert", "internal.tls.key"}, `CommonName must be "320582"`},
		{"mTLS, missing file", func(c *Config) {
			c.Internal = InternalConfig{Addr: c.Internal.Addr, TLS: group}
			c.Internal.TLS.Key += ".gone"
		}, []string{"internal.tls.key"}, ""},
		{"mTLS, certificate of another group", func(c *Config) { c.Internal = InternalConfig{Addr: c.Internal.Addr, TLS: other} }, []string{"internal.tls.cert"}, `CommonName "d-320505"`},
		{"mTLS, node.group names the certificate", func(c *Config) {
			c.Node.Group = "d-320505"
			c.Internal = InternalConfig{Addr: c.Internal.Addr, TLS: other}
		}, nil, ""},
		{"bad group", func(c *Config) { c.Node.Group = "Zhang Jia Gang" }, []string{"node.group"}, ""},
		{"internal port taken", func(c *Config) { c.Internal.Addr = "127.0.0.1:7101" }, []string{"internal.addr"}, "already used by grpc.addr"},
		{"internal addr missing", func(c *Config) { c.Internal.Addr = "" }, []string{"internal.addr"}, "required"},
		{"peer internal addr malformed", func(c *Config) { c.Raft.Peers[1].InternalAddr = "x" }, []string{"raft.peers[1].internal_addr"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			tt.mutate(&c)
			err := c.Validate()
			if tt.keys == nil {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate() = nil, want an error")
			}
			got := fieldKeys(err)
			if strings.Join(got, ",") != strings.Join(tt.keys, ",") {
				t.Errorf("keys = %q, want %q; error:\n%v", got, tt.keys, err)
			}
			if tt.msg != "" && !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q does not contain %q", err, tt.msg)
			}
		})
	}
}

func TestInternalTLSFromFederation(t *testing.T) {
	c := valid()
	fed := internalTLS(t, "d-320505")
	c.Federation.Topology, c.Federation.TLS = "topology.yaml", fed
	if got := c.InternalTLS(); got != fed {
		t.Errorf("InternalTLS() = %+v, want the federation's files %+v", got, fed)
	}
	c.Federation.Insecure = true
	if got := c.InternalTLS(); got != (TLSConfig{}) {
		t.Errorf("InternalTLS() with an insecure federation = %+v, want none", got)
	}
	own := internalTLS(t, "d-320505")
	c.Internal.TLS = own
	if got := c.InternalTLS(); got != own {
		t.Errorf("InternalTLS() = %+v, want internal.tls %+v", got, own)
	}
}
