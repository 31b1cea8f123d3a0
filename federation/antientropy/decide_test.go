package antientropy

import "testing"

func TestDecideClassifies(t *testing.T) {
	topo := testTopo(t)
	cp := func(holder, reported string, epoch, version, hash uint64) Copy {
		return Copy{Present: true, Version: Version{epoch, version, hash}, Holder: holder, ReportedAt: reported}
	}
	none := Copy{}
	// Held by c-1 below s-1, reported at d-2: d-1 and s-1 both keep it;
	// s-1 is nearer the holder.
	below := func(epoch, version, hash uint64) Copy { return cp("c-1", "320502", epoch, version, hash) }
	for _, tc := range []struct {
		name         string
		here, peer   string
		mine, theirs Copy
		want         Decision
	}{
		{"equal", "d-1", "s-1", below(2, 3, 7), below(2, 3, 7), Decision{}},
		{"neither has it", "d-1", "s-1", none, none, Decision{}},
		{"missing at the child", "d-1", "s-1", below(2, 3, 7), none,
			Decision{Kind: MissingThere, WinnerHere: true, Fix: FixWrite}},
		{"missing at the parent", "d-1", "s-1", none, below(2, 3, 7),
			Decision{Kind: MissingHere, Fix: FixWrite}},
		{"same version, other content: the child's copy stands", "d-1", "s-1", below(2, 3, 7), below(2, 3, 8),
			Decision{Kind: Divergent, Fix: FixWrite}},
		{"seen from the child", "s-1", "d-1", below(2, 3, 8), below(2, 3, 7),
			Decision{Kind: Divergent, WinnerHere: true, AuthHere: true, Fix: FixWrite}},
		{"the parent learned a newer version the child lost: it restores the child", "d-1", "s-1", below(2, 4, 9), below(2, 3, 7),
			Decision{Kind: Divergent, WinnerHere: true, Fix: FixWrite}},
		{"the child is newer and nearer: its copy stands", "d-1", "s-1", below(2, 3, 7), below(3, 1, 1),
			Decision{Kind: Divergent, Fix: FixWrite}},
		// The district's own case (reported and held there): the street
		// keeps no copy; a copy there claiming the street reported it is a
		// stray, dropped.
		{"stray mirror at the child", "d-1", "s-1", cp("d-1", "320501", 1, 4, 7), cp("d-1", "320501001", 1, 4, 8),
			Decision{Kind: Extra, WinnerHere: true, AuthHere: true, Fix: FixDrop}},
		{"stray mirror at the child, older", "d-1", "s-1", cp("d-1", "320501", 1, 4, 7), cp("d-1", "320501001", 1, 2, 8),
			Decision{Kind: Extra, WinnerHere: true, AuthHere: true, Fix: FixDrop}},
		// The street still thinks it holds a case (an old backup) that went
		// up to the city since: a drop never touches a held case, the newer
		// copy replaces it.
		{"stale held copy at the child", "d-1", "s-1", cp("city", "320501", 2, 5, 7), cp("s-1", "320501", 1, 2, 8),
			Decision{Kind: Extra, WinnerHere: true, AuthHere: true, Fix: FixWrite}},
		// The district holds the case (reported at the street) and lost
		// it: the street's mirror is the only copy left.
		{"the holder lost its case", "d-1", "s-1", none, cp("d-1", "320501001", 1, 6, 7),
			Decision{Kind: MissingHere, AuthHere: true, Fix: FixWrite}},
		{"the holder lost its case, seen from the child", "s-1", "d-1", cp("d-1", "320501001", 1, 6, 7), none,
			Decision{Kind: MissingThere, WinnerHere: true, Fix: FixWrite}},
		// Equal versions naming different holders: the parent's copy names
		// the holder, whichever end asks.
		{"tie, holders differ, asked by the child", "s-1", "d-1", cp("c-1", "320501", 1, 1, 7), cp("d-1", "320501001", 1, 1, 8),
			Decision{Kind: Divergent, Fix: FixWrite}},
		{"tie, holders differ, asked by the parent", "d-1", "s-1", cp("d-1", "320501001", 1, 1, 8), cp("c-1", "320501", 1, 1, 7),
			Decision{Kind: Divergent, WinnerHere: true, AuthHere: true, Fix: FixWrite}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Decide(topo, tc.here, tc.peer, tc.mine, tc.theirs)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("Decide = %+v (%s), want %+v (%s)", got, got.Kind, tc.want, tc.want.Kind)
			}
		})
	}
	if _, err := Decide(topo, "d-1", "c-1", none, none); err == nil {
		t.Fatal("Decide across two levels")
	}
}
