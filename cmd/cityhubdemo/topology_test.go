package main

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/cityhub/cityhub/federation/topology"
)

// The sample city's topology, which the demo runs, loads, has every tier with departments at each, and
// follows the port scheme its comments document.
func TestSampleTopology(t *testing.T) {
	topo, err := topology.Load(sampleTopology)
	if err != nil {
		t.Fatal(err)
	}
	nodes := topo.Nodes()
	if len(nodes) != 15 {
		t.Fatalf("%d nodes, want 15", len(nodes))
	}
	perTier := map[topology.Tier]int{}
	for k, n := range nodes {
		perTier[n.Tier]++
		// Node k in tree order (which is the file's order) listens on 7300+k.
		if want := []string{fmt.Sprintf("127.0.0.1:%d", 7301+k)}; !slices.Equal(n.Replicas, want) {
			t.Errorf("node %d %s: replicas %v, want %v", k+1, n.Name, n.Replicas, want)
		}
		var prefix string
		switch n.Tier {
		case topology.City:
			prefix = "city"
		case topology.District:
			prefix = "d-" + n.Jurisdiction
		case topology.Street:
			prefix = "s-" + n.Jurisdiction
		case topology.Community:
			prefix = "c-" + n.Jurisdiction
		}
		if n.Name != prefix {
			t.Errorf("node %s (%s %s): want the name %s", n.Name, n.Tier, n.Jurisdiction, prefix)
		}
		if min := map[topology.Tier]int{topology.City: 4, topology.District: 4, topology.Street: 2, topology.Community: 2}[n.Tier]; len(n.Units) < min {
			t.Errorf("node %s: %d units, want at least %d", n.Name, len(n.Units), min)
		}
		code := n.Jurisdiction
		if n.Tier == topology.City {
			code = "city"
		}
		for _, u := range n.Units {
			if u.Name == "" || !strings.HasPrefix(u.ID, code+"-") {
				t.Errorf("node %s: unit %q %q does not carry the node's code", n.Name, u.ID, u.Name)
			}
		}
	}
	if perTier[topology.City] != 1 || perTier[topology.District] != 2 || perTier[topology.Street] != 4 || perTier[topology.Community] != 8 {
		t.Errorf("nodes per tier: %v", perTier)
	}
	// A grid deep in the tree routes to its community.
	if h, err := topo.HolderForGrid("320506002001007"); err != nil || h.Name != "c-320506002001" {
		t.Errorf("holder of 320506002001007: %v %v", h.Name, err)
	}
}

// make certs makes certificates for exactly the nodes of the demo's
// topology (the certificate names are the node names).
func TestSampleTopologyMatchesMakeCerts(t *testing.T) {
	mk, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Skipf("no Makefile: %v", err)
	}
	m := regexp.MustCompile(`(?m)^FEDERATION_NODES := ((?:.*\\\n)*.*)$`).FindSubmatch(mk)
	if m == nil {
		t.Fatal("FEDERATION_NODES not found in the Makefile")
	}
	listed := strings.Fields(strings.ReplaceAll(string(m[1]), "\\", " "))
	topo, err := topology.Load(sampleTopology)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, n := range topo.Nodes() {
		names = append(names, n.Name)
	}
	slices.Sort(listed)
	slices.Sort(names)
	if !slices.Equal(listed, names) {
		t.Errorf("Makefile FEDERATION_NODES %v\ntopology nodes %v", listed, names)
	}
}
