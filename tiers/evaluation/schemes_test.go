package evaluation

import (
	"strings"
	"testing"
)

func TestParseSchemes(t *testing.T) {
	got, err := ParseSchemes([]byte("- name: district-2026\n  filing_points: 10\n  closure_weight: 0.4\n- name: jinhua\n  on_time_closure_target: 80\n  on_time_closure_points: 50\n  below_target_penalty: 2\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got["district-2026"].ClosureWeight != 0.4 || got["jinhua"].OnTimeClosureTarget != 80 {
		t.Fatalf("parsed %+v", got)
	}
	for _, bad := range []struct{ yaml, want string }{
		{"- name: Bad Name\n", "schemes[0].name"},
		{"- name: a\n- name: a\n", "listed twice"},
		{"- name: a\n  rework_penalty: -1\n", "negative"},
		{"- name: a\n  weight_of_the_moon: 1\n", "weight_of_the_moon"},
	} {
		if _, err := ParseSchemes([]byte(bad.yaml)); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%q: %v, want an error with %q", bad.yaml, err, bad.want)
		}
	}
}
