package auth

import (
	"errors"
	"fmt"
	"slices"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// Permission names something a principal may do.
type Permission string

// The permissions. Case actions are ActPermission(action).
const (
	CaseReport   Permission = "case.report"  // report a new case
	CaseRead     Permission = "case.read"    // read one case
	CaseList     Permission = "case.list"    // list cases
	CaseContact  Permission = "case.contact" // see the reporter's contact (个人信息)
	CatalogueGet Permission = "catalogue.read"

	EvaluationRead Permission = "evaluation.read"
	FederationRead Permission = "federation.read" // link status
	ClusterRead    Permission = "cluster.read"    // group status
	ClusterManage  Permission = "cluster.manage"  // membership, leadership transfer
	// ClusterBackup: a snapshot of the whole state (cityhubctl snapshot
	// save). It holds every case, the reporters' contacts and the
	// identities' hashes, so it is the administrator's alone.
	ClusterBackup  Permission = "cluster.backup"
	OwnerResolve   Permission = "ownership.resolve"
	ImportRun      Permission = "import.run"
	ReconcileRun   Permission = "reconcile.run" // runs, dry runs and anti-entropy
	ReconcileRead  Permission = "reconcile.read"
	AccountsManage Permission = "accounts.manage"
	KeysManage     Permission = "keys.manage"
	AuditRead      Permission = "audit.read"
	// GeoRead: locate a point in the grid register and draw its polygons
	// (any staff role; not integrators, whose reports are located for them).
	GeoRead Permission = "geo.read"
	// EvidenceUpload: attach photos and files to a case (reading them is
	// CaseRead: whoever may read the case may see its evidence).
	EvidenceUpload Permission = "evidence.upload"
	// DashboardRead: the command centre's summary of an area (大屏,
	// DashboardService): counts, today's flow, the overdue list. Every
	// role that reads cases holds it at the scope it lists them at.
	DashboardRead Permission = "dashboard.read"
)

// ActPermission is the permission to take workflow action a on a case.
func ActPermission(a pb.Action) Permission {
	return Permission("case.act." + a.String())
}

// Scope limits a grant to part of the node's cases.
type Scope string

// The scopes, from widest to narrowest.
const (
	// ScopeNode: every case the node holds or mirrors (its jurisdiction
	// and everything handed to it), and node-wide operations.
	ScopeNode Scope = "node"
	// ScopeUnit: the cases dispatched to the principal's unit.
	ScopeUnit Scope = "unit"
	// ScopeGrids: the cases in the grids the principal patrols.
	ScopeGrids Scope = "grids"
	// ScopeOwn: an integrator's own reports, reported as one of its
	// sources (the whole node when its key may read all).
	ScopeOwn Scope = "own"
)

// Grant is one row of the rules: a permission at a scope.
type Grant struct {
	Permission Permission
	Scope      Scope
}

func acts(scope Scope, actions ...pb.Action) []Grant {
	out := make([]Grant, len(actions))
	for i, a := range actions {
		out[i] = Grant{ActPermission(a), scope}
	}
	return out
}

func grants(scope Scope, perms ...Permission) []Grant {
	out := make([]Grant, len(perms))
	for i, p := range perms {
		out[i] = Grant{p, scope}
	}
	return out
}

func join(gs ...[]Grant) []Grant { return slices.Concat(gs...) }

// Rules is the one table of who may do what (DOMAIN.md §11): role ×
// permission → scope. The act grants agree with the workflow's transition
// table (a test checks it); a role may do nothing that is not listed here.
var Rules = map[pb.Role][]Grant{
	// 监督员: reports, verifies and checks in the grids they patrol.
	pb.Role_ROLE_INSPECTOR: join(
		grants(ScopeGrids, CaseReport, CaseRead, CaseList, EvidenceUpload, DashboardRead),
		grants(ScopeNode, CatalogueGet, GeoRead),
		acts(ScopeGrids, pb.Action_ACTION_VERIFY, pb.Action_ACTION_SELF_HANDLE, pb.Action_ACTION_CHECK_PASS, pb.Action_ACTION_CHECK_FAIL),
	),
	// 受理员: takes hotline and app calls, calls citizens back.
	pb.Role_ROLE_INTAKE_CLERK: grants(ScopeNode, CaseReport, CaseRead, CaseList, CaseContact, CatalogueGet, OwnerResolve, GeoRead, EvidenceUpload, DashboardRead),
	// The citizens' app and camera analytics (integrator keys): report as
	// their own sources, read their own reports.
	pb.Role_ROLE_CITIZEN: join(grants(ScopeOwn, CaseReport, CaseRead, CaseList, EvidenceUpload), grants(ScopeNode, CatalogueGet)),
	pb.Role_ROLE_SYSTEM:  join(grants(ScopeOwn, CaseReport, CaseRead, CaseList, EvidenceUpload), grants(ScopeNode, CatalogueGet)),
	// 值班长: files, closes, voids, approves, decides joint reviews.
	pb.Role_ROLE_SHIFT_LEADER: join(
		grants(ScopeNode, CaseReport, CaseRead, CaseList, CaseContact, CatalogueGet, EvaluationRead,
			FederationRead, ClusterRead, OwnerResolve, ReconcileRead, GeoRead, EvidenceUpload, DashboardRead),
		acts(ScopeNode, pb.Action_ACTION_FILE, pb.Action_ACTION_REJECT, pb.Action_ACTION_DISPATCH,
			pb.Action_ACTION_APPROVE_RETURN, pb.Action_ACTION_DENY_RETURN, pb.Action_ACTION_CLOSE,
			pb.Action_ACTION_APPROVE_EXTENSION, pb.Action_ACTION_DENY_EXTENSION,
			pb.Action_ACTION_APPROVE_SUSPEND, pb.Action_ACTION_DENY_SUSPEND, pb.Action_ACTION_RESUME,
			pb.Action_ACTION_VOID, pb.Action_ACTION_SUPERVISE, pb.Action_ACTION_TRANSFER_UP,
			pb.Action_ACTION_REASSIGN, pb.Action_ACTION_REFER_REVIEW, pb.Action_ACTION_DECIDE_OWNER,
			pb.Action_ACTION_HAND_DOWN),
	),
	// 派遣员: dispatches and decides returns and extensions.
	pb.Role_ROLE_DISPATCHER: join(
		grants(ScopeNode, CaseRead, CaseList, CatalogueGet, FederationRead, ClusterRead, OwnerResolve, ReconcileRead, GeoRead, DashboardRead),
		acts(ScopeNode, pb.Action_ACTION_DISPATCH, pb.Action_ACTION_APPROVE_RETURN, pb.Action_ACTION_DENY_RETURN,
			pb.Action_ACTION_APPROVE_EXTENSION, pb.Action_ACTION_DENY_EXTENSION, pb.Action_ACTION_TRANSFER_UP,
			pb.Action_ACTION_REASSIGN, pb.Action_ACTION_REFER_REVIEW, pb.Action_ACTION_HAND_DOWN),
	),
	// 专业部门 / 网格站: works the cases dispatched to its unit.
	pb.Role_ROLE_HANDLING_UNIT: join(
		grants(ScopeUnit, CaseRead, CaseList, EvidenceUpload, DashboardRead),
		grants(ScopeNode, CatalogueGet, GeoRead),
		acts(ScopeUnit, pb.Action_ACTION_ACCEPT, pb.Action_ACTION_REQUEST_RETURN, pb.Action_ACTION_HANDLE,
			pb.Action_ACTION_REQUEST_EXTENSION, pb.Action_ACTION_REQUEST_SUSPEND),
	),
	// 督办: supervises the subtree and reads the scores.
	pb.Role_ROLE_SUPERVISOR: join(
		grants(ScopeNode, CaseRead, CaseList, CatalogueGet, EvaluationRead, FederationRead, ReconcileRead, GeoRead, DashboardRead),
		acts(ScopeNode, pb.Action_ACTION_SUPERVISE),
	),
	// 考评: reads cases and scores.
	pb.Role_ROLE_EVALUATOR: grants(ScopeNode, CaseRead, CaseList, CatalogueGet, EvaluationRead, GeoRead, DashboardRead),
	// The node's administrator: identities, membership, import and
	// reconciliation; not the cases' content.
	pb.Role_ROLE_ADMIN: grants(ScopeNode, CatalogueGet, AccountsManage, KeysManage, AuditRead, ClusterRead,
		ClusterManage, ClusterBackup, FederationRead, OwnerResolve, ImportRun, ReconcileRun, ReconcileRead, GeoRead),
}

// Grants lists what role may do, in table order.
func Grants(role pb.Role) []Grant { return slices.Clone(Rules[role]) }

// ScopeOf returns the scope at which role holds perm.
func ScopeOf(role pb.Role, perm Permission) (Scope, bool) {
	for _, g := range Rules[role] {
		if g.Permission == perm {
			return g.Scope, true
		}
	}
	return "", false
}

var (
	// ErrUnauthenticated: the caller did not prove who it is. Its message
	// never says whether an account exists.
	ErrUnauthenticated = errors.New("unauthenticated")
	// ErrPermissionDenied: the principal may not do this.
	ErrPermissionDenied = errors.New("permission denied")
	// ErrReplicaBehind: the token is the node's own, issued when the
	// node's state was further on than this replica's is (a follower just
	// restarted, or behind its leader), and the replica did not catch up
	// within Options.CatchUp. It is not the caller's fault: another
	// replica, or this one a moment later, accepts the token. It does not
	// wrap ErrUnauthenticated.
	ErrReplicaBehind = errors.New("this replica has not yet caught up with the login")
)

// DeniedError says which permission a refused principal lacks and why.
type DeniedError struct {
	Permission Permission
	Reason     string
}

func (e *DeniedError) Error() string {
	return fmt.Sprintf("permission denied: %s: %s", e.Permission, e.Reason)
}

func (e *DeniedError) Unwrap() error { return ErrPermissionDenied }

func deny(perm Permission, format string, args ...any) error {
	return &DeniedError{Permission: perm, Reason: fmt.Sprintf(format, args...)}
}

// Authorize reports whether p may use perm on c. With c nil it asks whether
// p holds perm at any scope (the node-wide operations, or before a case is
// read).
func Authorize(p *Principal, perm Permission, c *pb.Case) error {
	if p == nil {
		return ErrUnauthenticated
	}
	scope, ok := ScopeOf(p.Role, perm)
	if !ok {
		return deny(perm, "role %s does not have it", p.Role)
	}
	if c == nil {
		return nil
	}
	// An integrator reports only as its own sources, whatever its role's
	// scope (a hotline platform's key has the intake clerk's node scope).
	if perm == CaseReport && p.Kind == KindIntegrator && !p.MaySource(c.GetSource()) {
		return deny(perm, "key %s may report only as %v, not %s", p.ID, p.Sources, c.GetSource())
	}
	if !InScope(p, scope, c) {
		return deny(perm, "case %s is outside the %s scope of %s", c.GetId(), scope, p.ID)
	}
	return nil
}

// InScope reports whether c lies in p's scope.
func InScope(p *Principal, scope Scope, c *pb.Case) bool {
	switch scope {
	case ScopeNode:
		return true
	case ScopeUnit:
		return p.Unit != "" && c.GetOwnerUnit() == p.Unit
	case ScopeGrids:
		return p.InGrids(c.GetGridCode())
	case ScopeOwn:
		if c.GetId() == "" { // a new report: its source must be the integrator's
			return p.MaySource(c.GetSource())
		}
		return p.ReadAll || (c.GetReportedBy() == p.ID && p.ID != "")
	}
	return false
}
