package auth

import (
	"slices"
	"testing"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/workflow"
)

// The act grants are the workflow's roles: a role may take an action
// exactly when the transition table lets it (and may report exactly when
// REPORT lets it), so the two tables cannot drift apart.
func TestRulesAgreeWithWorkflow(t *testing.T) {
	for _, tr := range workflow.Transitions() {
		perm := ActPermission(tr.Action)
		if tr.Action == pb.Action_ACTION_REPORT {
			perm = CaseReport
		}
		var granted []pb.Role
		for role := range Rules {
			if _, ok := ScopeOf(role, perm); ok {
				granted = append(granted, role)
			}
		}
		slices.Sort(granted)
		want := slices.Clone(tr.Roles)
		slices.Sort(want)
		if !slices.Equal(granted, want) {
			t.Errorf("%s: rules grant %v, workflow allows %v", tr.Action, granted, want)
		}
	}
}

func TestEveryRoleButUnspecifiedHasRules(t *testing.T) {
	for v, name := range pb.Role_name {
		role := pb.Role(v)
		if role == pb.Role_ROLE_UNSPECIFIED {
			if len(Rules[role]) != 0 {
				t.Errorf("%s has grants", name)
			}
			continue
		}
		if len(Rules[role]) == 0 {
			t.Errorf("%s has no grants", name)
		}
		if _, ok := ScopeOf(role, CatalogueGet); !ok {
			t.Errorf("%s may not read the catalogue", name)
		}
	}
}

func TestAuthorizeScopes(t *testing.T) {
	c := &pb.Case{Id: "320582-20261203-000001", GridCode: "320582110152102", OwnerUnit: "sanitation", Source: pb.Source_SOURCE_APP, ReportedBy: "key:app1"}
	tests := []struct {
		name string
		p    Principal
		perm Permission
		ok   bool
	}{
		{"leader closes anything", Principal{ID: "acct:l", Role: pb.Role_ROLE_SHIFT_LEADER}, ActPermission(pb.Action_ACTION_CLOSE), true},
		{"leader may not accept", Principal{ID: "acct:l", Role: pb.Role_ROLE_SHIFT_LEADER}, ActPermission(pb.Action_ACTION_ACCEPT), false},
		{"unit accepts its case", Principal{ID: "acct:u", Role: pb.Role_ROLE_HANDLING_UNIT, Unit: "sanitation"}, ActPermission(pb.Action_ACTION_ACCEPT), true},
		{"other unit may not", Principal{ID: "acct:u2", Role: pb.Role_ROLE_HANDLING_UNIT, Unit: "parks"}, ActPermission(pb.Action_ACTION_ACCEPT), false},
		{"unit without a unit may not", Principal{ID: "acct:u3", Role: pb.Role_ROLE_HANDLING_UNIT}, CaseRead, false},
		{"inspector in grid checks", Principal{ID: "acct:i", Role: pb.Role_ROLE_INSPECTOR, Grids: []string{"320582110152"}}, ActPermission(pb.Action_ACTION_CHECK_PASS), true},
		{"inspector elsewhere may not", Principal{ID: "acct:i2", Role: pb.Role_ROLE_INSPECTOR, Grids: []string{"320582110153"}}, ActPermission(pb.Action_ACTION_CHECK_PASS), false},
		{"app reads its own report", Principal{ID: "key:app1", Role: pb.Role_ROLE_CITIZEN, Sources: []pb.Source{pb.Source_SOURCE_APP}}, CaseRead, true},
		{"another app may not", Principal{ID: "key:app2", Role: pb.Role_ROLE_CITIZEN, Sources: []pb.Source{pb.Source_SOURCE_APP}}, CaseRead, false},
		{"a key that reads all", Principal{ID: "key:app2", Role: pb.Role_ROLE_CITIZEN, ReadAll: true}, CaseRead, true},
		{"intake sees the contact", Principal{ID: "acct:k", Role: pb.Role_ROLE_INTAKE_CLERK}, CaseContact, true},
		{"dispatcher does not", Principal{ID: "acct:d", Role: pb.Role_ROLE_DISPATCHER}, CaseContact, false},
		{"admin reads no case", Principal{ID: "acct:a", Role: pb.Role_ROLE_ADMIN}, CaseRead, false},
		{"evaluator may not manage accounts", Principal{ID: "acct:e", Role: pb.Role_ROLE_EVALUATOR}, AccountsManage, false},
	}
	for _, tt := range tests {
		err := Authorize(&tt.p, tt.perm, c)
		if (err == nil) != tt.ok {
			t.Errorf("%s: Authorize = %v, want ok=%v", tt.name, err, tt.ok)
		}
		var de *DeniedError
		if err != nil && (!errorsAs(err, &de) || de.Permission != tt.perm) {
			t.Errorf("%s: error %v does not name %s", tt.name, err, tt.perm)
		}
	}
	// A new report: an integrator only as its own sources.
	app := &Principal{ID: "key:app1", Role: pb.Role_ROLE_CITIZEN, Sources: []pb.Source{pb.Source_SOURCE_APP}}
	if err := Authorize(app, CaseReport, &pb.Case{Source: pb.Source_SOURCE_APP}); err != nil {
		t.Errorf("app reporting as APP: %v", err)
	}
	if err := Authorize(app, CaseReport, &pb.Case{Source: pb.Source_SOURCE_HOTLINE_12345}); err == nil {
		t.Error("app reporting as the 12345 hotline was allowed")
	}
	hotline := &Principal{ID: "key:h", Kind: KindIntegrator, Role: pb.Role_ROLE_INTAKE_CLERK, Sources: []pb.Source{pb.Source_SOURCE_HOTLINE_12345}}
	if err := Authorize(hotline, CaseReport, &pb.Case{Source: pb.Source_SOURCE_HOTLINE_12345}); err != nil {
		t.Errorf("hotline key reporting as 12345: %v", err)
	}
	if err := Authorize(hotline, CaseReport, &pb.Case{Source: pb.Source_SOURCE_INSPECTOR}); err == nil {
		t.Error("a hotline key (intake clerk's node scope) reported as an inspector")
	}
	clerk := &Principal{ID: "acct:k", Kind: KindPerson, Role: pb.Role_ROLE_INTAKE_CLERK}
	if err := Authorize(clerk, CaseReport, &pb.Case{Source: pb.Source_SOURCE_HOTLINE_12319}); err != nil {
		t.Errorf("an intake clerk taking a 12319 call: %v", err)
	}
	if err := Authorize(nil, CaseRead, c); err != ErrUnauthenticated {
		t.Errorf("nil principal: %v", err)
	}
}

// Every staff role may read the grid geometry and locate points; an
// integrator's key may not (its reports are located for it).
func TestGeoReadIsForStaff(t *testing.T) {
	for v, name := range pb.Role_name {
		role := pb.Role(v)
		_, ok := ScopeOf(role, GeoRead)
		want := role != pb.Role_ROLE_UNSPECIFIED && role != pb.Role_ROLE_CITIZEN && role != pb.Role_ROLE_SYSTEM
		if ok != want {
			t.Errorf("%s holds geo.read: %v, want %v", name, ok, want)
		}
	}
}
