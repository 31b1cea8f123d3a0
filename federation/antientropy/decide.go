package antientropy

import (
	"github.com/cityhub/cityhub/federation/topology"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/store"
)

// Copy is what one end of a link knows of its copy of a case.
type Copy struct {
	Present bool
	Version
	Holder     string
	ReportedAt string // jurisdiction of the reporting node ("" when not known)
}

// copyOf summarises a stored case.
func copyOf(c *pb.Case) (Copy, error) {
	if c == nil {
		return Copy{}, nil
	}
	h, err := store.HashCase(c)
	if err != nil {
		return Copy{}, err
	}
	return Copy{Present: true, Version: Version{c.GetHolderEpoch(), c.GetVersion(), h}, Holder: c.GetHolder(), ReportedAt: c.GetReportedAtNode()}, nil
}

// same reports whether two copies are equal.
func same(a, b Copy) bool { return a.Present == b.Present && (!a.Present || a.Version == b.Version) }

// Kind classifies a difference between the two ends of a link.
type Kind uint8

const (
	// Same: no difference.
	Same Kind = iota
	// MissingHere: the initiator lacks a copy it should keep.
	MissingHere
	// MissingThere: the peer lacks a copy it should keep.
	MissingThere
	// Divergent: both keep a copy, and they differ (holder epoch, version
	// or content).
	Divergent
	// Extra: one end keeps a copy that, by the copy that stands, it
	// should not (a stray mirror).
	Extra
)

var kindNames = [...]string{"same", "missing_here", "missing_there", "divergent", "extra"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "unknown"
}

// Fix is what the losing end of a difference does.
type Fix uint8

const (
	FixNone  Fix = iota
	FixWrite     // take the winning copy (RepairCases.cases)
	FixDrop      // drop its own copy (RepairCases.drop)
)

// Decision is the outcome of comparing the two copies of one case.
type Decision struct {
	Kind Kind
	// WinnerHere: the initiator's copy stands; the peer is the one to fix.
	WinnerHere bool
	// AuthHere: the initiator is the end nearer the holder.
	AuthHere bool
	Fix      Fix
}

// Decide compares the initiator's copy (mine, at node here) with the peer's
// (theirs, at neighbour peer). See decide.
func Decide(t *topology.Topology, here, peer string, mine, theirs Copy) (Decision, error) {
	l, err := newLink(t, here, peer)
	if err != nil {
		return Decision{}, err
	}
	return l.decide(mine, theirs), nil
}

// winner picks the copy that stands, from versions and holders alone.
//
// Authority goes to the end nearer the holder: the child when the holder
// is the child or below it, the parent otherwise. The holder is the one
// the newer copy names (with equal versions, the parent's copy's). The
// authoritative copy stands, unless the other one is strictly newer (the
// authoritative end lost versions the other end learned): then that one
// stands and the authoritative end is restored from it. When only one end
// has a copy, it stands.
func (l *link) winner(mine, theirs Copy) (hereWins, authHere bool) {
	var holder string
	switch {
	case !theirs.Present:
		holder = mine.Holder
	case !mine.Present:
		holder = theirs.Holder
	case theirs.Newer(mine.Version):
		holder = theirs.Holder
	case mine.Newer(theirs.Version):
		holder = mine.Holder
	case l.self == l.parent:
		holder = mine.Holder
	default:
		holder = theirs.Holder
	}
	authHere = l.childSide(holder) == (l.self == l.child)
	switch {
	case !theirs.Present:
		return true, authHere
	case !mine.Present:
		return false, authHere
	case authHere:
		return !theirs.Newer(mine.Version), true
	default:
		return mine.Newer(theirs.Version), false
	}
}

// decide classifies the difference between mine and theirs and says how
// to repair it. The winning copy's Holder and ReportedAt must be known
// (the initiator fetches the peer's copy whenever it may win).
//
// The losing end should keep the winning copy when it is among the
// winner's Copies: it lacks it (missing) or keeps another (divergent), and
// takes the winner's copy. Otherwise a copy it keeps is extra: it is
// dropped, except at its own holder, which a drop never touches: a newer
// winner replaces it there instead (it names where the case went).
func (l *link) decide(mine, theirs Copy) Decision {
	if same(mine, theirs) {
		return Decision{}
	}
	hereWins, authHere := l.winner(mine, theirs)
	w, lo, loser := mine, theirs, l.peer
	if !hereWins {
		w, lo, loser = theirs, mine, l.self
	}
	d := Decision{WinnerHere: hereWins, AuthHere: authHere}
	switch {
	case l.keeps(loser, w.Holder, w.ReportedAt):
		d.Fix = FixWrite
		switch {
		case lo.Present:
			d.Kind = Divergent
		case hereWins:
			d.Kind = MissingThere
		default:
			d.Kind = MissingHere
		}
	case lo.Present:
		d.Kind, d.Fix = Extra, FixDrop
		if lo.Holder == loser && w.Newer(lo.Version) {
			d.Fix = FixWrite
		}
	}
	return d
}
