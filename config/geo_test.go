package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestGeoValidation(t *testing.T) {
	dir := t.TempDir()
	grids := filepath.Join(dir, "grids.geojson")
	if err := os.WriteFile(grids, []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, path, msg string }{
		{"unset: the sample city's where it fits", "", ""},
		{"a file", grids, ""},
		{"missing", filepath.Join(dir, "nope.geojson"), "no such file"},
		{"directory", dir, "is a directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := valid()
			c.Geo.Grids = tc.path
			err := c.Validate()
			if tc.msg == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				b, err := c.LoadGridsFile()
				if err != nil || (tc.path == "") != (b == nil) {
					t.Errorf("LoadGridsFile = %q, %v", b, err)
				}
				return
			}
			if keys := fieldKeys(err); !slices.Equal(keys, []string{"geo.grids"}) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("Validate: %v; want geo.grids: %s", err, tc.msg)
			}
		})
	}
	// The key reads from the environment like every other.
	t.Setenv("CITYHUB_GEO_GRIDS", grids)
	t.Setenv("CITYHUB_NODE_ID", "n1")
	c, err := Load("", nil)
	if err != nil || c.Geo.Grids != grids {
		t.Fatalf("Load with CITYHUB_GEO_GRIDS: %q, %v", c.Geo.Grids, err)
	}
}
