package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// The command centre's numbers (family D/, the 大屏: DashboardService).
// Every record is a function of the stored cases, kept by PutCase and
// DeleteCase in the same transaction as the case, so an area's summary is
// a few short scans whatever the number of cases:
//
//	D/c/<LL>/<area>/<sfx>            int64 BE: cases of an area (grid code prefix of length LL:
//	                                 06 district, 15 grid) by state (sfx = state:2), open and
//	                                 overdue ("OV"), open and in joint review ("RV")
//	D/c/UU/<unit>\x00<sfx>           int64 BE: the same for the cases owned by a unit
//	D/f/<hour>/<LL>/<area>/<kind>    int64 BE: history steps of a kind (r report, f file,
//	                                 d dispatch, h handle, c close) stamped in that UTC hour
//	                                 (YYYYMMDDHH), by area (the same levels)
//	D/o/<area>/<due ms:8 BE><id>     "": open overdue cases by stage deadline, per area level
//	                                 (4 city, 6, 9 street, 12 community, 15)
//	D/p/<unit>\x00<due ms:8 BE><id>  "": the same per owning unit
//
// The family is in memory with the case indexes (memindex.go, since
// 2026-12-05), summed from the cases when the store opens; badger holds
// none of it. Releases that kept it in badger also kept a mark there (D/n,
// D/m before 2026-12-04, when streets and communities had counters of
// their own): all of it is dropped at Open, and such a release rebuilds
// the family from the cases of a store or a snapshot without the mark.
//
// Counters at zero are deleted. Counters are kept for districts and grids
// only (storedLevels): a street's or a community's numbers are the sum of
// its grids' (tens to a few hundred keys a read), and a city's the sum of
// its districts' (tens), which spares every case write the counters and
// flow of three levels: they were a third of the keys an action wrote. A
// day in the node's time zone is the sum of its UTC hours (the reader's
// business), so Apply needs no time zone.
const (
	pfxDash      = "D/"
	pfxDashCount = "D/c/"
	pfxDashFlow  = "D/f/"
	pfxDashOver  = "D/o/"
	pfxDashUnitO = "D/p/"
	dashUnitLvl  = "UU"
	sfxOverdue   = "OV"
	sfxReview    = "RV"
)

// AreaLevels are the lengths of grid code prefixes the dashboard answers
// for: city, district, street, community, grid. Overdue lists are kept
// from the district down (countedLevels), counters and flow for the
// district and the grid (storedLevels); the reader sums the rest.
var AreaLevels = []int{4, 6, 9, 12, 15}

var (
	countedLevels = AreaLevels[1:]
	storedLevels  = []int{6, gridLevel}
)

// gridLevel is a grid code's length: the finest level.
const gridLevel = 15

// stored reports whether areas of length l have counters of their own.
func stored(l int) bool { return slices.Contains(storedLevels, l) }

// levelNames are the LL of the keys, by length.
var levelNames = map[int]string{4: "04", 6: "06", 9: "09", 12: "12", 15: "15"}

// FlowKind is one kind of step of the day's flow.
type FlowKind int

// The flow kinds, in DayFlow order.
const (
	FlowReported FlowKind = iota
	FlowFiled
	FlowDispatched
	FlowHandled
	FlowClosed
	numFlow
)

const flowLetters = "rfdhc"

// flowOf is the flow kind of a history step; false for a step the flow
// does not count.
func flowOf(a pb.Action) (FlowKind, bool) {
	switch a {
	case pb.Action_ACTION_REPORT:
		return FlowReported, true
	case pb.Action_ACTION_FILE:
		return FlowFiled, true
	case pb.Action_ACTION_DISPATCH, pb.Action_ACTION_REASSIGN, pb.Action_ACTION_DECIDE_OWNER:
		return FlowDispatched, true
	case pb.Action_ACTION_HANDLE:
		return FlowHandled, true
	case pb.Action_ACTION_CLOSE, pb.Action_ACTION_SELF_HANDLE:
		return FlowClosed, true
	}
	return 0, false
}

// FlowHour is the key of the UTC hour t lies in.
func FlowHour(t time.Time) string { return t.UTC().Format("2006010215") }

func lvl(n int) string {
	if s, ok := levelNames[n]; ok {
		return s
	}
	return fmt.Sprintf("%02d", n)
}

// stateSfx are the two-digit suffixes of the states.
var stateSfx = func() map[pb.State]string {
	m := map[pb.State]string{}
	for n := range pb.State_name {
		m[pb.State(n)] = fmt.Sprintf("%02d", n)
	}
	return m
}()

func stateSuffix(st pb.State) string {
	if s, ok := stateSfx[st]; ok {
		return s
	}
	return string(appendPad2(nil, int32(st)))
}
func dashCountKey(l int, area, sfx string) string {
	return pfxDashCount + lvl(l) + "/" + area + "/" + sfx
}

func dashUnitCountKey(unit, sfx string) string {
	return pfxDashCount + dashUnitLvl + "/" + unit + unitSep + sfx
}

func dashFlowKey(hour string, l int, area string, k FlowKind) string {
	return pfxDashFlow + hour + "/" + lvl(l) + "/" + area + "/" + flowLetters[k:k+1]
}

func appendDue(b []byte, ms int64, id string) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(ms))
	return append(b, id...)
}

// dashRecords are what one case adds to the D/ family: counter keys (each
// +1; a key may repeat) and index keys.
type dashRecords struct {
	counters []string
	index    []string
}

// dashShape is what of a case its counters depend on, besides its flow.
type dashShape struct {
	grid, unit      string
	state           pb.State
	overdue, review bool
}

// dashStep is one step of a case's flow: an hour (Unix hours) and a kind.
type dashStep struct {
	grid string
	hour int64
	kind FlowKind
}

func shapeOf(c *pb.Case) dashShape {
	open := isOpen(c.State)
	return dashShape{grid: c.GridCode, unit: c.OwnerUnit, state: c.State,
		overdue: open && c.Overdue, review: open && c.GetOwnership().GetInReview()}
}

// levelsOf is how many of levels a grid code reaches.
func levelsOf(levels []int, grid string) int {
	n := 0
	for _, l := range levels {
		if len(grid) >= l {
			n++
		}
	}
	return n
}

// counters emits the counter keys of a case of this shape (+1 each).
func (sh dashShape) counters(emit func(string)) {
	st := stateSuffix(sh.state)
	for _, l := range storedLevels[:levelsOf(storedLevels, sh.grid)] {
		a := sh.grid[:l]
		emit(dashCountKey(l, a, st))
		if sh.overdue {
			emit(dashCountKey(l, a, sfxOverdue))
		}
		if sh.review {
			emit(dashCountKey(l, a, sfxReview))
		}
	}
	if u := sh.unit; u != "" {
		emit(dashUnitCountKey(u, st))
		if sh.overdue {
			emit(dashUnitCountKey(u, sfxOverdue))
		}
		if sh.review {
			emit(dashUnitCountKey(u, sfxReview))
		}
	}
}

// counters emits the flow counter keys of one step (+1 each).
func (st dashStep) counters(emit func(string)) {
	hour := FlowHour(time.Unix(st.hour*3600, 0))
	for _, l := range storedLevels[:levelsOf(storedLevels, st.grid)] {
		emit(dashFlowKey(hour, l, st.grid[:l], st.kind))
	}
}

// stepsOf calls fn for each counted step of c's history from index from:
// the steps of a flow action in an hour at or after floor (flowfloor.go).
func stepsOf(c *pb.Case, from int, floor int64, fn func(dashStep)) {
	for _, h := range c.History[from:] {
		k, ok := flowOf(h.Action)
		if !ok || h.At == nil {
			continue
		}
		hour := unixHour(h.At.Seconds * 1000)
		if hour < floor {
			continue
		}
		fn(dashStep{grid: c.GridCode, hour: hour, kind: k})
	}
}

// dashIndex lists c's overdue list entries (none unless open and overdue).
func dashIndex(c *pb.Case, sh dashShape) []string {
	if !sh.overdue {
		return nil
	}
	var dueMs int64
	if d := dueTime(c); d != nil {
		dueMs = d.AsTime().UnixMilli()
	}
	var out []string
	if len(sh.grid) >= AreaLevels[0] {
		out = append(out, string(appendDue([]byte(pfxDashOver+sh.grid[:AreaLevels[0]]+"/"), dueMs, c.Id)))
	}
	for _, l := range countedLevels[:levelsOf(countedLevels, sh.grid)] {
		out = append(out, string(appendDue([]byte(pfxDashOver+sh.grid[:l]+"/"), dueMs, c.Id)))
	}
	if sh.unit != "" {
		out = append(out, string(appendDue([]byte(pfxDashUnitO+sh.unit+unitSep), dueMs, c.Id)))
	}
	return out
}

// dashOf lists the D/ records of c: the flow of its history steps from
// index from on (those at or after floor), and unless flowOnly its counts
// and overdue entries.
func dashOf(c *pb.Case, flowOnly bool, from int, floor int64) dashRecords {
	var r dashRecords
	if c == nil {
		return r
	}
	emit := func(k string) { r.counters = append(r.counters, k) }
	stepsOf(c, from, floor, func(st dashStep) { st.counters(emit) })
	if flowOnly {
		return r
	}
	sh := shapeOf(c)
	sh.counters(emit)
	r.index = dashIndex(c, sh)
	return r
}

// sameSteps reports whether c's history begins with old's steps (the
// usual new version: steps appended), so only the new steps move the flow.
func sameSteps(old, c *pb.Case) bool {
	if old.GridCode != c.GridCode || len(c.History) < len(old.History) {
		return false
	}
	for i, h := range old.History {
		n := c.History[i]
		if h.Action != n.Action || h.At.GetSeconds() != n.At.GetSeconds() || h.At.GetNanos() != n.At.GetNanos() {
			return false
		}
	}
	return true
}

// putDash moves c's D/ records from old's (either may be nil).
func (tx *Tx) putDash(old, c *pb.Case) error {
	if tx.dash == nil {
		tx.dash = map[string]int64{}
	}
	tx.flowChanged()
	if old == nil {
		// A new case: every record is new.
		r := dashOf(c, false, 0, tx.flow.floor)
		for _, k := range r.counters {
			tx.dash[k]++
		}
		for _, k := range r.index {
			if err := tx.set([]byte(k), nil); err != nil {
				return err
			}
		}
		return nil
	}
	var was, is dashRecords
	if c != nil && sameSteps(old, c) {
		// Steps were appended: the old ones' flow stays as it is.
		f := tx.flow.floor
		was, is = dashOf(old, false, len(old.History), f), dashOf(c, false, len(c.History), f)
		is.counters = append(is.counters, dashOf(c, true, len(old.History), f).counters...)
	} else {
		was, is = dashOf(old, false, 0, tx.flow.floor), dashOf(c, false, 0, tx.flow.floor)
	}
	for _, k := range was.counters {
		tx.dash[k]--
	}
	for _, k := range is.counters {
		tx.dash[k]++
	}
	for _, k := range was.index {
		if !slices.Contains(is.index, k) {
			if err := tx.del([]byte(k)); err != nil {
				return err
			}
		}
	}
	for _, k := range is.index {
		if !slices.Contains(was.index, k) {
			if err := tx.set([]byte(k), nil); err != nil {
				return err
			}
		}
	}
	return nil
}

// AreaTally is the numbers of one area (or unit) from the D/ counters.
type AreaTally struct {
	Code     string
	States   map[pb.State]int64
	Overdue  int64
	InReview int64
	Flow     [numFlow]int64 // of the hours asked for
}

func (a *AreaTally) add(b *AreaTally) {
	for st, n := range b.States {
		a.States[st] += n
	}
	a.Overdue += b.Overdue
	a.InReview += b.InReview
	for i := range a.Flow {
		a.Flow[i] += b.Flow[i]
	}
}

// Open counts the cases not in a terminal state.
func (a *AreaTally) Open() int64 {
	var n int64
	for st, c := range a.States {
		if isOpen(st) {
			n += c
		}
	}
	return n
}

// Total counts every case.
func (a *AreaTally) Total() int64 {
	var n int64
	for _, c := range a.States {
		n += c
	}
	return n
}

// DashboardQuery asks for one area's numbers, or one unit's (Unit set).
type DashboardQuery struct {
	// Area is a grid code prefix of one of AreaLevels' lengths.
	Area string
	// Unit, when set, asks for the cases owned by this unit instead
	// (no children, no flow).
	Unit string
	// Hours are the UTC hours (FlowHour) whose flow to sum: the day.
	Hours []string
	// OverdueLimit is how many overdue cases to return, most overdue first.
	OverdueLimit int
}

// DashboardResult is an area's numbers in one consistent read view.
type DashboardResult struct {
	Area     AreaTally
	Children []AreaTally // the next level down, by code (areas with cases only)
	Overdue  []*pb.Case  // most overdue first (earliest stage deadline)
	Revision uint64      // the change feed's head in the same view
}

// ErrBadArea is returned for an area code that is not a grid code prefix
// of a counted length.
var ErrBadArea = errors.New("not an area code (grid code prefix of 4, 6, 9, 12 or 15 digits)")

// Dashboard reads an area's numbers: its counters, its children's, the
// day's flow and the top of its overdue list, reading keys in proportion
// to the children, the hours and the limit, never to the cases.
func (s *Store) Dashboard(q DashboardQuery) (DashboardResult, error) {
	var res DashboardResult
	child := 0
	if q.Unit == "" {
		i := slices.Index(AreaLevels, len(q.Area))
		if i < 0 || strings.Trim(q.Area, "0123456789") != "" {
			return res, fmt.Errorf("area %q: %w", q.Area, ErrBadArea)
		}
		if i+1 < len(AreaLevels) {
			child = AreaLevels[i+1]
		}
	} else if strings.Contains(q.Unit, unitSep) {
		return res, fmt.Errorf("unit %q: %w", q.Unit, ErrBadArea)
	}
	err := s.viewDash(func(tx *Tx) error {
		head, _, err := readFeedMeta(tx.txn)
		if err != nil {
			return err
		}
		res.Revision = head
		if q.Unit != "" {
			res.Area = AreaTally{Code: q.Unit, States: map[pb.State]int64{}}
			if err := tx.scanTally(pfxDashCount+dashUnitLvl+"/"+q.Unit+unitSep, false, func(string) *AreaTally { return &res.Area }); err != nil {
				return err
			}
			res.Overdue, err = tx.overdueTop(pfxDashUnitO+q.Unit+unitSep, q.OverdueLimit)
			return err
		}
		res.Area = AreaTally{Code: q.Area, States: map[pb.State]int64{}}
		l := len(q.Area)
		city := l == AreaLevels[0] // no counters of its own: the sum of its children
		own := func(string) *AreaTally { return &res.Area }
		switch {
		case city:
		case stored(l):
			if err := tx.scanTally(pfxDashCount+lvl(l)+"/"+q.Area+"/", false, own); err != nil {
				return err
			}
		default: // a street or a community: the sum of its grids
			if err := tx.scanTally(pfxDashCount+lvl(gridLevel)+"/"+q.Area, false, own); err != nil {
				return err
			}
		}
		byCode := map[string]*AreaTally{}
		childOf := func(code string) *AreaTally {
			t := byCode[code]
			if t == nil {
				t = &AreaTally{Code: code, States: map[pb.State]int64{}}
				byCode[code] = t
			}
			return t
		}
		// Children without counters of their own (streets, communities)
		// are summed from their grids'.
		childLvl, childOfKey := child, childOf
		if child > 0 && !stored(child) {
			childLvl, childOfKey = gridLevel, func(grid string) *AreaTally { return childOf(grid[:min(child, len(grid))]) }
		}
		if child > 0 {
			if err := tx.scanTally(pfxDashCount+lvl(childLvl)+"/"+q.Area, true, childOfKey); err != nil {
				return err
			}
		}
		for _, h := range q.Hours {
			switch {
			case city:
			case stored(l):
				if err := tx.scanFlow(pfxDashFlow+h+"/"+lvl(l)+"/"+q.Area+"/", own); err != nil {
					return err
				}
			default:
				if err := tx.scanFlow(pfxDashFlow+h+"/"+lvl(gridLevel)+"/"+q.Area, own); err != nil {
					return err
				}
			}
			if child > 0 {
				if err := tx.scanFlow(pfxDashFlow+h+"/"+lvl(childLvl)+"/"+q.Area, childOfKey); err != nil {
					return err
				}
			}
		}
		for _, t := range byCode {
			res.Children = append(res.Children, *t)
			if city {
				res.Area.add(t)
			}
		}
		slices.SortFunc(res.Children, func(a, b AreaTally) int { return strings.Compare(a.Code, b.Code) })
		res.Overdue, err = tx.overdueTop(pfxDashOver+q.Area+"/", q.OverdueLimit)
		return err
	})
	return res, err
}

// scanTally adds the counters under prefix to the tally area(code) names;
// with sub, the code is the rest of the key up to its last separator (the
// child's code), else it is not used.
func (tx *Tx) scanTally(prefix string, sub bool, area func(code string) *AreaTally) error {
	it := tx.iterator(badger.IteratorOptions{Prefix: []byte(prefix)})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		item := it.Item()
		k := string(item.Key())
		cut := strings.LastIndexAny(k, "/"+unitSep)
		if cut < len(prefix)-1 {
			continue
		}
		code, sfx := "", k[cut+1:]
		if sub {
			code = k[len(pfxDashCount)+3 : cut]
		}
		v, err := counterValue(item)
		if err != nil {
			return err
		}
		t := area(code)
		switch sfx {
		case sfxOverdue:
			t.Overdue += v
		case sfxReview:
			t.InReview += v
		default:
			st, err := strconv.Atoi(sfx)
			if err != nil {
				return fmt.Errorf("dashboard counter %q: %w", k, ErrDamaged)
			}
			t.States[pb.State(st)] += v
		}
	}
	return nil
}

// scanFlow adds the flow counters under prefix to area(code).
func (tx *Tx) scanFlow(prefix string, area func(code string) *AreaTally) error {
	it := tx.iterator(badger.IteratorOptions{Prefix: []byte(prefix)})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		item := it.Item()
		k := string(item.Key())
		// D/f/<hour:10>/<LL>/<area>/<kind>
		rest := k[len(pfxDashFlow)+10+4:]
		code, kind, ok := strings.Cut(rest, "/")
		if !ok || len(kind) != 1 || strings.IndexByte(flowLetters, kind[0]) < 0 {
			return fmt.Errorf("dashboard flow counter %q: %w", k, ErrDamaged)
		}
		v, err := counterValue(item)
		if err != nil {
			return err
		}
		area(code).Flow[strings.IndexByte(flowLetters, kind[0])] += v
	}
	return nil
}

func counterValue(item kvItem) (int64, error) {
	var v int64
	err := item.Value(func(b []byte) error {
		if len(b) != 8 {
			return fmt.Errorf("counter %q has %d bytes: %w", item.Key(), len(b), ErrDamaged)
		}
		v = int64(binary.BigEndian.Uint64(b))
		return nil
	})
	return v, err
}

// overdueTop reads the first limit cases of an overdue index prefix.
func (tx *Tx) overdueTop(prefix string, limit int) ([]*pb.Case, error) {
	if limit <= 0 {
		return nil, nil
	}
	it := tx.iterator(badger.IteratorOptions{Prefix: []byte(prefix)})
	defer it.Close()
	var out []*pb.Case
	for it.Rewind(); it.Valid() && len(out) < limit; it.Next() {
		k := it.Item().Key()
		if len(k) < len(prefix)+8 {
			return nil, fmt.Errorf("dashboard overdue entry %q: %w", k, ErrDamaged)
		}
		id := string(k[len(prefix)+8:])
		c, err := tx.GetCase(id)
		if err != nil {
			return nil, fmt.Errorf("overdue case %s: %w", id, err)
		}
		out = append(out, c)
	}
	return out, nil
}
