package fsm_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/fsm"
	"github.com/cityhub/cityhub/tiers/store"
)

// Tests of the ownership part of the state machine (ownership.go): the
// owner the leader stamps, the owner's returns (回退), the referral to the
// city's joint review (提请会诊) and its decision (会诊裁定), in the
// federation of fedTopology (city → d-110105 → s-110105001 →
// c-110105001001).

// fedLog applies commands to one FSM at consecutive indexes and keeps
// them (the log, to replay elsewhere).
type fedLog struct {
	tb   testing.TB
	s    *store.Store
	f    *fsm.FSM
	idx  uint64
	cmds []*pb.Command
}

// newFedLog opens an FSM serving node self of fedTopology.
func newFedLog(tb testing.TB, self string) *fedLog {
	tb.Helper()
	s := openStore(tb)
	l := &fedLog{tb: tb, s: s, f: newFSM(tb, s)}
	l.ok(fedTopology(self))
	return l
}

func (l *fedLog) ok(cmd *pb.Command) *fsm.Result {
	l.tb.Helper()
	l.idx++
	l.cmds = append(l.cmds, cmd)
	return mustApply(l.tb, l.f, l.idx, cmd)
}

func (l *fedLog) refuse(cmd *pb.Command, want error) *fsm.Result {
	l.tb.Helper()
	l.idx++
	l.cmds = append(l.cmds, cmd)
	return refused(l.tb, l.f, l.idx, cmd, want)
}

func (l *fedLog) get(id string) *pb.Case {
	l.tb.Helper()
	c, err := l.s.GetCase(id)
	if err != nil {
		l.tb.Fatalf("get %s: %v", id, err)
	}
	return c
}

// inReview lists the ids of the review queue (the v/ index).
func (l *fedLog) inReview() []string {
	l.tb.Helper()
	cs, _, err := l.s.List(store.Query{InReview: true, PageSize: 100})
	if err != nil {
		l.tb.Fatal(err)
	}
	var out []string
	for _, c := range cs {
		out = append(out, c.Id)
	}
	return out
}

// cityReport is a report taken at the root (ids 110100-…), on a grid of
// the district.
func cityReport(reqID string, at int64) *pb.Command {
	c := report(reqID, at, "who owns this cover?")
	c.GetReport().IdPrefix = "110100"
	return c
}

func cityCaseID(seq int) string { return fmt.Sprintf("110100-%s-%06d", date, seq) }

// stamped is a catalogue answer as the leader stamps it.
func stamped(unit, node string, tier pb.Tier, rule string) *pb.Ownership {
	return &pb.Ownership{Unit: unit, Node: node, Tier: tier, Rule: rule, CatalogueVersion: "2026.1",
		Explanation: "rule " + rule + " names " + unit}
}

// ownAct builds an action command; a unit brings a deadline with it.
func ownAct(reqID, id string, a pb.Action, role pb.Role, note, unit string, o *pb.Ownership) *pb.Command {
	ca := &pb.CaseAction{CaseId: id, Action: a, Role: role, Note: note, Unit: unit, Ownership: o, Actor: "actor-" + strings.ToLower(role.String()[5:])}
	if unit != "" {
		ca.DeadlineUnixMs = stamp + 1000*minute
	}
	return act(reqID, stamp+minute, ca)
}

func fileCmd(reqID, id string, o *pb.Ownership) *pb.Command {
	return ownAct(reqID, id, pb.Action_ACTION_FILE, pb.Role_ROLE_SHIFT_LEADER, "", "", o)
}

func dispatchCmd(reqID, id, unit string) *pb.Command {
	return ownAct(reqID, id, pb.Action_ACTION_DISPATCH, pb.Role_ROLE_DISPATCHER, "", unit, nil)
}

func acceptCmd(reqID, id string) *pb.Command {
	return ownAct(reqID, id, pb.Action_ACTION_ACCEPT, pb.Role_ROLE_HANDLING_UNIT, "", "", nil)
}

func requestReturnCmd(reqID, id, note string) *pb.Command {
	return ownAct(reqID, id, pb.Action_ACTION_REQUEST_RETURN, pb.Role_ROLE_HANDLING_UNIT, note, "", nil)
}

func denyReturnCmd(reqID, id string) *pb.Command {
	return ownAct(reqID, id, pb.Action_ACTION_DENY_RETURN, pb.Role_ROLE_DISPATCHER, "", "", nil)
}

func referCmd(reqID, id, note string, o *pb.Ownership) *pb.Command {
	return ownAct(reqID, id, pb.Action_ACTION_REFER_REVIEW, pb.Role_ROLE_DISPATCHER, note, "", o)
}

func decideCmd(reqID, id, unit, note string) *pb.Command {
	return ownAct(reqID, id, pb.Action_ACTION_DECIDE_OWNER, pb.Role_ROLE_SHIFT_LEADER, note, unit, nil)
}

func sameOwnership(tb testing.TB, what string, got, want *pb.Ownership) {
	tb.Helper()
	if !proto.Equal(got, want) {
		tb.Fatalf("%s: ownership\n got  %v\n want %v", what, got, want)
	}
}

// The owning unit's return counts against it and keeps its reason; the
// reasons are bounded, oldest dropped first.
func TestRequestReturnByTheOwnerCountsARejection(t *testing.T) {
	l := newFedLog(t, "d-110105")
	id := caseID(1)
	l.ok(report("r1", stamp, "x"))
	owner := stamped("d-roads", "d-110105", pb.Tier_TIER_DISTRICT, "roads-01")
	l.ok(fileCmd("f1", id, owner))
	l.ok(dispatchCmd("d1", id, "d-roads"))
	l.ok(acceptCmd("a1", id))
	c := l.ok(requestReturnCmd("rr1", id, "not ours: the pipe is the water company's")).Case
	o := c.GetOwnership()
	if o.GetRejections() != 1 || len(o.GetReasons()) != 1 {
		t.Fatalf("after the owner's return: rejections %d, reasons %q", o.GetRejections(), o.GetReasons())
	}
	for _, want := range []string{"d-roads", "actor-handling_unit", "not ours: the pipe is the water company's"} {
		if !strings.Contains(o.Reasons[0], want) {
			t.Errorf("reason %q does not mention %q", o.Reasons[0], want)
		}
	}
	// The rest of the owner stands; the stored copy is the returned one.
	if o.Unit != "d-roads" || o.Rule != "roads-01" || o.Node != "d-110105" || o.InReview || o.Decided {
		t.Fatalf("the return changed the owner: %v", o)
	}
	sameOwnership(t, "stored", l.get(id).GetOwnership(), o)

	// Returned again and again: every return counts, the newest reasons stay.
	for round := 2; round <= 23; round++ {
		l.ok(denyReturnCmd(fmt.Sprint("deny-", round), id))
		l.ok(requestReturnCmd(fmt.Sprint("rr-", round), id, fmt.Sprint("round ", round)))
	}
	o = l.get(id).GetOwnership()
	if o.Rejections != 23 || len(o.Reasons) != 20 {
		t.Fatalf("after 23 returns: rejections %d, %d reasons", o.Rejections, len(o.Reasons))
	}
	if !strings.HasSuffix(o.Reasons[0], "round 4") || !strings.HasSuffix(o.Reasons[19], "round 23") {
		t.Fatalf("reasons kept: first %q, last %q; want rounds 4 to 23, oldest first", o.Reasons[0], o.Reasons[19])
	}
}

// A unit that is not the catalogue's owner may return a case without it
// counting against the owner; a case without an owner gets none.
func TestRequestReturnByAnotherUnitLeavesTheOwnership(t *testing.T) {
	l := newFedLog(t, "d-110105")
	l.ok(report("r1", stamp, "x"))
	l.ok(report("r2", stamp, "y"))
	owner := stamped("d-roads", "d-110105", pb.Tier_TIER_DISTRICT, "roads-01")
	l.ok(fileCmd("f1", caseID(1), owner))
	l.ok(dispatchCmd("d1", caseID(1), "paper-unit")) // not the owner
	l.ok(acceptCmd("a1", caseID(1)))
	before := l.get(caseID(1)).GetOwnership()
	c := l.ok(requestReturnCmd("rr1", caseID(1), "not ours")).Case
	if c.State != pb.State_STATE_RETURN_REQUESTED {
		t.Fatalf("state %s", c.State)
	}
	sameOwnership(t, "return by another unit", c.GetOwnership(), before)

	l.ok(fileCmd("f2", caseID(2), nil))
	l.ok(dispatchCmd("d2", caseID(2), "d-roads"))
	if c := l.ok(requestReturnCmd("rr2", caseID(2), "not ours")).Case; c.Ownership != nil {
		t.Fatalf("a case without an owner got one on a return: %v", c.Ownership)
	}
}

// A referral at a district sends the case to the city's review queue: the
// holder becomes the root (epoch + 1), the case is marked in review with
// its rejections and reasons, and it is queued toward the parent.
func TestReferReviewAtADistrictMovesTheCaseToTheRoot(t *testing.T) {
	l := newFedLog(t, "d-110105")
	id := caseID(1)
	l.ok(report("r1", stamp, "x"))
	l.ok(fileCmd("f1", id, stamped("d-roads", "d-110105", pb.Tier_TIER_DISTRICT, "roads-01")))
	l.ok(dispatchCmd("d1", id, "d-roads"))
	l.ok(acceptCmd("a1", id))
	l.ok(requestReturnCmd("rr1", id, "not ours"))
	before := l.get(id)
	upBefore := len(outbox(t, l.s, "city"))

	c := l.ok(referCmd("rev1", id, "roads and water both disclaim the main", nil)).Case
	if c.Holder != "city" || c.HolderEpoch != before.HolderEpoch+1 || c.State != pb.State_STATE_FILED || c.OwnerUnit != "" {
		t.Fatalf("after referral: holder %q epoch %d (was %d) state %s unit %q", c.Holder, c.HolderEpoch, before.HolderEpoch, c.State, c.OwnerUnit)
	}
	o, prev := c.GetOwnership(), before.GetOwnership()
	if !o.InReview || o.Decided || o.Unit != "d-roads" || o.Rule != "roads-01" || o.Rejections != 1 {
		t.Fatalf("ownership after referral: %v", o)
	}
	if len(o.Reasons) != 2 || o.Reasons[0] != prev.Reasons[0] {
		t.Fatalf("reasons %q, want the return's then the referral's", o.Reasons)
	}
	for _, want := range []string{"referred to joint review", "actor-dispatcher", "d-110105", "roads and water both disclaim the main"} {
		if !strings.Contains(o.Reasons[1], want) {
			t.Errorf("referral reason %q does not mention %q", o.Reasons[1], want)
		}
	}
	// Queued toward the city, once, as stored.
	up := outbox(t, l.s, "city")
	if len(up) != upBefore+1 || !proto.Equal(up[len(up)-1].Case, l.get(id)) {
		t.Fatalf("outbox to the city: %d entries (was %d), last %v", len(up), upBefore, up[len(up)-1].Case)
	}
	if got := l.inReview(); !slices.Equal(got, []string{id}) {
		t.Fatalf("review queue %q", got)
	}
	// The district keeps a mirror: acting on it here is refused.
	l.refuse(ownAct("sup", id, pb.Action_ACTION_SUPERVISE, pb.Role_ROLE_SUPERVISOR, "", "", nil), fsm.ErrNotHolder)

	// A referral that carries the catalogue's (disputed) answer records it,
	// still with the case's rejections and reasons.
	l.ok(report("r2", stamp, "y"))
	id2 := caseID(2)
	l.ok(fileCmd("f2", id2, stamped("d-roads", "d-110105", pb.Tier_TIER_DISTRICT, "roads-01")))
	disputed := &pb.Ownership{Disputed: true, Dispute: "rules w-1 and w-2 disagree", CatalogueVersion: "2026.2", Rejections: 9, Decided: true}
	o = l.ok(referCmd("rev2", id2, "catalogue disputes it", disputed)).Case.GetOwnership()
	if !o.Disputed || o.Dispute != disputed.Dispute || o.Unit != "" || o.CatalogueVersion != "2026.2" ||
		!o.InReview || o.Decided || o.Rejections != 0 || len(o.Reasons) != 1 {
		t.Fatalf("referral with a stamped answer: %v", o)
	}
}

// At the root the referral keeps the holder: the review queue is there.
func TestReferReviewAtTheRootKeepsTheHolder(t *testing.T) {
	l := newFedLog(t, "city")
	id := cityCaseID(1)
	l.ok(cityReport("r1", stamp))
	l.ok(fileCmd("f1", id, nil))
	c := l.ok(referCmd("rev1", id, "no rule covers it", nil)).Case
	if c.Holder != "city" || c.HolderEpoch != 1 || c.State != pb.State_STATE_FILED {
		t.Fatalf("referral at the root: holder %q epoch %d state %s", c.Holder, c.HolderEpoch, c.State)
	}
	if o := c.GetOwnership(); !o.InReview || len(o.Reasons) != 1 || !strings.Contains(o.Reasons[0], "at city") {
		t.Fatalf("ownership %v", o)
	}
	if got := l.inReview(); !slices.Equal(got, []string{id}) {
		t.Fatalf("review queue %q", got)
	}
	// Reported and held at the root: nothing goes down.
	if down := outbox(t, l.s, "d-110105"); len(down) != 0 {
		t.Fatalf("queued down: %v", down)
	}
}

// Only a case in the review queue can be decided; a refused decision
// writes nothing.
func TestDecideOwnerNeedsACaseInReview(t *testing.T) {
	l := newFedLog(t, "city")
	id := cityCaseID(1)
	l.ok(cityReport("r1", stamp))
	l.ok(fileCmd("f1", id, stamped("city-water", "city", pb.Tier_TIER_CITY, "water-01")))
	before := records(t, l.s, true)
	r := l.refuse(decideCmd("dec1", id, "d-roads", "decided"), fsm.ErrNotInReview)
	if !strings.Contains(r.Err.Error(), id) {
		t.Errorf("refusal %q does not name the case", r.Err)
	}
	sameRecords(t, "after a refused decision", before, records(t, l.s, true))
	// Decided once, it is out of the queue: a second decision is refused.
	l.ok(referCmd("rev1", id, "disputed", nil))
	l.ok(decideCmd("dec2", id, "city-water", "decided"))
	before = records(t, l.s, true)
	l.refuse(decideCmd("dec3", id, "d-roads", "changed our minds"), fsm.ErrNotInReview)
	sameRecords(t, "after a second decision", before, records(t, l.s, true))
}

// The decision names the unit, the node that hosts it and its tier, as
// decided by joint review, and hands the case down to that node.
func TestDecideOwnerSetsTheOwnerAndHandsTheCaseDown(t *testing.T) {
	l := newFedLog(t, "city")
	id := cityCaseID(1)
	l.ok(cityReport("r1", stamp))
	l.ok(fileCmd("f1", id, stamped("city-water", "city", pb.Tier_TIER_CITY, "water-01")))
	l.ok(dispatchCmd("d1", id, "city-water"))
	l.ok(requestReturnCmd("rr1", id, "not our main"))
	l.ok(referCmd("rev1", id, "the water company disclaims it", nil))
	before := l.get(id)
	// The tier the client gives is the case's; the decided owner names the
	// tier of the node that hosts the unit.
	decide := decideCmd("dec1", id, "d-roads", "the 2019 handover records name the district")
	decide.GetAct().UnitTier = pb.Tier_TIER_STREET
	c := l.ok(decide).Case
	if c.State != pb.State_STATE_DISPATCHED || c.OwnerUnit != "d-roads" || c.Holder != "d-110105" || c.HolderEpoch != before.HolderEpoch+1 {
		t.Fatalf("after the decision: state %s unit %q holder %q epoch %d", c.State, c.OwnerUnit, c.Holder, c.HolderEpoch)
	}
	o := c.GetOwnership()
	if o.Unit != "d-roads" || o.Node != "d-110105" || o.Tier != pb.Tier_TIER_DISTRICT || o.Rule != "joint-review" ||
		!o.Decided || o.InReview || o.Disputed || o.CatalogueVersion != "2026.1" || o.Rejections != 1 {
		t.Fatalf("decided ownership: %v", o)
	}
	if len(o.Reasons) != 3 || !slices.Equal(o.Reasons[:2], before.Ownership.Reasons) ||
		!strings.Contains(o.Reasons[2], "d-roads") || !strings.Contains(o.Reasons[2], "the 2019 handover records name the district") {
		t.Fatalf("reasons %q", o.Reasons)
	}
	if !strings.Contains(o.Explanation, "joint review") || !strings.Contains(o.Explanation, "actor-shift_leader") {
		t.Fatalf("explanation %q", o.Explanation)
	}
	// Handed down toward the district; out of the review queue.
	down := outbox(t, l.s, "d-110105")
	if len(down) == 0 || !proto.Equal(down[len(down)-1].Case, l.get(id)) {
		t.Fatalf("not queued toward the district: %v", down)
	}
	if got := l.inReview(); len(got) != 0 {
		t.Fatalf("review queue after the decision: %q", got)
	}

	// A unit of the root itself: the case stays.
	id2 := cityCaseID(2)
	l.ok(cityReport("r2", stamp))
	l.ok(fileCmd("f2", id2, nil))
	l.ok(referCmd("rev2", id2, "disputed", nil))
	c = l.ok(decideCmd("dec2", id2, "city-water", "the main is the company's")).Case
	if c.Holder != "city" || c.HolderEpoch != 1 {
		t.Fatalf("decided to a city unit: holder %q epoch %d", c.Holder, c.HolderEpoch)
	}
	if o := c.Ownership; o.Node != "city" || o.Tier != pb.Tier_TIER_CITY || o.Unit != "city-water" || !o.Decided {
		t.Fatalf("decided to a city unit: %v", o)
	}
}

// handedDown decides case 1 at the city to d-roads and delivers it to a
// district FSM, which then holds it with the decided owner.
func handedDown(t *testing.T) (*fedLog, string, *pb.Ownership) {
	t.Helper()
	city := newFedLog(t, "city")
	id := cityCaseID(1)
	city.ok(cityReport("r1", stamp))
	city.ok(fileCmd("f1", id, stamped("city-water", "city", pb.Tier_TIER_CITY, "water-01")))
	city.ok(referCmd("rev1", id, "disputed", nil))
	city.ok(decideCmd("dec1", id, "d-roads", "handover records"))
	d := newFedLog(t, "d-110105")
	r := d.ok(deliverCmd("city", stamp+2*minute, outbox(t, city.s, "d-110105")...))
	if r.Skipped != 0 {
		t.Fatalf("delivery skipped %d entries", r.Skipped)
	}
	c := d.get(id)
	if c.Holder != "d-110105" || !c.GetOwnership().GetDecided() {
		t.Fatalf("delivered: holder %q ownership %v", c.Holder, c.Ownership)
	}
	return d, id, c.Ownership
}

// No later catalogue answer overrides a joint-review decision.
func TestDecidedOwnerIsNotOverriddenByTheCatalogue(t *testing.T) {
	d, id, decided := handedDown(t)
	other := stamped("s-squad", "s-110105001", pb.Tier_TIER_STREET, "street-09")
	c := d.ok(ownAct("re1", id, pb.Action_ACTION_REASSIGN, pb.Role_ROLE_DISPATCHER, "crew busy", "paper-unit", other)).Case
	if c.OwnerUnit != "paper-unit" {
		t.Fatalf("reassign: unit %q", c.OwnerUnit)
	}
	sameOwnership(t, "reassign with a stamped owner", c.Ownership, decided)
	c = d.ok(ownAct("up1", id, pb.Action_ACTION_TRANSFER_UP, pb.Role_ROLE_SHIFT_LEADER, "city must coordinate", "", other)).Case
	if c.Holder != "city" {
		t.Fatalf("transfer up: holder %q", c.Holder)
	}
	sameOwnership(t, "transfer up with a stamped owner", c.Ownership, decided)

	// A decided case that is still to be filed and dispatched here (a copy
	// as the city would send it): filing and dispatching keep the decision.
	held := proto.Clone(d.get(id)).(*pb.Case)
	held.Id, held.State, held.Holder, held.HolderEpoch, held.Version = cityCaseID(9), pb.State_STATE_VERIFIED, "d-110105", 3, 7
	held.OwnerUnit, held.History = "", nil
	in, err := d.s.Link("city")
	if err != nil {
		t.Fatal(err)
	}
	d.ok(deliverCmd("city", stamp+3*minute, &pb.LinkEntry{Seq: in.InHighWater + 1, Origin: "city", Case: held}))
	c = d.ok(fileCmd("f9", held.Id, other)).Case
	if c.State != pb.State_STATE_FILED {
		t.Fatalf("file: state %s", c.State)
	}
	sameOwnership(t, "file with a stamped owner", c.Ownership, decided)
	c = d.ok(ownAct("d9", held.Id, pb.Action_ACTION_DISPATCH, pb.Role_ROLE_DISPATCHER, "", "d-roads", other)).Case
	sameOwnership(t, "dispatch with a stamped owner", c.Ownership, decided)
}

// The owner stamped into a filing is recorded (with the case's own
// rejections and reasons, not in review, not decided), and replaced by the
// one stamped into a later hand-off.
func TestStampedOwnershipIsRecordedOnFilingAndHandOffs(t *testing.T) {
	l := newFedLog(t, "d-110105")
	id := caseID(1)
	l.ok(report("r1", stamp, "x"))
	// The leader's answer never brings review state or counts with it.
	forged := stamped("d-roads", "d-110105", pb.Tier_TIER_DISTRICT, "roads-01")
	forged.InReview, forged.Decided, forged.Rejections, forged.Reasons = true, true, 7, []string{"forged"}
	c := l.ok(fileCmd("f1", id, forged)).Case
	want := stamped("d-roads", "d-110105", pb.Tier_TIER_DISTRICT, "roads-01")
	sameOwnership(t, "filed", c.Ownership, want)
	sameOwnership(t, "stored", l.get(id).Ownership, want)

	l.ok(dispatchCmd("d1", id, "d-roads"))
	sameOwnership(t, "dispatched without a stamp", l.get(id).Ownership, want)
	l.ok(requestReturnCmd("rr1", id, "not ours"))
	prev := l.get(id).Ownership
	l.ok(denyReturnCmd("dr1", id))

	b := stamped("s-squad", "s-110105001", pb.Tier_TIER_STREET, "street-02")
	c = l.ok(ownAct("re1", id, pb.Action_ACTION_REASSIGN, pb.Role_ROLE_DISPATCHER, "the street's", "paper-unit", b)).Case
	wantB := proto.Clone(b).(*pb.Ownership)
	wantB.Rejections, wantB.Reasons = 1, prev.Reasons
	sameOwnership(t, "reassigned", c.Ownership, wantB)

	up := stamped("city-water", "city", pb.Tier_TIER_CITY, "water-01")
	c = l.ok(ownAct("up1", id, pb.Action_ACTION_TRANSFER_UP, pb.Role_ROLE_SHIFT_LEADER, "city-owned", "", up)).Case
	wantUp := proto.Clone(up).(*pb.Ownership)
	wantUp.Rejections, wantUp.Reasons = 1, prev.Reasons
	sameOwnership(t, "transferred up", c.Ownership, wantUp)
}

// The owner is the leader's answer, not the client's request: a retry of
// the same request with another stamped owner (another leader, a catalogue
// update in between) replays the first result.
func TestStampedOwnershipIsNotPartOfTheFingerprint(t *testing.T) {
	l := newFedLog(t, "d-110105")
	a := stamped("d-roads", "d-110105", pb.Tier_TIER_DISTRICT, "roads-01")
	b := stamped("city-water", "city", pb.Tier_TIER_CITY, "water-01")

	rep := report("r1", stamp, "x")
	rep.GetReport().Ownership = a
	first := l.ok(rep).Case
	sameOwnership(t, "reported", first.Ownership, a)
	before := records(t, l.s, true)
	again := report("r1", stamp+5*minute, "x")
	again.GetReport().Ownership = b
	if r := l.ok(again); !r.Replayed || !proto.Equal(r.Case, first) {
		t.Fatalf("report retried with another owner: replayed %v, case %v", r.Replayed, r.Case)
	}
	sameRecords(t, "after a replayed report", before, records(t, l.s, true))
	other := report("r1", stamp, "something else")
	other.GetReport().Ownership = a
	l.refuse(other, fsm.ErrRequestReused) // the fingerprint does see the request

	id := caseID(1)
	filed := l.ok(fileCmd("f1", id, a)).Case
	before = records(t, l.s, true)
	if r := l.ok(fileCmd("f1", id, b)); !r.Replayed || !proto.Equal(r.Case, filed) {
		t.Fatalf("filing retried with another owner: replayed %v, case %v", r.Replayed, r.Case)
	}
	if r := l.ok(fileCmd("f1", id, nil)); !r.Replayed {
		t.Fatal("filing retried without an owner was not a replay")
	}
	sameRecords(t, "after replayed filings", before, records(t, l.s, true))
	changed := fileCmd("f1", id, a)
	changed.GetAct().Note = "another note"
	l.refuse(changed, fsm.ErrRequestReused)

	imp := importCmd(t, "imp-1", stamp, legacyRows())
	for _, c := range imp.GetImportCases().Cases {
		c.Case.Ownership = a
	}
	res := l.ok(imp)
	if res.Imported != len(legacyRows()) {
		t.Fatalf("imported %d", res.Imported)
	}
	before = records(t, l.s, true)
	imp2 := importCmd(t, "imp-1", stamp+9*minute, legacyRows())
	for _, c := range imp2.GetImportCases().Cases {
		c.Case.Ownership = b
	}
	if r := l.ok(imp2); !r.Replayed {
		t.Fatalf("import retried with other owners: %+v", r)
	}
	sameRecords(t, "after a replayed import", before, records(t, l.s, true))
	imp3 := importCmd(t, "imp-1", stamp, legacyRows()[:2])
	if r := result(t, l.f.Apply(entry(l.idx+1, encode(t, imp3)))); !errors.Is(r.Err, fsm.ErrRequestReused) {
		t.Fatalf("import with other rows under the same id: %v", r.Err)
	}
}

// While a case waits in the joint review queue, only the shift leader's
// decision (or voiding, or supervising) may touch it: a plain dispatch
// would bypass the review.
func TestCaseInReviewWaitsForTheDecision(t *testing.T) {
	s := openStore(t)
	f := newFSM(t, s)
	mustApply(t, f, 1, fedTopology("city"))
	mustApply(t, f, 2, report("r1", stamp, "x"))
	id := caseID(1)
	mustApply(t, f, 3, act("file", stamp+minute, &pb.CaseAction{CaseId: id, Action: pb.Action_ACTION_FILE, Role: pb.Role_ROLE_SHIFT_LEADER}))
	mustApply(t, f, 4, act("refer", stamp+2*minute, &pb.CaseAction{CaseId: id, Action: pb.Action_ACTION_REFER_REVIEW, Role: pb.Role_ROLE_DISPATCHER, Note: "无主"}))
	before := records(t, s, true)
	refused(t, f, 5, act("dispatch", stamp+3*minute, &pb.CaseAction{CaseId: id, Action: pb.Action_ACTION_DISPATCH, Role: pb.Role_ROLE_DISPATCHER,
		Unit: "c-water", DeadlineUnixMs: stamp + 600*minute}), fsm.ErrInReview)
	sameRecords(t, "a refused dispatch", before, records(t, s, true))
	if c := mustApply(t, f, 6, act("supervise", stamp+4*minute, &pb.CaseAction{CaseId: id, Action: pb.Action_ACTION_SUPERVISE, Role: pb.Role_ROLE_SHIFT_LEADER})).Case; !c.Ownership.GetInReview() {
		t.Fatal("supervising took the case out of review")
	}
	c := mustApply(t, f, 7, act("decide", stamp+5*minute, &pb.CaseAction{CaseId: id, Action: pb.Action_ACTION_DECIDE_OWNER, Role: pb.Role_ROLE_SHIFT_LEADER,
		Unit: "c-water", Note: "会诊", DeadlineUnixMs: stamp + 600*minute})).Case
	if c.State != pb.State_STATE_DISPATCHED || c.Ownership.GetInReview() || !c.Ownership.GetDecided() {
		t.Fatalf("decided: %v %+v", c.State, c.Ownership)
	}
}
