package config

import (
	"os"
	"time"

	"github.com/cityhub/cityhub/federation/topology"
)

// LoadTopology reads the federation topology named by federation.topology.
func (c *Config) LoadTopology() (*topology.Topology, error) {
	data, err := os.ReadFile(c.Federation.Topology)
	if err != nil {
		return nil, err
	}
	return topology.Load(data)
}

func (c *Config) validateFederation(v *validator) {
	f := c.Federation
	if !f.Enabled() {
		if f.Node != "" {
			v.add("federation.node", "set, but federation.topology is empty")
		}
		return
	}
	t, err := c.LoadTopology()
	if err != nil {
		v.add("federation.topology", "%v", err)
	}
	if f.Node == "" {
		v.add("federation.node", "required with federation.topology")
	} else if t != nil {
		if n, ok := t.Node(f.Node); !ok {
			v.add("federation.node", "%q is not a node of %s", f.Node, f.Topology)
		} else {
			if n.Tier.String() != c.Node.Tier {
				v.add("node.tier", "%q, but the topology makes node %q a %s", c.Node.Tier, f.Node, n.Tier)
			}
			if n.Jurisdiction != c.Node.Jurisdiction {
				v.add("node.jurisdiction", "%q, but the topology gives node %q jurisdiction %s", c.Node.Jurisdiction, f.Node, n.Jurisdiction)
			}
		}
	}
	if port, ok := v.hostPort("federation.addr", f.Addr, true); ok {
		for _, l := range []struct{ key, addr string }{{"raft.addr", c.Raft.Addr}, {"grpc.addr", c.GRPC.Addr}, {"http.addr", c.HTTP.Addr}} {
			if p, ok := portOf(l.addr); ok && p == port {
				v.add("federation.addr", "port %d is already used by %s", port, l.key)
			}
		}
	}
	if !f.Insecure {
		for _, file := range []struct{ key, path string }{{"federation.tls.ca", f.TLS.CA}, {"federation.tls.cert", f.TLS.Cert}, {"federation.tls.key", f.TLS.Key}} {
			if file.path == "" {
				v.add(file.key, "required unless federation.insecure is true (make certs writes development certificates)")
			} else if _, err := os.Stat(file.path); err != nil {
				v.add(file.key, "%v", err)
			}
		}
	}
	if f.BatchSize < 1 || f.BatchSize > 4096 {
		v.add("federation.batch_size", "%d must be in 1..4096", f.BatchSize)
	}
	if f.BatchBytes < 1<<10 || f.BatchBytes > 3<<20 {
		v.add("federation.batch_bytes", "%d must be in 1KiB..3MiB (gRPC's message limit is 4MiB)", f.BatchBytes)
	}
	if f.RetryMin <= 0 || f.RetryMax < f.RetryMin || f.RetryMax > 10*time.Minute {
		v.add("federation.retry_max", "retry_min %s and retry_max %s must satisfy 0 < min <= max <= 10m", f.RetryMin, f.RetryMax)
	}
	if f.ReconnectMax < f.RetryMin || f.ReconnectMax > 10*time.Minute {
		v.add("federation.reconnect_max", "%s must be in retry_min (%s)..10m", f.ReconnectMax, f.RetryMin)
	}
	// Anti-entropy (federation/antientropy): the period of the parent's
	// comparison with each child (0: on demand only), and the number of
	// buckets of a comparison (0: automatic, about 256 cases a bucket).
	if f.AntiEntropyInterval < 0 {
		v.add("federation.antientropy_interval", "%s must be 0 (on demand only) or positive", f.AntiEntropyInterval)
	}
	if b := f.AntiEntropyBuckets; b != 0 && (b < 1 || b > 1<<16 || b&(b-1) != 0) {
		v.add("federation.antientropy_buckets", "%d must be 0 (automatic) or a power of two up to 65536", b)
	}
}

func portOf(addr string) (int, bool) {
	var v validator
	p, ok := v.hostPort("", addr, true)
	return p, ok
}
