package config

import (
	"fmt"
	"os"
)

// GeoConfig selects the grid register's geometry (package tiers/geo): the
// polygons of the unit grids that reports with only coordinates are
// located in and that maps draw. Each node reads it from its own file
// (it is the city's reference data, like the class catalogue, not
// replicated state).
type GeoConfig struct {
	// Grids is the path of a GeoJSON FeatureCollection of grid polygons
	// (WGS-84/CGCS2000 longitude, latitude; the 15-digit code in the
	// grid_code property; see README "Grid geometry"). Empty means no
	// geometry: reports then need a grid code, and Locate and the grid
	// maps answer FailedPrecondition (the replica logs it at start). No
	// layer is taken by default; the sample city's is
	// testdata/city/grids.geojson (the demo and the tests name it).
	Grids string `mapstructure:"grids"`
}

// LoadGridsFile reads geo.grids (nil when unset). Errors name the key.
func (c *Config) LoadGridsFile() ([]byte, error) {
	if c.Geo.Grids == "" {
		return nil, nil
	}
	b, err := os.ReadFile(c.Geo.Grids)
	if err != nil {
		return nil, fmt.Errorf("geo.grids: %w", err)
	}
	return b, nil
}

// validateGeo checks that geo.grids, when set, names a file. Its content
// is checked when the replica parses it (geo.Parse).
func (c *Config) validateGeo(v *validator) {
	if c.Geo.Grids == "" {
		return
	}
	if fi, err := os.Stat(c.Geo.Grids); err != nil {
		v.add("geo.grids", "%v", err)
	} else if fi.IsDir() {
		v.add("geo.grids", "%q is a directory, not a file", c.Geo.Grids)
	}
}
