package evaluation

import (
	"bytes"
	"fmt"
	"regexp"

	"go.yaml.in/yaml/v3"
)

var schemeNameRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)

// ParseSchemes reads a city's scoring schemes (evaluation.schemes): a YAML
// list of Scheme, each with a unique lower-case name. A name may replace a
// preset. Problems are reported naming the entry.
//
//   - name: district-2026
//     filing_points: 10
//     closure_weight: 0.4
//     on_time_handling_weight: 0.4
//     rework_free_weight: 0.2
func ParseSchemes(data []byte) (map[string]Scheme, error) {
	var list []Scheme
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&list); err != nil {
		return nil, fmt.Errorf("schemes: %w", err)
	}
	out := map[string]Scheme{}
	for i, s := range list {
		if !schemeNameRe.MatchString(s.Name) {
			return nil, fmt.Errorf("schemes[%d].name: %q must be 1-32 of a-z 0-9 _ - (lower case)", i, s.Name)
		}
		if _, dup := out[s.Name]; dup {
			return nil, fmt.Errorf("schemes[%d].name: %q listed twice", i, s.Name)
		}
		for _, w := range []float64{s.FilingPoints, s.ClosureWeight, s.OnTimeClosureWeight, s.OnTimeHandlingWeight, s.ReworkFreeWeight,
			s.OnTimeClosureTarget, s.OnTimeClosurePoints, s.BelowTargetPenalty, s.ReworkPenalty, s.PriorityWeight} {
			if w < 0 {
				return nil, fmt.Errorf("schemes[%d] (%s): weights must not be negative", i, s.Name)
			}
		}
		out[s.Name] = s
	}
	return out, nil
}
