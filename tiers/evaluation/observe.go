package evaluation

import (
	"slices"
	"strings"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// Counters is where Observe adds its deltas; *store.Tx implements it.
type Counters interface {
	AddCounter(key []byte, delta int64) error
}

// OverdueNotePrefix starts the note of the supervision entry the state
// machine records when a stage deadline passes (ACTION_SUPERVISE by
// ROLE_SYSTEM); those entries are the overdue indicator.
const OverdueNotePrefix = "overdue:"

// Observe updates the counters for one write of case c: old is the case as
// it was stored before (nil for a new case), c as it is written now (an
// action, or a newer copy from another node, which may bring several
// history entries at once). offsetS is the local UTC offset periods are
// cut in (Command.local_offset_s). It is deterministic: the same old, c and
// offset always add the same deltas, in key order.
//
// Event indicators (dispatched, rework, overdue, extensions) are added
// once per history entry with a version above old's, in the period of the
// entry. State indicators (filed, due, closed, closed on time, handled on
// time, recurrence) are a function of the case as it stands: Observe
// subtracts old's and adds c's where they differ, so a moved deadline moves
// "due" to its new period and a case returned or voided leaves it. Either
// way the counters equal what Recount finds from the final cases, however
// the versions arrived.
func Observe(w Counters, old, c *pb.Case, offsetS int32) error {
	a := accumulator{offsetS: offsetS, m: map[string]int64{}}
	of, nf := stateFacts(old), stateFacts(c)
	for _, ind := range stateIndicators {
		if of[ind] == nf[ind] {
			continue
		}
		a.addFact(ind, of[ind], -1)
		a.addFact(ind, nf[ind], +1)
	}
	if c != nil {
		grid, prio := c.GetGridCode(), isPriority(c)
		var cw caseWalk
		oldVersion := old.GetVersion()
		for _, e := range c.GetHistory() {
			cw.step(c, e)
			if e.GetVersion() <= oldVersion {
				continue
			}
			if ind, extra, ok := eventOf(e, cw.inspector); ok {
				a.add(ind, entryMs(e), cw.owner, cw.inspector, extra, grid, prio, +1)
			}
		}
	}
	return a.flush(w)
}

// stateIndicators are the indicators Observe keeps as a function of the
// case's current state.
var stateIndicators = []byte{indFiled, indRecurrence, indDue, indClosed, indClosedOnTime, indHandledOnTime}

// caseWalk follows a case through its history: who owns it, who its
// inspector is and when the stages that state indicators use happened.
type caseWalk struct {
	owner     string // unit of the last dispatch, cleared by an approved return or a transfer up
	inspector string // the case's inspector (see doc.go)

	reportMs, fileMs, handleMs, closeMs    int64
	reported, filed, handled, closedByStep bool
}

func (w *caseWalk) step(c *pb.Case, e *pb.HistoryEntry) {
	ms := entryMs(e)
	switch e.GetAction() {
	case pb.Action_ACTION_REPORT:
		if !w.reported {
			w.reported, w.reportMs = true, ms
		}
		if w.inspector == "" && c.GetSource() == pb.Source_SOURCE_INSPECTOR {
			w.inspector = e.GetActor()
		}
	case pb.Action_ACTION_VERIFY:
		if w.inspector == "" && e.GetRole() == pb.Role_ROLE_INSPECTOR {
			w.inspector = e.GetActor()
		}
	case pb.Action_ACTION_FILE:
		if !w.filed {
			w.filed, w.fileMs = true, ms
		}
	case pb.Action_ACTION_SELF_HANDLE:
		if !w.filed {
			w.filed, w.fileMs = true, ms
		}
		if w.inspector == "" && e.GetRole() == pb.Role_ROLE_INSPECTOR {
			w.inspector = e.GetActor()
		}
	case pb.Action_ACTION_DISPATCH:
		w.owner = e.GetUnit()
	case pb.Action_ACTION_APPROVE_RETURN, pb.Action_ACTION_TRANSFER_UP:
		w.owner = ""
	case pb.Action_ACTION_HANDLE:
		w.handled, w.handleMs = true, ms
	case pb.Action_ACTION_CLOSE:
		w.closedByStep, w.closeMs = true, ms
	}
}

// eventOf returns the event indicator of history entry e, if it has one,
// and a second inspector to credit besides the case's (the checking
// inspector of a rework).
func eventOf(e *pb.HistoryEntry, caseInspector string) (ind byte, extra string, ok bool) {
	switch e.GetAction() {
	case pb.Action_ACTION_DISPATCH:
		return indDispatched, "", true
	case pb.Action_ACTION_CHECK_FAIL:
		if e.GetRole() == pb.Role_ROLE_INSPECTOR && e.GetActor() != caseInspector {
			extra = e.GetActor()
		}
		return indRework, extra, true
	case pb.Action_ACTION_APPROVE_EXTENSION:
		return indExtensions, "", true
	case pb.Action_ACTION_SUPERVISE:
		if e.GetRole() == pb.Role_ROLE_SYSTEM && strings.HasPrefix(e.GetNote(), OverdueNotePrefix) {
			return indOverdue, "", true
		}
	}
	return 0, "", false
}

func entryMs(e *pb.HistoryEntry) int64 { return e.GetAt().AsTime().UnixMilli() }

func isPriority(c *pb.Case) bool {
	s := c.GetSource()
	return s == pb.Source_SOURCE_LEADER || s == pb.Source_SOURCE_MEDIA
}

// fact places one state indicator of a case: when (its period is taken
// from ms) and under which unit, inspector and grid. The zero fact counts
// nowhere.
type fact struct {
	ok         bool
	ms         int64
	unit, insp string
	grid       string
	prio       bool
}

// stateFacts computes the state indicators of c (nil: none), indexed by
// indicator.
func stateFacts(c *pb.Case) (f [numIndicators + 1]fact) {
	if c == nil {
		return f
	}
	var w caseWalk
	for _, e := range c.GetHistory() {
		w.step(c, e)
	}
	st := c.GetState()
	if st == pb.State_STATE_VOIDED {
		return f
	}
	base := fact{ok: true, unit: w.owner, insp: w.inspector, grid: c.GetGridCode(), prio: isPriority(c)}
	if w.filed {
		f[indFiled] = base
		f[indFiled].ms = w.fileMs
	}
	if c.GetRecurrenceOf() != "" && w.reported {
		f[indRecurrence] = base
		f[indRecurrence].ms, f[indRecurrence].unit = w.reportMs, ""
	}
	if c.GetDeadline() == nil || w.owner == "" || st == pb.State_STATE_SUSPENDED {
		return f
	}
	dl := c.GetDeadline().AsTime().UnixMilli()
	due := base
	due.ms = dl
	f[indDue] = due
	if st == pb.State_STATE_CLOSED && w.closedByStep {
		f[indClosed] = due
		if w.closeMs <= dl {
			f[indClosedOnTime] = due
		}
	}
	if (st == pb.State_STATE_HANDLED || st == pb.State_STATE_CHECKED || st == pb.State_STATE_CLOSED) && w.handled && w.handleMs <= dl {
		f[indHandledOnTime] = due
	}
	return f
}

// accumulator gathers the deltas of one Observe call by key, so what
// cancels out is never written.
type accumulator struct {
	offsetS int32
	m       map[string]int64
	buf     []byte
}

func (a *accumulator) addFact(ind byte, f fact, delta int64) {
	if f.ok {
		a.add(ind, f.ms, f.unit, f.insp, "", f.grid, f.prio, delta)
	}
}

// add counts delta for indicator ind at time ms in every period kind and
// every dimension value it belongs to.
func (a *accumulator) add(ind byte, ms int64, unit, insp, insp2, grid string, prio bool, delta int64) {
	t := localTime(ms, a.offsetS)
	for _, code := range periodCodes {
		p := periodOf(code, t)
		if unit != "" {
			a.put(dimPrefix(a.buf[:0], p, dimUnit, 0), unit, ind, prio, delta)
		}
		for _, d := range regionDigits {
			if len(grid) >= d {
				a.put(dimPrefix(a.buf[:0], p, dimRegion, d), grid[:d], ind, prio, delta)
			}
		}
		if insp != "" {
			a.put(dimPrefix(a.buf[:0], p, dimInspector, 0), insp, ind, prio, delta)
		}
		if insp2 != "" {
			a.put(dimPrefix(a.buf[:0], p, dimInspector, 0), insp2, ind, prio, delta)
		}
	}
}

func (a *accumulator) put(k []byte, value string, ind byte, prio bool, delta int64) {
	k = append(k, value...)
	k = append(k, 0, ind)
	a.m[string(k)] += delta
	if prio {
		k[len(k)-1] = ind | priorityBit
		a.m[string(k)] += delta
	}
	a.buf = k
}

// flush writes the non-zero deltas in key order.
func (a *accumulator) flush(w Counters) error {
	keys := make([]string, 0, len(a.m))
	for k, d := range a.m {
		if d != 0 {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		if err := w.AddCounter([]byte(k), a.m[k]); err != nil {
			return err
		}
	}
	return nil
}
