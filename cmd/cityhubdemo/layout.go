package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"go.yaml.in/yaml/v3"

	cityhub "github.com/cityhub/cityhub"
	"github.com/cityhub/cityhub/config"
	"github.com/cityhub/cityhub/federation/certs"
	"github.com/cityhub/cityhub/federation/topology"
)

// Port blocks above the port base: replica i (1-based, counted over every
// replica of every node in tree order) listens on base+block+i.
const (
	raftBlock       = 0
	grpcBlock       = 100
	httpBlock       = 200
	federationBlock = 300
	internalBlock   = 400 // the replicas' internal listener (write forwarding)
	maxReplicas     = 3   // 15 nodes x 3 replicas fit in a block of 100
)

// layout places every replica of every node of a topology on loopback
// ports and in a data directory: the topology's replicas are rewritten
// to the federation addresses it hands out.
type layout struct {
	dataDir  string
	replicas int
	base     int
	tls      bool
	password string             // of every demo account (prepare)
	topo     *topology.Topology // with this layout's federation addresses
	file     []byte             // the topology file the nodes load
	nodes    []nodeLayout       // in tree order
}

type nodeLayout struct {
	node topology.Node
	cfgs []config.Config // one per replica
}

func (l *layout) topologyPath() string { return filepath.Join(l.dataDir, "topology.yaml") }
func (l *layout) certDir() string      { return filepath.Join(l.dataDir, "certs") }

// cityDir holds the sample city's reference files every node's
// configuration names (ownership.rules, ownership.components, geo.grids):
// no node takes them by default, the demo runs on them because it says so.
func (l *layout) cityDir() string { return filepath.Join(l.dataDir, "city") }

// sampleTopology is the federation the demo runs, the sample city's
// testdata/city/federation.yaml: a 苏州-like city 320500 with two
// districts, four streets and eight communities, 15 nodes of one replica
// each on loopback (newLayout rewrites the addresses for other
// --replicas and --port-base).
var sampleTopology = cityhub.SampleFile(cityhub.SampleTopology)

// cityFiles are the sample city's files written to cityDir.
var cityFiles = []string{cityhub.SampleRules, cityhub.SampleComponents, cityhub.SampleGrids}

func addr(base, block, i int) string { return fmt.Sprintf("127.0.0.1:%d", base+block+i) }

// newLayout lays out the topology in embedded (YAML) for replicas replicas
// a node from port base on.
func newLayout(embedded []byte, dataDir string, replicas, base int, tls bool) (*layout, error) {
	if replicas < 1 || replicas > maxReplicas {
		return nil, fmt.Errorf("--replicas %d: want 1 to %d", replicas, maxReplicas)
	}
	orig, err := topology.Load(embedded)
	if err != nil {
		return nil, fmt.Errorf("embedded topology: %w", err)
	}
	nodes := orig.Nodes()
	if len(nodes)*replicas >= 100 {
		return nil, fmt.Errorf("%d nodes x %d replicas do not fit the port scheme", len(nodes), replicas)
	}
	if base < 1024 || base+internalBlock+len(nodes)*replicas > 65535 {
		return nil, fmt.Errorf("--port-base %d: want 1024 to %d", base, 65535-internalBlock-len(nodes)*replicas)
	}
	l := &layout{dataDir: dataDir, replicas: replicas, base: base, tls: tls}
	fedAddrs := map[string][]string{}
	same := true
	for k, n := range nodes {
		for r := 1; r <= replicas; r++ {
			fedAddrs[n.Name] = append(fedAddrs[n.Name], addr(base, federationBlock, k*replicas+r))
		}
		same = same && slices.Equal(fedAddrs[n.Name], n.Replicas)
	}
	l.file = embedded
	if !same {
		if l.file, err = rewriteReplicas(embedded, fedAddrs); err != nil {
			return nil, err
		}
	}
	if l.topo, err = topology.Load(l.file); err != nil {
		return nil, fmt.Errorf("laid-out topology: %w", err)
	}
	for k, n := range l.topo.Nodes() {
		nl := nodeLayout{node: n}
		var peers []config.Peer
		for r := 1; r <= replicas; r++ {
			i := k*replicas + r
			cfg := config.Default()
			cfg.Node.ID = fmt.Sprintf("%s-%d", n.Name, r)
			cfg.Node.DataDir = filepath.Join(dataDir, n.Name)
			if replicas > 1 {
				cfg.Node.DataDir = filepath.Join(dataDir, n.Name, fmt.Sprintf("r%d", r))
			}
			cfg.Node.Tier = n.Tier.String()
			cfg.Node.Jurisdiction = n.Jurisdiction
			cfg.Raft.Addr = addr(base, raftBlock, i)
			cfg.GRPC.Addr = addr(base, grpcBlock, i)
			cfg.HTTP.Addr = addr(base, httpBlock, i)
			cfg.Raft.Bootstrap = true
			cfg.Federation.Topology = l.topologyPath()
			cfg.Federation.Node = n.Name
			cfg.Federation.Addr = addr(base, federationBlock, i)
			cfg.Internal.Addr = addr(base, internalBlock, i)
			if tls {
				// The node's certificate (CommonName: its name) serves
				// the federation and, as internal.tls is left empty, the
				// replicas' own plane (forwarding, raft) too.
				f := certs.NodeFiles(l.certDir(), n.Name)
				cfg.Federation.TLS = config.TLSConfig{CA: f.CA, Cert: f.Cert, Key: f.Key}
				cfg.Internal.Insecure = false
			} else {
				cfg.Federation.Insecure = true
				cfg.Internal.Insecure = true
			}
			// Authentication on, as in production: the first administrator
			// from the demo's password file (identities.go).
			cfg.Auth.Disabled = false
			cfg.Auth.AdminPasswordFile = passwordFile(dataDir)
			cfg.Auth.AdminUser = adminUser
			cfg.Ownership.Rules = filepath.Join(l.cityDir(), cityhub.SampleRules)
			cfg.Ownership.Components = filepath.Join(l.cityDir(), cityhub.SampleComponents)
			cfg.Geo.Grids = filepath.Join(l.cityDir(), cityhub.SampleGrids)
			cfg.ApplyDerived()
			peers = append(peers, config.Peer{ID: cfg.Node.ID, RaftAddr: cfg.Raft.Addr, GRPCAddr: cfg.GRPC.Addr, HTTPAddr: cfg.HTTP.Addr, InternalAddr: cfg.Internal.Addr})
			nl.cfgs = append(nl.cfgs, cfg)
		}
		for i := range nl.cfgs {
			nl.cfgs[i].Raft.Peers = peers
		}
		l.nodes = append(l.nodes, nl)
	}
	return l, nil
}

// rewriteReplicas sets the replicas of every node in the YAML topology,
// keeping its comments.
func rewriteReplicas(file []byte, replicas map[string][]string) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(file, &doc); err != nil {
		return nil, fmt.Errorf("topology: %w", err)
	}
	if len(doc.Content) != 1 {
		return nil, errors.New("topology: empty document")
	}
	nodes := mapValue(doc.Content[0], "nodes")
	if nodes == nil || nodes.Kind != yaml.SequenceNode {
		return nil, errors.New("topology: no nodes list")
	}
	for _, n := range nodes.Content {
		name := mapValue(n, "name")
		reps := mapValue(n, "replicas")
		if name == nil || reps == nil {
			return nil, fmt.Errorf("topology: line %d: node without name or replicas", n.Line)
		}
		addrs, ok := replicas[name.Value]
		if !ok {
			return nil, fmt.Errorf("topology: no addresses for node %q", name.Value)
		}
		reps.Kind, reps.Style, reps.Tag, reps.Content = yaml.SequenceNode, yaml.FlowStyle, "!!seq", nil
		for _, a := range addrs {
			reps.Content = append(reps.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: a, Style: yaml.DoubleQuotedStyle})
		}
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, fmt.Errorf("topology: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("topology: %w", err)
	}
	return buf.Bytes(), nil
}

// mapValue returns the value of key in a YAML mapping node, or nil.
func mapValue(m *yaml.Node, key string) *yaml.Node {
	if m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// prepare writes the topology file (refusing a data directory laid out
// differently before: its raft groups know other addresses) and the
// sample city's reference files (this binary's, every start), makes the
// development certificates that are missing when TLS is on and the demo's
// password on the first start, and validates every replica's configuration.
func (l *layout) prepare() error {
	if err := os.MkdirAll(l.dataDir, 0o755); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	old, err := os.ReadFile(l.topologyPath())
	switch {
	case err == nil && !bytes.Equal(old, l.file):
		return fmt.Errorf("%s holds a federation laid out differently (%s differs: other --replicas or --port-base, or another cityhub version): use another --data, or remove %s to start afresh",
			l.dataDir, l.topologyPath(), l.dataDir)
	case err == nil:
	case errors.Is(err, fs.ErrNotExist):
		if err := os.WriteFile(l.topologyPath(), l.file, 0o644); err != nil {
			return fmt.Errorf("write topology: %w", err)
		}
	default:
		return fmt.Errorf("read topology: %w", err)
	}
	if _, err := cityhub.WriteSample(l.cityDir(), cityFiles...); err != nil {
		return err
	}
	if l.tls {
		var missing []string
		for _, n := range l.nodes {
			f := certs.NodeFiles(l.certDir(), n.node.Name)
			for _, p := range []string{f.Cert, f.Key} {
				if _, err := os.Stat(p); err != nil {
					missing = append(missing, n.node.Name)
					break
				}
			}
		}
		if len(missing) > 0 {
			// The node files of a name are written together, so a name is
			// missing both or neither; Force replaces a lone survivor.
			if err := certs.GenerateDev(l.certDir(), missing, certs.DevOptions{Force: true}); err != nil {
				return fmt.Errorf("development certificates: %w", err)
			}
		}
	}
	if l.password, err = ensurePassword(l.dataDir); err != nil {
		return fmt.Errorf("demo password: %w", err)
	}
	for _, n := range l.nodes {
		for _, cfg := range n.cfgs {
			if err := cfg.Validate(); err != nil {
				return fmt.Errorf("configuration of %s: %w", cfg.Node.ID, err)
			}
		}
	}
	return nil
}
