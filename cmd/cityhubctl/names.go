package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// usageError marks a mistake in the command line (exit status 2), as opposed
// to a failed call (exit status 1).
type usageError struct{ error }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// enum is what protoc-gen-go makes of a proto enum.
type enum interface {
	~int32
	String() string
}

// nameTable maps the friendly lower-case names an operator types to one
// proto enum. Parsing also accepts the enum's own names, with or without the
// prefix and in any case, with '-' for '_' (ACTION_CHECK_PASS, check_pass).
type nameTable[E enum] struct {
	what    string // what the names name, for errors: "action", "role"...
	prefix  string // the enum value prefix: "ACTION_"
	entries []nameEntry[E]
}

type nameEntry[E enum] struct {
	name    string
	value   E
	aliases []string // other accepted spellings (the Chinese term, for actions)
}

// parse resolves s to an enum value; unknown names are a usage error that
// lists the valid ones.
func (t *nameTable[E]) parse(s string) (E, error) {
	key := strings.ToLower(strings.TrimSpace(s))
	if key != "" {
		for _, e := range t.entries {
			if key == e.name {
				return e.value, nil
			}
			for _, a := range e.aliases {
				if key == a {
					return e.value, nil
				}
			}
		}
		upper := strings.ToUpper(strings.ReplaceAll(key, "-", "_"))
		for _, e := range t.entries {
			if full := e.value.String(); upper == full || t.prefix+upper == full {
				return e.value, nil
			}
		}
	}
	var zero E
	return zero, usagef("unknown %s %q (valid: %s)", t.what, s, strings.Join(t.names(), ", "))
}

// names lists the friendly names in table order.
func (t *nameTable[E]) names() []string {
	out := make([]string, len(t.entries))
	for i, e := range t.entries {
		out[i] = e.name
	}
	return out
}

// name is the friendly name of v for display: the table's name when there
// is one, else the enum name without its prefix in lower case with '-' for
// '_' (ACTION_REPORT → report), and "-" for the zero value.
func (t *nameTable[E]) name(v E) string {
	for _, e := range t.entries {
		if e.value == v {
			return e.name
		}
	}
	if v == 0 {
		return "-"
	}
	s := strings.TrimPrefix(v.String(), t.prefix)
	return strings.ReplaceAll(strings.ToLower(s), "_", "-")
}

// help is the one-line list of valid names used in flag usage strings.
func (t *nameTable[E]) help() string {
	return strings.Join(t.names(), "|")
}

// actions are the workflow actions `cases act` takes; REPORT has its own
// command (`cases report`).
var actions = &nameTable[pb.Action]{what: "action", prefix: "ACTION_", entries: []nameEntry[pb.Action]{
	{"verify", pb.Action_ACTION_VERIFY, []string{"核实"}},
	{"file", pb.Action_ACTION_FILE, []string{"立案"}},
	{"reject", pb.Action_ACTION_REJECT, []string{"不予立案"}},
	{"self-handle", pb.Action_ACTION_SELF_HANDLE, []string{"自处理"}},
	{"dispatch", pb.Action_ACTION_DISPATCH, []string{"派遣"}},
	{"accept", pb.Action_ACTION_ACCEPT, []string{"签收"}},
	{"request-return", pb.Action_ACTION_REQUEST_RETURN, []string{"回退申请"}},
	{"approve-return", pb.Action_ACTION_APPROVE_RETURN, []string{"回退批准"}},
	{"deny-return", pb.Action_ACTION_DENY_RETURN, []string{"回退驳回"}},
	{"handle", pb.Action_ACTION_HANDLE, []string{"处置"}},
	{"check-pass", pb.Action_ACTION_CHECK_PASS, []string{"核查通过"}},
	{"check-fail", pb.Action_ACTION_CHECK_FAIL, []string{"核查不通过"}},
	{"close", pb.Action_ACTION_CLOSE, []string{"结案"}},
	{"request-extension", pb.Action_ACTION_REQUEST_EXTENSION, []string{"延期申请"}},
	{"approve-extension", pb.Action_ACTION_APPROVE_EXTENSION, []string{"延期批准"}},
	{"deny-extension", pb.Action_ACTION_DENY_EXTENSION, []string{"延期驳回"}},
	{"request-suspend", pb.Action_ACTION_REQUEST_SUSPEND, []string{"挂账申请"}},
	{"approve-suspend", pb.Action_ACTION_APPROVE_SUSPEND, []string{"挂账批准"}},
	{"deny-suspend", pb.Action_ACTION_DENY_SUSPEND, []string{"挂账驳回"}},
	{"resume", pb.Action_ACTION_RESUME, []string{"恢复"}},
	{"void", pb.Action_ACTION_VOID, []string{"作废"}},
	{"supervise", pb.Action_ACTION_SUPERVISE, []string{"督办"}},
	{"transfer-up", pb.Action_ACTION_TRANSFER_UP, []string{"上交"}},
	{"reassign", pb.Action_ACTION_REASSIGN, []string{"改派"}},
	{"refer-review", pb.Action_ACTION_REFER_REVIEW, []string{"提请会诊"}},
	{"decide-owner", pb.Action_ACTION_DECIDE_OWNER, []string{"会诊裁定"}},
	{"hand-down", pb.Action_ACTION_HAND_DOWN, []string{"下派"}},
}}

var roles = &nameTable[pb.Role]{what: "role", prefix: "ROLE_", entries: []nameEntry[pb.Role]{
	{"inspector", pb.Role_ROLE_INSPECTOR, nil},
	{"intake-clerk", pb.Role_ROLE_INTAKE_CLERK, nil},
	{"citizen", pb.Role_ROLE_CITIZEN, nil},
	{"system", pb.Role_ROLE_SYSTEM, nil},
	{"shift-leader", pb.Role_ROLE_SHIFT_LEADER, nil},
	{"dispatcher", pb.Role_ROLE_DISPATCHER, nil},
	{"handling-unit", pb.Role_ROLE_HANDLING_UNIT, nil},
	{"supervisor", pb.Role_ROLE_SUPERVISOR, nil},
	{"evaluator", pb.Role_ROLE_EVALUATOR, nil},
	{"admin", pb.Role_ROLE_ADMIN, nil},
}}

var sources = &nameTable[pb.Source]{what: "source", prefix: "SOURCE_", entries: []nameEntry[pb.Source]{
	{"inspector", pb.Source_SOURCE_INSPECTOR, nil},
	{"12345", pb.Source_SOURCE_HOTLINE_12345, nil},
	{"12319", pb.Source_SOURCE_HOTLINE_12319, nil},
	{"app", pb.Source_SOURCE_APP, nil},
	{"camera", pb.Source_SOURCE_CAMERA, nil},
	{"leader", pb.Source_SOURCE_LEADER, nil},
	{"media", pb.Source_SOURCE_MEDIA, nil},
}}

var kinds = &nameTable[pb.Kind]{what: "kind", prefix: "KIND_", entries: []nameEntry[pb.Kind]{
	{"component", pb.Kind_KIND_COMPONENT, []string{"部件"}},
	{"event", pb.Kind_KIND_EVENT, []string{"事件"}},
}}

var urgencies = &nameTable[pb.Urgency]{what: "urgency", prefix: "URGENCY_", entries: []nameEntry[pb.Urgency]{
	{"ordinary", pb.Urgency_URGENCY_ORDINARY, nil},
	{"urgent", pb.Urgency_URGENCY_URGENT, nil},
}}

var tiers = &nameTable[pb.Tier]{what: "tier", prefix: "TIER_", entries: []nameEntry[pb.Tier]{
	{"city", pb.Tier_TIER_CITY, nil},
	{"district", pb.Tier_TIER_DISTRICT, nil},
	{"street", pb.Tier_TIER_STREET, nil},
	{"community", pb.Tier_TIER_COMMUNITY, nil},
}}

var states = &nameTable[pb.State]{what: "state", prefix: "STATE_", entries: []nameEntry[pb.State]{
	{"reported", pb.State_STATE_REPORTED, nil},
	{"verified", pb.State_STATE_VERIFIED, nil},
	{"filed", pb.State_STATE_FILED, nil},
	{"not-filed", pb.State_STATE_NOT_FILED, nil},
	{"dispatched", pb.State_STATE_DISPATCHED, nil},
	{"accepted", pb.State_STATE_ACCEPTED, nil},
	{"return-requested", pb.State_STATE_RETURN_REQUESTED, nil},
	{"handled", pb.State_STATE_HANDLED, nil},
	{"checked", pb.State_STATE_CHECKED, nil},
	{"closed", pb.State_STATE_CLOSED, nil},
	{"suspended", pb.State_STATE_SUSPENDED, nil},
	{"voided", pb.State_STATE_VOIDED, nil},
}}

var consistencies = &nameTable[pb.Consistency]{what: "consistency", prefix: "CONSISTENCY_", entries: []nameEntry[pb.Consistency]{
	{"stale", pb.Consistency_CONSISTENCY_STALE, nil},
	{"leader", pb.Consistency_CONSISTENCY_LEADER, nil},
	{"linearizable", pb.Consistency_CONSISTENCY_LINEARIZABLE, nil},
}}

// parseOptional parses s with t, or returns the zero value when s is empty
// (the flag was not given).
func parseOptional[E enum](t *nameTable[E], s string) (E, error) {
	if s == "" {
		var zero E
		return zero, nil
	}
	return t.parse(s)
}

// parseDuration accepts Go durations (4h, 30m, 1h30m) with an optional
// leading whole number of days (2d, 1d12h); a day is 24 hours.
func parseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	neg := strings.HasPrefix(s, "-")
	rest := strings.TrimLeft(s, "+-")
	var d time.Duration
	if i := strings.IndexByte(rest, 'd'); i > 0 {
		days, err := strconv.ParseInt(rest[:i], 10, 32)
		if err != nil {
			return 0, fmt.Errorf("invalid duration %q", s)
		}
		d = time.Duration(days) * 24 * time.Hour
		rest = rest[i+1:]
	}
	if rest != "" {
		r, err := time.ParseDuration(rest)
		if err != nil || strings.HasPrefix(rest, "-") || strings.HasPrefix(rest, "+") {
			return 0, fmt.Errorf("invalid duration %q (e.g. 30m, 4h, 1h30m, 2d)", s)
		}
		d += r
	} else if d == 0 {
		return 0, fmt.Errorf("invalid duration %q (e.g. 30m, 4h, 1h30m, 2d)", s)
	}
	if neg {
		d = -d
	}
	return d, nil
}

// durationMinutes converts a positive duration flag to whole minutes, for
// the request fields counted in minutes (time_limit_minutes,
// extension_minutes).
func durationMinutes(flag, s string) (int64, error) {
	d, err := parseDuration(s)
	if err != nil {
		return 0, usagef("--%s: %v", flag, err)
	}
	if d <= 0 {
		return 0, usagef("--%s: %q must be positive", flag, s)
	}
	if d%time.Minute != 0 {
		return 0, usagef("--%s: %q is not a whole number of minutes", flag, s)
	}
	return int64(d / time.Minute), nil
}

// parseInstant reads an RFC 3339 time, or a duration from now (2h, -30m, 1d).
func parseInstant(flag, s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	d, err := parseDuration(s)
	if err != nil {
		return time.Time{}, usagef("--%s: %q is neither an RFC 3339 time (2026-11-22T17:00:00+08:00) nor a duration from now (4h, -30m, 2d)", flag, s)
	}
	return now.Add(d), nil
}
