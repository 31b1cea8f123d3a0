package main

import (
	"errors"
	"strings"
	"testing"
	"time"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// checkTable checks that every value of an enum except those in skip has a
// friendly name, and that the friendly name, the enum name and the enum
// name without its prefix all parse back to the value.
func checkTable[E enum](t *testing.T, tab *nameTable[E], all map[int32]string, skip ...E) {
	t.Helper()
	for n := range all {
		v := E(n)
		if v == 0 || contains(skip, v) {
			continue
		}
		name := tab.name(v)
		if !contains(tab.names(), name) {
			t.Errorf("%s %s has no friendly name (name() gave %q)", tab.what, v, name)
			continue
		}
		if name != strings.ToLower(name) || strings.ContainsAny(name, " _") {
			t.Errorf("%s %s: friendly name %q is not lower-case with dashes", tab.what, v, name)
		}
		for _, in := range []string{name, strings.ToUpper(name), v.String(), strings.ToLower(v.String()),
			strings.TrimPrefix(v.String(), tab.prefix)} {
			got, err := tab.parse(in)
			if err != nil || got != v {
				t.Errorf("%s parse(%q) = %s, %v; want %s", tab.what, in, got, err, v)
			}
		}
	}
	seen := map[string]bool{}
	for _, e := range tab.entries {
		if seen[e.name] {
			t.Errorf("%s: duplicate friendly name %q", tab.what, e.name)
		}
		seen[e.name] = true
	}
	if len(tab.entries) != len(all)-1-len(skip) {
		t.Errorf("%s: %d entries, want %d", tab.what, len(tab.entries), len(all)-1-len(skip))
	}
}

func contains[T comparable](s []T, v T) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func TestActionNames(t *testing.T) {
	checkTable(t, actions, pb.Action_name, pb.Action_ACTION_REPORT)
	// The brief's list, verbatim.
	want := "verify, file, reject, self-handle, dispatch, accept, request-return, approve-return, deny-return, handle, check-pass, check-fail, close, request-extension, approve-extension, deny-extension, request-suspend, approve-suspend, deny-suspend, resume, void, supervise, transfer-up"
	for _, n := range strings.Split(want, ", ") {
		if _, err := actions.parse(n); err != nil {
			t.Errorf("parse(%q): %v", n, err)
		}
	}
	// REPORT is not something `cases act` takes, but history shows it.
	if _, err := actions.parse("report"); err == nil {
		t.Error("parse(report) succeeded; reports go through `cases report`")
	}
	if got := actions.name(pb.Action_ACTION_REPORT); got != "report" {
		t.Errorf("name(REPORT) = %q, want report", got)
	}
	if got, err := actions.parse("派遣"); err != nil || got != pb.Action_ACTION_DISPATCH {
		t.Errorf("parse(派遣) = %s, %v", got, err)
	}
	if got, err := actions.parse("check_pass"); err != nil || got != pb.Action_ACTION_CHECK_PASS {
		t.Errorf("parse(check_pass) = %s, %v", got, err)
	}
	for _, in := range []string{"transfer-up", "上交", "transfer_up", "ACTION_TRANSFER_UP", "TRANSFER-UP"} {
		if got, err := actions.parse(in); err != nil || got != pb.Action_ACTION_TRANSFER_UP {
			t.Errorf("parse(%q) = %s, %v; want ACTION_TRANSFER_UP", in, got, err)
		}
	}
	if got := actions.name(pb.Action_ACTION_TRANSFER_UP); got != "transfer-up" {
		t.Errorf("name(TRANSFER_UP) = %q, want transfer-up", got)
	}
	for _, tc := range []struct {
		name, zh string
		a        pb.Action
	}{
		{"reassign", "改派", pb.Action_ACTION_REASSIGN},
		{"refer-review", "提请会诊", pb.Action_ACTION_REFER_REVIEW},
		{"decide-owner", "会诊裁定", pb.Action_ACTION_DECIDE_OWNER},
	} {
		for _, in := range []string{tc.name, tc.zh} {
			if got, err := actions.parse(in); err != nil || got != tc.a {
				t.Errorf("parse(%q) = %s, %v; want %s", in, got, err, tc.a)
			}
		}
		if got := actions.name(tc.a); got != tc.name {
			t.Errorf("name(%s) = %q, want %q", tc.a, got, tc.name)
		}
	}
}

func TestOtherNames(t *testing.T) {
	checkTable(t, roles, pb.Role_name)
	checkTable(t, sources, pb.Source_name)
	checkTable(t, kinds, pb.Kind_name)
	checkTable(t, urgencies, pb.Urgency_name)
	checkTable(t, tiers, pb.Tier_name)
	checkTable(t, states, pb.State_name)
	checkTable(t, consistencies, pb.Consistency_name)

	for in, want := range map[string]pb.Source{
		"12345": pb.Source_SOURCE_HOTLINE_12345, "hotline-12345": pb.Source_SOURCE_HOTLINE_12345,
		"12319": pb.Source_SOURCE_HOTLINE_12319, "camera": pb.Source_SOURCE_CAMERA,
	} {
		if got, err := sources.parse(in); err != nil || got != want {
			t.Errorf("sources.parse(%q) = %s, %v; want %s", in, got, err, want)
		}
	}
	for in, want := range map[string]pb.Role{
		"shift-leader": pb.Role_ROLE_SHIFT_LEADER, "shift_leader": pb.Role_ROLE_SHIFT_LEADER,
		"ROLE_HANDLING_UNIT": pb.Role_ROLE_HANDLING_UNIT, " Intake-Clerk ": pb.Role_ROLE_INTAKE_CLERK,
	} {
		if got, err := roles.parse(in); err != nil || got != want {
			t.Errorf("roles.parse(%q) = %s, %v; want %s", in, got, err, want)
		}
	}
	if got := states.name(pb.State_STATE_RETURN_REQUESTED); got != "return-requested" {
		t.Errorf("states.name(RETURN_REQUESTED) = %q", got)
	}
	if got := states.name(pb.State_STATE_UNSPECIFIED); got != "-" {
		t.Errorf("states.name(UNSPECIFIED) = %q, want -", got)
	}
}

func TestUnknownNames(t *testing.T) {
	for _, tc := range []struct {
		parse func(string) error
		in    string
		want  []string
	}{
		{func(s string) error { _, err := actions.parse(s); return err }, "approve", []string{`unknown action "approve"`, "approve-return", "supervise"}},
		{func(s string) error { _, err := actions.parse(s); return err }, "", []string{"unknown action", "verify"}},
		{func(s string) error { _, err := actions.parse(s); return err }, "UNSPECIFIED", []string{"unknown action"}},
		{func(s string) error { _, err := roles.parse(s); return err }, "mayor", []string{`unknown role "mayor"`, "inspector", "intake-clerk", "handling-unit", "supervisor"}},
		{func(s string) error { _, err := sources.parse(s); return err }, "110", []string{`unknown source "110"`, "12345", "12319", "media"}},
		{func(s string) error { _, err := kinds.parse(s); return err }, "thing", []string{"component", "event"}},
		{func(s string) error { _, err := urgencies.parse(s); return err }, "asap", []string{"ordinary", "urgent"}},
		{func(s string) error { _, err := tiers.parse(s); return err }, "province", []string{"city", "community"}},
		{func(s string) error { _, err := states.parse(s); return err }, "open", []string{"reported", "voided"}},
		{func(s string) error { _, err := consistencies.parse(s); return err }, "strong", []string{"stale", "linearizable"}},
	} {
		err := tc.parse(tc.in)
		if err == nil {
			t.Errorf("parse(%q) succeeded", tc.in)
			continue
		}
		var ue usageError
		if !errors.As(err, &ue) {
			t.Errorf("parse(%q): %v is not a usage error", tc.in, err)
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("parse(%q) error %q does not mention %q", tc.in, err, w)
			}
		}
	}
	if v, err := parseOptional(tiers, ""); err != nil || v != pb.Tier_TIER_UNSPECIFIED {
		t.Errorf("parseOptional(\"\") = %s, %v", v, err)
	}
}

func TestDurationMinutes(t *testing.T) {
	for in, want := range map[string]int64{
		"30m": 30, "4h": 240, "1h30m": 90, "90m": 90, "1d": 1440, "2d": 2880, "1d12h": 2160, "1m": 1, "120s": 2,
	} {
		got, err := durationMinutes("time-limit", in)
		if err != nil || got != want {
			t.Errorf("durationMinutes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "0m", "-1h", "90s", "1h30s", "abc", "4", "d", "1d-2h", "1.5d", "-0m"} {
		if got, err := durationMinutes("time-limit", in); err == nil {
			t.Errorf("durationMinutes(%q) = %d, want an error", in, got)
		} else if !strings.Contains(err.Error(), "--time-limit") {
			t.Errorf("durationMinutes(%q) error %q does not name the flag", in, err)
		}
	}
}

func TestParseInstant(t *testing.T) {
	now := time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"2026-11-22T17:00:00+08:00": time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC),
		"2h":                        now.Add(2 * time.Hour),
		"-30m":                      now.Add(-30 * time.Minute),
		"1d":                        now.Add(24 * time.Hour),
	} {
		got, err := parseInstant("due-before", in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("parseInstant(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"tomorrow", "2026-11-22", "2026-11-22 17:00"} {
		if _, err := parseInstant("due-before", in, now); err == nil {
			t.Errorf("parseInstant(%q) succeeded", in)
		}
	}
}
