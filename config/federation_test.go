package config

import (
	"github.com/spf13/pflag"

	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const testTopology = `nodes:
  - name: city
    tier: city
    jurisdiction: "320500"
    replicas: ["127.0.0.1:7301"]
  - name: d-320582
    tier: district
    jurisdiction: "320582"
    parent: city
    replicas: ["127.0.0.1:7302"]
`

func federated(t *testing.T) Config {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "topology.yaml")
	if err := os.WriteFile(path, []byte(testTopology), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"ca.pem", "n.pem", "n-key.pem"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c := Default()
	c.Node.ID = "n1"
	c.Federation.Topology = path
	c.Federation.Node = "d-320582"
	c.Federation.TLS = TLSConfig{CA: filepath.Join(dir, "ca.pem"), Cert: filepath.Join(dir, "n.pem"), Key: filepath.Join(dir, "n-key.pem")}
	c.ApplyDerived()
	return c
}

func TestFederationValidate(t *testing.T) {
	if c := federated(t); c.Validate() != nil {
		err := c.Validate()
		t.Fatalf("valid federated config refused: %v", err)
	}
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		key  string
	}{
		{"node without topology", func(c *Config) { c.Federation.Topology = "" }, "federation.node"},
		{"missing topology file", func(c *Config) { c.Federation.Topology = "/nonexistent/topology.yaml" }, "federation.topology"},
		{"node not in topology", func(c *Config) { c.Federation.Node = "d-999999" }, "federation.node"},
		{"no node name", func(c *Config) { c.Federation.Node = "" }, "federation.node"},
		{"tier differs", func(c *Config) { c.Node.Tier = TierCity; c.Node.Jurisdiction = "320582" }, "node.tier"},
		{"jurisdiction differs", func(c *Config) { c.Node.Jurisdiction = "320581" }, "node.jurisdiction"},
		{"port clash", func(c *Config) { c.Federation.Addr = c.GRPC.Addr }, "federation.addr"},
		{"bad address", func(c *Config) { c.Federation.Addr = "nowhere" }, "federation.addr"},
		{"no ca", func(c *Config) { c.Federation.TLS.CA = "" }, "federation.tls.ca"},
		{"missing key file", func(c *Config) { c.Federation.TLS.Key = "/nonexistent/key.pem" }, "federation.tls.key"},
		{"batch too big", func(c *Config) { c.Federation.BatchSize = 100000 }, "federation.batch_size"},
		{"batch bytes too big", func(c *Config) { c.Federation.BatchBytes = 64 << 20 }, "federation.batch_bytes"},
		{"retry inverted", func(c *Config) { c.Federation.RetryMax = c.Federation.RetryMin / 2 }, "federation.retry_max"},
		{"reconnect below retry_min", func(c *Config) { c.Federation.ReconnectMax = c.Federation.RetryMin / 2 }, "federation.reconnect_max"},
		{"reconnect unset", func(c *Config) { c.Federation.ReconnectMax = 0 }, "federation.reconnect_max"},
		{"anti-entropy interval negative", func(c *Config) { c.Federation.AntiEntropyInterval = -time.Second }, "federation.antientropy_interval"},
		{"anti-entropy buckets not a power of two", func(c *Config) { c.Federation.AntiEntropyBuckets = 100 }, "federation.antientropy_buckets"},
		{"anti-entropy buckets too many", func(c *Config) { c.Federation.AntiEntropyBuckets = 1 << 17 }, "federation.antientropy_buckets"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := federated(t)
			tc.mod(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.key+":") {
				t.Fatalf("Validate() = %v, want an error naming %s", err, tc.key)
			}
		})
	}
	// Insecure mode needs no certificates.
	c := federated(t)
	c.Federation.Insecure = true
	c.Federation.TLS = TLSConfig{}
	if err := c.Validate(); err != nil {
		t.Fatalf("insecure federated config refused: %v", err)
	}
}

func TestFederationBadTopologyNamesTheProblem(t *testing.T) {
	c := federated(t)
	bad := strings.Replace(testTopology, `jurisdiction: "320582"`, `jurisdiction: "330582"`, 1)
	if err := os.WriteFile(c.Federation.Topology, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), "federation.topology") || !strings.Contains(err.Error(), "outside parent") {
		t.Fatalf("Validate() = %v, want the topology error naming the child outside its parent", err)
	}
}

func TestFederationFlags(t *testing.T) {
	c := federated(t)
	fs := pflag.NewFlagSet("cityhubd", pflag.ContinueOnError)
	BindFlags(fs)
	if err := fs.Parse([]string{"--node-id", "n1", "--tier", "district", "--jurisdiction", "320582", "--topology", c.Federation.Topology,
		"--fed-node", "d-320582", "--fed-addr", "127.0.0.1:7399"}); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CITYHUB_FEDERATION_INSECURE", "true")
	got, err := Load("", fs)
	if err != nil {
		t.Fatalf("load with federation flags: %v", err)
	}
	if got.Federation.Topology != c.Federation.Topology || got.Federation.Node != "d-320582" || got.Federation.Addr != "127.0.0.1:7399" || !got.Federation.Insecure {
		t.Fatalf("federation from flags and env: %+v", got.Federation)
	}
}

func TestFederationAntiEntropyKeys(t *testing.T) {
	c := federated(t)
	if c.Federation.AntiEntropyInterval != 5*time.Minute || c.Federation.AntiEntropyBuckets != 0 {
		t.Fatalf("defaults: interval %s, buckets %d; want 5m, 0 (automatic)", c.Federation.AntiEntropyInterval, c.Federation.AntiEntropyBuckets)
	}
	t.Setenv("CITYHUB_FEDERATION_INSECURE", "true")
	t.Setenv("CITYHUB_FEDERATION_ANTIENTROPY_INTERVAL", "0")
	t.Setenv("CITYHUB_FEDERATION_ANTIENTROPY_BUCKETS", "1024")
	fs := pflag.NewFlagSet("cityhubd", pflag.ContinueOnError)
	BindFlags(fs)
	if err := fs.Parse([]string{"--node-id", "n1", "--tier", "district", "--jurisdiction", "320582", "--topology", c.Federation.Topology, "--fed-node", "d-320582"}); err != nil {
		t.Fatal(err)
	}
	got, err := Load("", fs)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if got.Federation.AntiEntropyInterval != 0 || got.Federation.AntiEntropyBuckets != 1024 {
		t.Fatalf("from env: interval %s (0 disables the periodic run), buckets %d", got.Federation.AntiEntropyInterval, got.Federation.AntiEntropyBuckets)
	}
}
