package evaluation

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/workflow"
)

// Local time of the generated cases: UTC+8, like the demo city.
const cst = int32(8 * 3600)

var cstZone = time.FixedZone("CST", int(cst))

// memCounters is an in-memory Counters and CounterScanner with the store's
// semantics: a counter that reaches zero is deleted.
type memCounters map[string]int64

func (m memCounters) AddCounter(key []byte, delta int64) error {
	if v := m[string(key)] + delta; v == 0 {
		delete(m, string(key))
	} else {
		m[string(key)] = v
	}
	return nil
}

func (m memCounters) ScanCounters(prefix []byte, fn func(key []byte, v int64) error) error {
	keys := make([]string, 0, 64)
	for k := range m {
		if len(k) >= len(prefix) && k[:len(prefix)] == string(prefix) {
			keys = append(keys, k)
		}
	}
	sortStrings(keys)
	for _, k := range keys {
		if err := fn([]byte(k), m[k]); err != nil {
			return err
		}
	}
	return nil
}

// generator walks cases through realistic lifecycles with the real
// workflow, observing every write like the state machine would: most
// cases write by write (the holder), some as copies bringing several
// entries at once (a mirror), some only once at the end.
type generator struct {
	t     testing.TB
	rnd   *rand.Rand
	w     memCounters
	cases []*pb.Case
	seq   int

	units, grids, inspectors []string

	// what the month produced, so the test can insist each path is covered
	seen map[string]int
}

func newGenerator(t testing.TB, seed uint64) *generator {
	g := &generator{t: t, rnd: rand.New(rand.NewPCG(seed, seed^0x5eed)), w: memCounters{}, seen: map[string]int{}}
	g.units = []string{"huanwei-01", "huanwei-02", "yuanlin", "shizheng", "zhifa-01", "zhifa-02", "water-co", "power-co"}
	for _, d := range []string{"320505", "320506"} {
		for s := 1; s <= 3; s++ {
			for c := 1; c <= 3; c++ {
				for n := 1; n <= 2; n++ {
					g.grids = append(g.grids, fmt.Sprintf("%s%03d%03d%03d", d, s, c, n))
				}
			}
		}
	}
	g.inspectors = []string{"insp-01", "insp-02", "insp-03", "insp-04", "insp-05", "insp-06", "监督员-张三"}
	return g
}

func (g *generator) pick(xs []string) string { return xs[g.rnd.IntN(len(xs))] }

func (g *generator) chance(p float64) bool { return g.rnd.Float64() < p }

// minutes returns a random duration between lo and hi minutes, in ms.
func (g *generator) minutes(lo, hi int) int64 {
	return int64(lo+g.rnd.IntN(hi-lo+1)) * 60_000
}

// life is one case being walked.
type life struct {
	g         *generator
	c         *pb.Case
	now       int64
	observed  *pb.Case // the copy last passed to Observe (nil: none yet)
	mode      int      // 0 every write, 1 copies of several entries, 2 once at the end
	inspector string
}

func (l *life) observe() {
	cur := proto.Clone(l.c).(*pb.Case)
	if err := Observe(l.g.w, l.observed, cur, cst); err != nil {
		l.g.t.Fatal(err)
	}
	l.observed = cur
}

// wrote is called after every write of the case.
func (l *life) wrote() {
	switch l.mode {
	case 0:
		l.observe()
	case 1:
		if l.g.chance(0.3) {
			l.observe()
		}
	}
}

func (l *life) step(a pb.Action, actor string, role pb.Role, f func(*workflow.Step)) bool {
	l.now += l.g.minutes(5, 16*60)
	s := workflow.Step{Action: a, Actor: actor, Role: role, AtUnixMs: l.now, RequestID: fmt.Sprintf("r-%d-%d", l.g.seq, len(l.c.History))}
	if f != nil {
		f(&s)
	}
	if err := workflow.Apply(l.c, s); err != nil {
		l.g.t.Fatalf("%s %s: %v", l.c.Id, a, err)
	}
	l.g.seen[a.String()]++
	l.wrote()
	return true
}

// markOverdue records the system's overdue mark the way the deadline
// sweeper does (workflow.MarkOverdue), for the stage the case is in.
func (l *life) markOverdue() {
	dl := l.now + l.g.minutes(1, 60)
	if d := l.c.GetDeadline(); d != nil && (l.c.State == pb.State_STATE_DISPATCHED || l.c.State == pb.State_STATE_ACCEPTED) {
		dl = d.AsTime().UnixMilli()
	}
	l.c.StageDeadline = tsMs(dl)
	l.c.Overdue = false
	if l.now < dl {
		l.now = dl
	}
	l.now += l.g.minutes(1, 30)
	if err := workflow.MarkOverdue(l.c, dl, l.now, fmt.Sprintf("od-%d-%d", l.g.seq, len(l.c.History))); err != nil {
		l.g.t.Fatalf("%s mark overdue: %v", l.c.Id, err)
	}
	l.g.seen["overdue"]++
	l.wrote()
}

var sources = []pb.Source{
	pb.Source_SOURCE_INSPECTOR, pb.Source_SOURCE_INSPECTOR, pb.Source_SOURCE_INSPECTOR, pb.Source_SOURCE_INSPECTOR,
	pb.Source_SOURCE_HOTLINE_12345, pb.Source_SOURCE_HOTLINE_12345, pb.Source_SOURCE_HOTLINE_12319,
	pb.Source_SOURCE_APP, pb.Source_SOURCE_APP, pb.Source_SOURCE_CAMERA, pb.Source_SOURCE_LEADER, pb.Source_SOURCE_MEDIA,
}

// month generates n cases reported over November 2026 (local time).
func (g *generator) month(n int) {
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, cstZone).UnixMilli()
	span := int64(30 * 24 * 3600 * 1000)
	for range n {
		g.seq++
		src := sources[g.rnd.IntN(len(sources))]
		c := &pb.Case{
			Id:       fmt.Sprintf("320505-202611%02d-%06d", 1+g.seq%30, g.seq),
			Source:   src,
			Kind:     pb.Kind_KIND_EVENT,
			GridCode: g.pick(g.grids),
		}
		if g.chance(0.08) {
			c.RecurrenceOf = fmt.Sprintf("320505-20261001-%06d", g.seq)
		}
		l := &life{g: g, c: c, now: start + g.rnd.Int64N(span), mode: g.rnd.IntN(3), inspector: g.pick(g.inspectors)}
		actor, role := l.inspector, pb.Role_ROLE_INSPECTOR
		switch src {
		case pb.Source_SOURCE_HOTLINE_12345, pb.Source_SOURCE_HOTLINE_12319, pb.Source_SOURCE_MEDIA:
			actor, role = "clerk-1", pb.Role_ROLE_INTAKE_CLERK
		case pb.Source_SOURCE_APP:
			actor, role = "citizen-9", pb.Role_ROLE_CITIZEN
		case pb.Source_SOURCE_CAMERA:
			actor, role = "camera-3", pb.Role_ROLE_SYSTEM
		case pb.Source_SOURCE_LEADER:
			actor, role = "lead-1", pb.Role_ROLE_SHIFT_LEADER
		}
		if err := workflow.NewCase(c, workflow.Step{Action: pb.Action_ACTION_REPORT, Actor: actor, Role: role, AtUnixMs: l.now, RequestID: fmt.Sprintf("rep-%d", g.seq)}); err != nil {
			g.t.Fatal(err)
		}
		l.wrote()
		l.walk()
		if l.mode != 0 && (l.observed == nil || l.observed.Version != c.Version) {
			l.observe() // the last copy always arrives
		}
		g.cases = append(g.cases, c)
	}
}

const (
	rInsp  = pb.Role_ROLE_INSPECTOR
	rLead  = pb.Role_ROLE_SHIFT_LEADER
	rDisp  = pb.Role_ROLE_DISPATCHER
	rUnit  = pb.Role_ROLE_HANDLING_UNIT
	rSuper = pb.Role_ROLE_SUPERVISOR
)

// walk takes the case from REPORTED as far as its luck goes.
func (l *life) walk() {
	g := l.g
	trusted := l.c.Source == pb.Source_SOURCE_INSPECTOR || l.c.Source == pb.Source_SOURCE_LEADER
	switch {
	case l.c.Source == pb.Source_SOURCE_INSPECTOR && g.chance(0.1):
		l.step(pb.Action_ACTION_SELF_HANDLE, l.inspector, rInsp, nil)
		return
	case g.chance(0.05):
		l.markOverdue() // the verify or file stage ran late
		if g.chance(0.3) {
			return
		}
	}
	if !trusted {
		if g.chance(0.04) {
			return // never verified (yet)
		}
		if g.chance(0.08) {
			l.step(pb.Action_ACTION_REJECT, "lead-1", rLead, nil)
			return
		}
		verifier := g.pick(g.inspectors)
		if g.chance(0.1) {
			l.step(pb.Action_ACTION_SELF_HANDLE, verifier, rInsp, nil)
			return
		}
		l.step(pb.Action_ACTION_VERIFY, verifier, rInsp, nil)
	}
	l.step(pb.Action_ACTION_FILE, "lead-1", rLead, nil)
	if g.chance(0.04) {
		return // waits for dispatch
	}
	l.dispatch()
	for range 12 {
		if !l.work() {
			return
		}
	}
}

func (l *life) dispatch() {
	unit := l.g.pick(l.g.units)
	l.step(pb.Action_ACTION_DISPATCH, "disp-1", rDisp, func(s *workflow.Step) {
		s.Unit, s.DeadlineUnixMs = unit, s.AtUnixMs+l.g.minutes(4*60, 4*24*60)
	})
}

// work takes one turn of the handling loop; false when the case stops
// (closed, voided, or left open at the end of the month).
func (l *life) work() bool {
	g, c := l.g, l.c
	unit := c.OwnerUnit
	switch c.State {
	case pb.State_STATE_FILED: // after a return or a transfer up
		l.dispatch()
	case pb.State_STATE_DISPATCHED, pb.State_STATE_ACCEPTED:
		switch r := g.rnd.Float64(); {
		case r < 0.02:
			l.step(pb.Action_ACTION_VOID, "lead-1", rLead, func(s *workflow.Step) { s.Note = "duplicate" })
			return false
		case r < 0.05:
			return false // still open
		case r < 0.12:
			l.step(pb.Action_ACTION_REQUEST_RETURN, unit, rUnit, func(s *workflow.Step) { s.Note = "not ours" })
			if g.chance(0.6) {
				l.step(pb.Action_ACTION_APPROVE_RETURN, "disp-1", rDisp, nil)
			} else {
				l.step(pb.Action_ACTION_DENY_RETURN, "disp-1", rDisp, nil)
			}
		case r < 0.22:
			l.step(pb.Action_ACTION_REQUEST_EXTENSION, unit, rUnit, func(s *workflow.Step) {
				s.ExtensionMinutes = 60 * int64(2+g.rnd.IntN(96))
			})
			if g.chance(0.7) {
				l.step(pb.Action_ACTION_APPROVE_EXTENSION, "disp-1", rDisp, nil)
			} else {
				l.step(pb.Action_ACTION_DENY_EXTENSION, "disp-1", rDisp, nil)
			}
		case r < 0.26:
			l.step(pb.Action_ACTION_REQUEST_SUSPEND, unit, rUnit, func(s *workflow.Step) { s.Note = "season-bound works" })
			l.step(pb.Action_ACTION_APPROVE_SUSPEND, "lead-1", rLead, nil)
			if g.chance(0.3) {
				return false // stays suspended
			}
			l.now += g.minutes(60, 5*24*60)
			l.step(pb.Action_ACTION_RESUME, "lead-1", rLead, nil)
		case r < 0.28:
			l.step(pb.Action_ACTION_TRANSFER_UP, "lead-1", rLead, func(s *workflow.Step) { s.Note = "city trunk road" })
		case r < 0.31:
			l.step(pb.Action_ACTION_SUPERVISE, "super-1", rSuper, func(s *workflow.Step) { s.Note = "important: leader attention" })
		case r < 0.42:
			l.now += g.minutes(0, 3*24*60)
			if d := c.GetDeadline(); d != nil && d.AsTime().UnixMilli() < l.now {
				l.markOverdue()
			}
		default:
			if c.State == pb.State_STATE_DISPATCHED {
				l.step(pb.Action_ACTION_ACCEPT, unit, rUnit, nil)
			} else {
				l.now += g.minutes(0, 24*60)
				l.step(pb.Action_ACTION_HANDLE, unit, rUnit, func(s *workflow.Step) { s.Note = "done" })
			}
		}
	case pb.State_STATE_HANDLED:
		checker := l.inspector
		if g.chance(0.4) {
			checker = g.pick(g.inspectors)
		}
		if g.chance(0.22) {
			l.step(pb.Action_ACTION_CHECK_FAIL, checker, rInsp, func(s *workflow.Step) {
				if g.chance(0.5) {
					s.DeadlineUnixMs = s.AtUnixMs + g.minutes(4*60, 2*24*60)
				}
			})
			return true
		}
		l.step(pb.Action_ACTION_CHECK_PASS, checker, rInsp, nil)
	case pb.State_STATE_CHECKED:
		if g.chance(0.05) {
			return false
		}
		l.step(pb.Action_ACTION_CLOSE, "lead-1", rLead, nil)
		return false
	default:
		return false
	}
	return true
}
