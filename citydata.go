// Package cityhub holds the sample city (testdata/city) that the demo
// (cmd/cityhubdemo), the tests and the example configurations run: its
// federation tree with departments, grids, responsibility catalogue
// (责任清单), component register and a legacy district backlog to import
// and reconcile. See testdata/city/README.md. No node takes any of it by
// default: a node runs on the sample city only when its configuration
// names these files (ownership.rules, ownership.components, geo.grids,
// federation.topology).
package cityhub

import (
	"embed"
	"fmt"
	"os"
	"path/filepath"
)

// SampleCity is testdata/city, embedded.
//
//go:embed testdata/city
var SampleCity embed.FS

// The sample city's files a node's configuration names.
const (
	// SampleTopology is the federation tree (federation.topology).
	SampleTopology = "federation.yaml"
	// SampleRules and SampleComponents are the responsibility catalogue
	// (ownership.rules, ownership.components).
	SampleRules      = "responsibility.yaml"
	SampleComponents = "components.csv"
	// SampleGrids is the grid layer (geo.grids).
	SampleGrids = "grids.geojson"
)

// SampleFile returns one file of the sample city, e.g. "federation.yaml".
// The files are embedded, so a missing one is a build mistake: it panics.
func SampleFile(name string) []byte {
	b, err := SampleCity.ReadFile("testdata/city/" + name)
	if err != nil {
		panic("cityhub: sample city: " + err.Error())
	}
	return b
}

// WriteSample writes the named files of the sample city into dir (made
// when missing), replacing what is there, and returns their paths in the
// order given: for a configuration to name them.
func WriteSample(dir string, names ...string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("sample city: %w", err)
	}
	paths := make([]string, len(names))
	for i, name := range names {
		b, err := SampleCity.ReadFile("testdata/city/" + name)
		if err != nil {
			return nil, fmt.Errorf("sample city: %w", err)
		}
		paths[i] = filepath.Join(dir, name)
		if err := os.WriteFile(paths[i], b, 0o644); err != nil {
			return nil, fmt.Errorf("sample city: %w", err)
		}
	}
	return paths, nil
}
