package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestOwnershipValidation(t *testing.T) {
	dir := t.TempDir()
	rules := filepath.Join(dir, "responsibility.yaml")
	comps := filepath.Join(dir, "components.csv")
	for _, p := range []string{rules, comps} {
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	missing := filepath.Join(dir, "nope.csv")
	cases := []struct {
		name              string
		rules, components string
		key, msg          string // "" = valid
	}{
		{"neither: the sample city", "", "", "", ""},
		{"both", rules, comps, "", ""},
		{"rules alone", rules, "", "ownership.components", "required when ownership.rules is set"},
		{"components alone", "", comps, "ownership.rules", "required when ownership.components is set"},
		{"missing file", rules, missing, "ownership.components", "no such file"},
		{"directory", dir, comps, "ownership.rules", "is a directory"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := valid()
			c.Ownership = OwnershipConfig{Rules: tc.rules, Components: tc.components}
			err := c.Validate()
			if tc.key == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				r, p, err := c.LoadOwnershipFiles()
				if err != nil || (tc.rules == "") != (r == nil) || (tc.rules == "") != (p == nil) {
					t.Errorf("LoadOwnershipFiles = %q, %q, %v", r, p, err)
				}
				return
			}
			if keys := fieldKeys(err); !slices.Equal(keys, []string{tc.key}) {
				t.Fatalf("keys %v, want [%s] (%v)", keys, tc.key, err)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q lacks %q", err, tc.msg)
			}
		})
	}
}

// The keys load from a file and from the environment.
func TestOwnershipLoad(t *testing.T) {
	dir := t.TempDir()
	rules := filepath.Join(dir, "r.yaml")
	comps := filepath.Join(dir, "c.csv")
	for _, p := range []string{rules, comps} {
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	path := writeFile(t, "node: {id: n1}\nownership:\n  rules: "+rules+"\n")
	if _, err := Load(path, nil); err == nil || !strings.Contains(err.Error(), "ownership.components: required") {
		t.Fatalf("rules alone from a file: %v", err)
	}
	t.Setenv("CITYHUB_OWNERSHIP_COMPONENTS", comps)
	c, err := Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Ownership != (OwnershipConfig{Rules: rules, Components: comps}) {
		t.Errorf("ownership %+v", c.Ownership)
	}
}
