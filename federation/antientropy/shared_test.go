package antientropy

import (
	"slices"
	"testing"
)

func TestCopiesHandChecked(t *testing.T) {
	topo := testTopo(t)
	for _, tc := range []struct {
		name, holder, reportedAt string
		want                     []string
	}{
		// Held by community c-1, reported at the other district: the
		// holder's chain, the reporting district, nothing of d-2's streets.
		{"held at a community, reported at another district", "c-1", "320502", []string{"c-1", "s-1", "d-1", "city", "d-2"}},
		// Held by c-1, reported at c-3 (another district's community): the
		// path from c-1 to c-3 runs through the city.
		{"held at a community, reported at a far community", "c-1", "320502001001", []string{"c-1", "s-1", "d-1", "city", "c-3", "s-3", "d-2"}},
		{"held at the city, reported there", "city", "320500", []string{"city"}},
		{"held at the city, reported at a community", "city", "320501001002", []string{"city", "c-2", "s-1", "d-1"}},
		{"held at a street, reported at its community", "s-1", "320501001001", []string{"s-1", "d-1", "city", "c-1"}},
		{"local only (no holder)", "", "320501", nil},
		{"holder unknown to the topology", "c-9", "320501", []string{"d-1"}},
		{"reporting node unknown", "s-2", "999999", []string{"s-2", "d-1", "city"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Copies(topo, tc.holder, tc.reportedAt)
			if !slices.Equal(sorted(got), sorted(tc.want)) {
				t.Fatalf("Copies(%q, %q) = %v, want %v", tc.holder, tc.reportedAt, got, tc.want)
			}
		})
	}
	// Shared on a link: both ends keep a copy.
	for _, tc := range []struct {
		a, b, holder, reportedAt string
		want                     bool
	}{
		{"s-1", "c-1", "c-1", "320502", true},
		{"d-1", "s-1", "c-1", "320502", true},
		{"city", "d-2", "c-1", "320502", true},
		{"d-2", "s-3", "c-1", "320502", false},
		{"s-1", "c-2", "c-1", "320502", false},
		{"city", "d-1", "city", "320500", false},
		{"d-1", "s-1", "city", "320501001002", true},
		{"s-1", "c-1", "city", "320501001002", false},
		{"city", "d-1", "", "320501", false},
	} {
		if got := Shared(topo, tc.a, tc.b, tc.holder, tc.reportedAt); got != tc.want {
			t.Errorf("Shared(%s, %s, holder %q, reported %q) = %v, want %v", tc.a, tc.b, tc.holder, tc.reportedAt, got, tc.want)
		}
	}
}

// The fast test every scan uses agrees with Shared for every link, holder
// and reporting node (known or not), seen from either end.
func TestLinkSharesAgreesWithShared(t *testing.T) {
	topo := testTopo(t)
	holders := []string{"", "nowhere"}
	codes := []string{"", "999999"}
	for _, n := range topo.Nodes() {
		holders = append(holders, n.Name)
		codes = append(codes, n.Jurisdiction)
	}
	links := 0
	for _, n := range topo.Nodes() {
		for _, peer := range topo.Neighbours(n.Name) {
			l, err := newLink(topo, n.Name, peer)
			if err != nil {
				t.Fatal(err)
			}
			links++
			for _, h := range holders {
				for _, r := range codes {
					if got, want := l.shares(h, r), Shared(topo, n.Name, peer, h, r); got != want {
						t.Fatalf("link %s-%s, holder %q, reported %q: shares %v, Shared %v", n.Name, peer, h, r, got, want)
					}
				}
			}
		}
	}
	if links != 16 {
		t.Fatalf("%d link ends, want 16", links)
	}
	if _, err := newLink(topo, "s-1", "s-2"); err == nil {
		t.Fatal("siblings make a link")
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
