package testcluster

import (
	"testing"

	cityhub "github.com/cityhub/cityhub"
	"github.com/cityhub/cityhub/config"
)

// No node takes the sample city's reference data by default (a production
// node without it says so and invents nothing): a test that runs on the
// sample city names its files, as the demo does.

// SampleGrids returns the option that names the sample city's grid layer
// (testdata/city/grids.geojson, written to a temporary directory) in
// geo.grids.
func SampleGrids(t testing.TB) Option {
	t.Helper()
	paths, err := cityhub.WriteSample(t.TempDir(), cityhub.SampleGrids)
	if err != nil {
		t.Fatal(err)
	}
	return func(c *config.Config) { c.Geo.Grids = paths[0] }
}

// SampleOwnership returns the option that names the sample city's
// responsibility catalogue (testdata/city/responsibility.yaml and
// components.csv) in ownership.rules and ownership.components. It parses
// against the sample city's topology only (fedtest.SampleSpecs).
func SampleOwnership(t testing.TB) Option {
	t.Helper()
	paths, err := cityhub.WriteSample(t.TempDir(), cityhub.SampleRules, cityhub.SampleComponents)
	if err != nil {
		t.Fatal(err)
	}
	return func(c *config.Config) { c.Ownership.Rules, c.Ownership.Components = paths[0], paths[1] }
}

// SampleCity is SampleGrids and SampleOwnership together.
func SampleCity(t testing.TB) Option {
	t.Helper()
	grids, own := SampleGrids(t), SampleOwnership(t)
	return func(c *config.Config) { grids(c); own(c) }
}
