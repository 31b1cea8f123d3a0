package config

import (
	"fmt"
	"os"
)

// OwnershipConfig selects the responsibility catalogue (责任清单, package
// federation/ownership): the rules deciding which unit owns a problem and
// the component register they consult. Both are set, or both empty: then
// the node has no catalogue (it logs so at start), records no owners, and
// owner lookups and reconciliation are refused (errcode.ErrNoCatalogue).
// No catalogue is taken by default, not even the sample city's on the
// sample topology: the demo and the tests name testdata/city's files.
type OwnershipConfig struct {
	// Rules is the path of the rules file (YAML, the format of
	// ownership.Parse; e.g. testdata/city/responsibility.yaml).
	Rules string `mapstructure:"rules"`
	// Components is the path of the component register (CSV with the
	// header component_id,major,minor,name,grid_code,supervising,owning,
	// maintaining; e.g. testdata/city/components.csv).
	Components string `mapstructure:"components"`
}

// IsSet reports whether the catalogue's files are configured (both keys;
// Validate refuses one without the other).
func (o OwnershipConfig) IsSet() bool { return o.Rules != "" || o.Components != "" }

// LoadOwnershipFiles reads ownership.rules and ownership.components; both
// are nil when the keys are unset. Errors name the key.
func (c *Config) LoadOwnershipFiles() (rules, components []byte, err error) {
	if !c.Ownership.IsSet() {
		return nil, nil, nil
	}
	if rules, err = os.ReadFile(c.Ownership.Rules); err != nil {
		return nil, nil, fmt.Errorf("ownership.rules: %w", err)
	}
	if components, err = os.ReadFile(c.Ownership.Components); err != nil {
		return nil, nil, fmt.Errorf("ownership.components: %w", err)
	}
	return rules, components, nil
}

// validateOwnership checks that the catalogue's two paths are given
// together and name files. Their content is checked against the topology
// when the replica parses them (ownership.Parse).
func (c *Config) validateOwnership(v *validator) {
	o := c.Ownership
	if !o.IsSet() {
		return
	}
	for _, f := range []struct{ key, path, other string }{
		{"ownership.rules", o.Rules, "ownership.components"},
		{"ownership.components", o.Components, "ownership.rules"},
	} {
		if f.path == "" {
			v.add(f.key, "required when %s is set (give both, or neither for a node without a catalogue)", f.other)
			continue
		}
		if fi, err := os.Stat(f.path); err != nil {
			v.add(f.key, "%v", err)
		} else if fi.IsDir() {
			v.add(f.key, "%q is a directory, not a file", f.path)
		}
	}
}
