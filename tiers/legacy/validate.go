package legacy

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/catalogue"
)

// Limits on a row's fields.
const (
	MaxLegacyID    = 64   // characters
	MaxDescription = 4000 // characters, as a report's
	MaxAddress     = 256
	maxWord        = 64 // bytes of a source, kind, status or time
)

// China's bounds: a location outside them is a mistake in the export.
const (
	minLat, maxLat = 18.0, 54.0
	minLng, maxLng = 73.0, 135.0
)

// DefaultActor is recorded as the author of an imported case's history
// entry when the request names nobody.
const DefaultActor = "legacy-import"

// unitRe is the API's unit id format.
var unitRe = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// earliest is the first reported_at accepted: older dates are typos.
var earliest = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// localLayouts are the local-time formats old systems write, read in the
// node's time zone; the last two are Excel's on Chinese Windows
// (2019/3/4 9:30), which also read 2019/03/04 09:30.
var localLayouts = []string{"2006-01-02 15:04:05", "2006-01-02 15:04", "2006/01/02 15:04:05", "2006/1/2 15:04:05", "2006/1/2 15:04"}

type names[E any] struct {
	value E
	names []string
}

// statuses maps the statuses of old systems (English or Chinese) to states.
var statuses = []names[pb.State]{
	{pb.State_STATE_REPORTED, []string{"reported", "上报", "待核实"}},
	{pb.State_STATE_VERIFIED, []string{"verified", "已核实"}},
	{pb.State_STATE_FILED, []string{"filed", "已立案", "待派遣"}},
	{pb.State_STATE_DISPATCHED, []string{"dispatched", "已派遣", "待签收"}},
	{pb.State_STATE_ACCEPTED, []string{"accepted", "已签收", "处置中"}},
	{pb.State_STATE_HANDLED, []string{"handled", "已处置", "待核查"}},
	{pb.State_STATE_CLOSED, []string{"closed", "已结案"}},
	{pb.State_STATE_VOIDED, []string{"voided", "已作废"}},
	{pb.State_STATE_NOT_FILED, []string{"not_filed", "不予立案"}},
	{pb.State_STATE_SUSPENDED, []string{"suspended", "挂账"}},
}

var sources = []names[pb.Source]{
	{pb.Source_SOURCE_INSPECTOR, []string{"inspector", "监督员", "信息采集员"}},
	{pb.Source_SOURCE_HOTLINE_12345, []string{"12345", "12345热线"}},
	{pb.Source_SOURCE_HOTLINE_12319, []string{"12319", "12319热线"}},
	{pb.Source_SOURCE_APP, []string{"app", "市民通"}},
	{pb.Source_SOURCE_CAMERA, []string{"camera", "视频"}},
	{pb.Source_SOURCE_LEADER, []string{"leader", "领导交办"}},
	{pb.Source_SOURCE_MEDIA, []string{"media", "媒体"}},
}

var kinds = []names[pb.Kind]{
	{pb.Kind_KIND_COMPONENT, []string{"component", "部件"}},
	{pb.Kind_KIND_EVENT, []string{"event", "事件"}},
}

// lookup finds s in a table: a listed name (case and surrounding space do
// not matter, '-' and ' ' stand for '_'), or the enum's own name with or
// without its prefix (STATE_FILED, filed).
func lookup[E interface {
	~int32
	String() string
}](table []names[E], prefix, s string) (E, bool) {
	key := strings.ToLower(strings.TrimSpace(s))
	key = strings.NewReplacer("-", "_", " ", "_").Replace(key)
	for _, e := range table {
		for _, n := range e.names {
			if key == n {
				return e.value, true
			}
		}
		if full := strings.ToLower(e.value.String()); key != "" && (key == full || prefix+key == full) {
			return e.value, true
		}
	}
	var zero E
	return zero, false
}

func accepted[E any](table []names[E]) string {
	parts := make([]string, len(table))
	for i, e := range table {
		parts[i] = strings.Join(e.names, "/")
	}
	return strings.Join(parts, ", ")
}

// State maps a legacy status to a case state.
func State(status string) (pb.State, bool) { return lookup(statuses, "state_", status) }

// Source maps a legacy source to a case source.
func Source(s string) (pb.Source, bool) { return lookup(sources, "source_", s) }

// Kind maps a legacy kind to a case kind.
func Kind(s string) (pb.Kind, bool) { return lookup(kinds, "kind_", s) }

// Validator checks rows and builds the cases they describe. The zero
// Location is UTC; Catalogue is required.
type Validator struct {
	Catalogue  *catalogue.Catalogue
	GridPrefix string         // the node's jurisdiction: grid codes must start with it ("" accepts any)
	Location   *time.Location // the node's time zone: local times are read, and ids dated, in it
	Now        time.Time      // no case may be reported after it
	Actor      string         // the importer, recorded in each history entry (DefaultActor when empty)
	RequestID  string         // the write, recorded in each history entry
}

// Validate checks every row, in order: a row whose legacy id an earlier
// row carries is a duplicate (named legacy_id); the others are checked
// field by field. It returns the cases of the good rows with those rows
// (the same length, in order), and one RowError per bad row.
func (v *Validator) Validate(rows []*pb.LegacyRow) (cases []*pb.ImportedCase, good []*pb.LegacyRow, rejected []*pb.RowError) {
	first := map[string]int32{}
	for _, r := range rows {
		if e := duplicate(first, r); e != nil {
			rejected = append(rejected, e)
			continue
		}
		c, e := v.Row(r)
		if e != nil {
			rejected = append(rejected, e)
			continue
		}
		cases = append(cases, c)
		good = append(good, r)
	}
	return cases, good, rejected
}

// Duplicates splits rows into those whose legacy id no earlier row carries
// and the later rows that repeat one (named legacy_id). Rows without a
// legacy id are kept (validation refuses them).
func Duplicates(rows []*pb.LegacyRow) (kept []*pb.LegacyRow, dups []Bad) {
	first := map[string]int32{}
	for _, r := range rows {
		if e := duplicate(first, r); e != nil {
			dups = append(dups, Bad{Err: e, Row: r})
			continue
		}
		kept = append(kept, r)
	}
	return kept, dups
}

func duplicate(first map[string]int32, r *pb.LegacyRow) *pb.RowError {
	id := strings.TrimSpace(r.GetLegacyId())
	if id == "" {
		return nil
	}
	if line, ok := first[id]; ok {
		return &pb.RowError{Line: r.GetLine(), LegacyId: r.GetLegacyId(), Field: "legacy_id",
			Reason: fmt.Sprintf("duplicate: legacy id %q is also on line %d, which is the one imported", id, line)}
	}
	first[id] = r.GetLine()
	return nil
}

// fieldError is one failed check of a row.
type fieldError struct{ field, reason string }

func (e *fieldError) Error() string { return e.field + ": " + e.reason }

func bad(field, format string, args ...any) error {
	return &fieldError{field: field, reason: fmt.Sprintf(format, args...)}
}

// Row checks one row and builds its case; a bad row gives a RowError
// naming the first field at fault (in column order).
func (v *Validator) Row(r *pb.LegacyRow) (*pb.ImportedCase, *pb.RowError) {
	ic, err := v.build(r)
	if err != nil {
		var fe *fieldError
		if !errors.As(err, &fe) {
			fe = &fieldError{field: FieldRow, reason: err.Error()}
		}
		return nil, &pb.RowError{Line: r.GetLine(), LegacyId: r.GetLegacyId(), Field: fe.field, Reason: fe.reason}
	}
	return ic, nil
}

func (v *Validator) build(r *pb.LegacyRow) (*pb.ImportedCase, error) {
	if r == nil {
		return nil, bad(FieldRow, "empty row")
	}
	if v.Catalogue == nil {
		return nil, bad(FieldRow, "no class catalogue to check against")
	}
	loc := v.Location
	if loc == nil {
		loc = time.UTC
	}
	for _, c := range Columns {
		if !utf8.ValidString(*column(r, c)) {
			return nil, bad(c, "not valid UTF-8 text")
		}
	}
	f := func(s string) string { return strings.TrimSpace(s) }

	legacyID := f(r.LegacyId)
	switch {
	case legacyID == "":
		return nil, bad("legacy_id", "required: the case's id in the old system (the import's idempotency key)")
	case utf8.RuneCountInString(legacyID) > MaxLegacyID:
		return nil, bad("legacy_id", "%d characters, at most %d allowed", utf8.RuneCountInString(legacyID), MaxLegacyID)
	case strings.IndexFunc(legacyID, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0:
		return nil, bad("legacy_id", "%q holds a character that is not printable", legacyID)
	}

	reported, err := parseTime("reported_at", f(r.ReportedAt), loc, true)
	if err != nil {
		return nil, err
	}
	switch {
	case reported.Before(earliest):
		return nil, bad("reported_at", "%s is before 2000: a typo?", reported.In(loc).Format(time.DateTime))
	case !v.Now.IsZero() && reported.After(v.Now):
		return nil, bad("reported_at", "%s is in the future", reported.In(loc).Format(time.DateTime))
	}

	source, ok := Source(r.Source)
	if !ok {
		return nil, bad("source", "%s is not a source; accepted: %s", quote(r.Source), accepted(sources))
	}
	kind, ok := Kind(r.Kind)
	if !ok {
		return nil, bad("kind", "%s is not a kind; accepted: %s", quote(r.Kind), accepted(kinds))
	}
	major, minor := padCode(f(r.Major)), padCode(f(r.Minor))
	grid, componentID := f(r.GridCode), f(r.ComponentId)
	// The class and the grid first, then whether the component id fits
	// them, so that a row is blamed for its first mistake.
	if err := v.Catalogue.ValidateClass(kind, major, minor, "", grid); err != nil {
		return nil, classError(err)
	}
	if !strings.HasPrefix(grid, v.GridPrefix) {
		return nil, bad("grid_code", "%s lies outside this node's jurisdiction (grid codes %s…)", grid, v.GridPrefix)
	}
	if kind == pb.Kind_KIND_COMPONENT && componentID == "" {
		return nil, bad("component_id", "required for a component (部件): 16 or 17 digits, district + major + minor + serial")
	}
	if err := v.Catalogue.ValidateClass(kind, major, minor, componentID, grid); err != nil {
		return nil, classError(err)
	}

	loc8n, err := location(f(r.Lat), f(r.Lng), f(r.Address))
	if err != nil {
		return nil, err
	}
	desc := f(r.Description)
	switch n := utf8.RuneCountInString(desc); {
	case desc == "":
		return nil, bad("description", "required: what is wrong and where")
	case n > MaxDescription:
		return nil, bad("description", "%d characters, at most %d allowed", n, MaxDescription)
	}

	state, ok := State(r.Status)
	if !ok {
		return nil, bad("status", "%s is not a known status; accepted: %s", quote(r.Status), accepted(statuses))
	}
	unit := f(r.DispatchedUnit)
	switch {
	case unit != "" && !unitRe.MatchString(unit):
		return nil, bad("dispatched_unit", "%s is not a unit id (1 to 64 letters, digits, . _ -)", quote(unit))
	case unit == "" && needsUnit(state):
		return nil, bad("dispatched_unit", "required for a case in %s: the unit it was dispatched to", state)
	}
	var deadline time.Time
	if d := f(r.Deadline); d != "" {
		if deadline, err = parseTime("deadline", d, loc, false); err != nil {
			return nil, err
		}
		if deadline.Before(reported) {
			return nil, bad("deadline", "%s is before reported_at %s", deadline.In(loc).Format(time.DateTime), reported.In(loc).Format(time.DateTime))
		}
	}

	c := &pb.Case{
		Source:      source,
		Kind:        kind,
		MajorCode:   major,
		MinorCode:   minor,
		GridCode:    grid,
		ComponentId: componentID,
		Location:    loc8n,
		Description: desc,
		Urgency:     pb.Urgency_URGENCY_ORDINARY,
		LegacyId:    legacyID,
		State:       state,
		ReportedAt:  timestamppb.New(reported),
		UpdatedAt:   timestamppb.New(reported),
		Version:     1,
	}
	note := fmt.Sprintf("imported from legacy system: legacy_id=%s, status=%s", legacyID, f(r.Status))
	v.settle(c, reported, unit, deadline, &note)
	actor := strings.TrimSpace(v.Actor)
	if actor == "" {
		actor = DefaultActor
	}
	c.History = []*pb.HistoryEntry{{
		Action:    pb.Action_ACTION_REPORT,
		Actor:     actor,
		Role:      pb.Role_ROLE_SYSTEM,
		At:        timestamppb.New(reported),
		Note:      note,
		FromState: pb.State_STATE_UNSPECIFIED,
		ToState:   state,
		Version:   1,
		Unit:      c.OwnerUnit,
		RequestId: v.RequestID,
	}}
	return &pb.ImportedCase{Case: c, IdDate: reported.In(loc).Format("20060102")}, nil
}

// settle fills the stage fields a case in its state has. The old system
// tells only when the case was reported, so every stage time is that time.
// A unit or deadline the state has no place for (a case not yet
// dispatched, a handled one waiting for its check) is kept in the note.
func (v *Validator) settle(c *pb.Case, reported time.Time, unit string, deadline time.Time, note *string) {
	keptUnit, keptDeadline := false, false
	dispatched := func() {
		c.FiledAt, c.DispatchedAt, c.OwnerUnit = timestamppb.New(reported), timestamppb.New(reported), unit
		keptUnit = true
	}
	withDeadline := func() {
		if !deadline.IsZero() {
			c.Deadline = timestamppb.New(deadline)
		}
		keptDeadline = true
	}
	switch c.State {
	case pb.State_STATE_FILED:
		c.FiledAt = timestamppb.New(reported)
	case pb.State_STATE_DISPATCHED, pb.State_STATE_ACCEPTED:
		dispatched()
		withDeadline()
		c.StageDeadline = c.Deadline // the handling deadline, as the sweeper expects
	case pb.State_STATE_SUSPENDED:
		dispatched()
		withDeadline()
		c.SuspendedFrom = pb.State_STATE_ACCEPTED
	case pb.State_STATE_HANDLED:
		// Waiting for the check: a handling deadline has no use any more
		// and would only leave the case in the deadline index.
		dispatched()
	case pb.State_STATE_CLOSED, pb.State_STATE_VOIDED:
		if c.State == pb.State_STATE_CLOSED {
			c.ClosedAt = timestamppb.New(reported)
		}
		if unit != "" {
			dispatched()
			withDeadline()
		}
	}
	if unit != "" && !keptUnit {
		*note += ", dispatched_unit=" + unit
	}
	if !deadline.IsZero() && !keptDeadline {
		*note += ", deadline=" + deadline.In(v.location()).Format(time.DateTime)
	}
}

func (v *Validator) location() *time.Location {
	if v.Location == nil {
		return time.UTC
	}
	return v.Location
}

// needsUnit: states in which a unit holds the case.
func needsUnit(st pb.State) bool {
	switch st {
	case pb.State_STATE_DISPATCHED, pb.State_STATE_ACCEPTED, pb.State_STATE_HANDLED, pb.State_STATE_SUSPENDED:
		return true
	}
	return false
}

// padCode restores the leading zero a spreadsheet drops from a class code
// ("1" → "01").
func padCode(s string) string {
	if len(s) == 1 && s[0] >= '0' && s[0] <= '9' {
		return "0" + s
	}
	return s
}

// classError names the row's column for a catalogue failure.
func classError(err error) error {
	var fe *catalogue.FieldError
	if !errors.As(err, &fe) {
		return bad("major", "%v", err)
	}
	field := map[string]string{"major_code": "major", "minor_code": "minor"}[fe.Field]
	if field == "" {
		field = fe.Field // kind, grid_code, component_id
	}
	return bad(field, "%s", fe.Reason)
}

func parseTime(field, s string, loc *time.Location, required bool) (time.Time, error) {
	if s == "" {
		if required {
			return time.Time{}, bad(field, "required: RFC 3339 (2019-05-03T09:30:00+08:00) or 2019-05-03 09:30:00 in the node's time zone")
		}
		return time.Time{}, nil
	}
	if len(s) <= maxWord {
		if t, err := time.Parse(time.RFC3339, s); err == nil {
			return t, nil
		}
		for _, layout := range localLayouts {
			if t, err := time.ParseInLocation(layout, s, loc); err == nil {
				return t, nil
			}
		}
	}
	return time.Time{}, bad(field, "%s is not a time: want RFC 3339 (2019-05-03T09:30:00+08:00), or 2019-05-03 09:30:00, 2019-05-03 09:30, 2019/05/03 09:30:00 or 2019/5/3 9:30 in the node's time zone (%s)", quote(s), loc)
}

// location reads the optional coordinates and address.
func location(lat, lng, addr string) (*pb.Location, error) {
	if n := utf8.RuneCountInString(addr); n > MaxAddress {
		return nil, bad("address", "%d characters, at most %d allowed", n, MaxAddress)
	}
	if lat == "" && lng == "" {
		if addr == "" {
			return nil, nil
		}
		return &pb.Location{Address: addr}, nil
	}
	if lat == "" {
		return nil, bad("lat", "missing while lng is given: give both or neither")
	}
	if lng == "" {
		return nil, bad("lng", "missing while lat is given: give both or neither")
	}
	la, err := strconv.ParseFloat(lat, 64)
	if err != nil || math.IsNaN(la) || la < minLat || la > maxLat {
		return nil, bad("lat", "%s is not a latitude in China (%g to %g)", quote(lat), minLat, maxLat)
	}
	ln, err := strconv.ParseFloat(lng, 64)
	if err != nil || math.IsNaN(ln) || ln < minLng || ln > maxLng {
		return nil, bad("lng", "%s is not a longitude in China (%g to %g)", quote(lng), minLng, maxLng)
	}
	return &pb.Location{Lat: la, Lng: ln, Address: addr}, nil
}

// quote quotes a value for a reason, cut to a readable length.
func quote(s string) string {
	const max = 40
	if utf8.RuneCountInString(s) <= max {
		return strconv.Quote(s)
	}
	return strconv.Quote(string([]rune(s)[:max])) + "…"
}
