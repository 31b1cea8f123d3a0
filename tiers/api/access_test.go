package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/cityhub/cityhub/config"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/auth"
	"github.com/cityhub/cityhub/tiers/replica/testcluster"
	"github.com/cityhub/cityhub/tiers/workflow"
)

// seat is one principal of the access tests: an account or an integrator
// key, and whether the test cases lie outside its unit or grids.
type seat struct {
	name  string
	role  pb.Role
	unit  string
	grids []string
	key   string // an integrator key instead of an account
	out   bool   // the test cases lie outside its scope
	cred  string // bearer credential, after login
}

const (
	adminPassword = "admin-password-0001"
	seatPassword  = "seat-password-0001"
	inGrid        = "320582110152102" // the grid of every test case
	unitIn        = "sanitation"      // the unit test cases are dispatched to
)

// authCluster starts a one-replica node with authentication on, logs the
// administrator in, and makes the seats.
func authCluster(t *testing.T) (*testcluster.Cluster, string, []*seat) {
	t.Helper()
	pwFile := filepath.Join(t.TempDir(), "admin-password")
	if err := os.WriteFile(pwFile, []byte(adminPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cl := testcluster.New(t, 1, func(c *config.Config) {
		c.Auth.Disabled = false
		c.Auth.AdminPasswordFile = pwFile
	})
	cl.WaitLeader(10 * time.Second)
	authc := pb.NewAuthServiceClient(cl.Conn(0))
	var admin string
	testcluster.WaitFor(t, 60*time.Second, "the first administrator", func() bool {
		tok, err := authc.Login(context.Background(), &pb.LoginRequest{Username: "admin", Password: adminPassword})
		if err == nil {
			admin = tok.AccessToken
		}
		return err == nil
	})
	seats := []*seat{
		{name: "intake", role: pb.Role_ROLE_INTAKE_CLERK},
		{name: "leader", role: pb.Role_ROLE_SHIFT_LEADER},
		{name: "dispatcher", role: pb.Role_ROLE_DISPATCHER},
		{name: "supervisor", role: pb.Role_ROLE_SUPERVISOR},
		{name: "evaluator", role: pb.Role_ROLE_EVALUATOR},
		{name: "insp-in", role: pb.Role_ROLE_INSPECTOR, grids: []string{inGrid[:12]}},
		{name: "insp-out", role: pb.Role_ROLE_INSPECTOR, grids: []string{"320582110153"}, out: true},
		{name: "unit-in", role: pb.Role_ROLE_HANDLING_UNIT, unit: unitIn},
		{name: "unit-out", role: pb.Role_ROLE_HANDLING_UNIT, unit: "parks", out: true},
		{name: "app", role: pb.Role_ROLE_CITIZEN, key: "SOURCE_APP", out: true},
		{name: "camera", role: pb.Role_ROLE_SYSTEM, key: "SOURCE_CAMERA", out: true},
		{name: "admin", role: pb.Role_ROLE_ADMIN, cred: admin},
	}
	ctx := withCred(context.Background(), admin)
	for _, s := range seats {
		switch {
		case s.cred != "":
		case s.key != "":
			resp, err := authc.CreateAPIKey(ctx, &pb.CreateAPIKeyRequest{RequestId: "key-" + s.name, Name: s.name, Role: s.role,
				Sources: []pb.Source{pb.Source(pb.Source_value[s.key])}})
			if err != nil {
				t.Fatalf("key %s: %v", s.name, err)
			}
			s.cred = resp.Key
		default:
			if _, err := authc.CreateAccount(ctx, &pb.CreateAccountRequest{RequestId: "acct-" + s.name, Name: s.name, DisplayName: s.name + "同志",
				Role: s.role, Unit: s.unit, Grids: s.grids, Password: seatPassword}); err != nil {
				t.Fatalf("account %s: %v", s.name, err)
			}
			tok, err := authc.Login(context.Background(), &pb.LoginRequest{Username: s.name, Password: seatPassword})
			if err != nil {
				t.Fatalf("login %s: %v", s.name, err)
			}
			s.cred = tok.AccessToken
		}
	}
	return cl, admin, seats
}

func withCred(ctx context.Context, cred string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+cred)
}

func seatNamed(seats []*seat, name string) *seat {
	for _, s := range seats {
		if s.name == name {
			return s
		}
	}
	panic(name)
}

// transport sends an action as a seat over gRPC or REST and returns the
// gRPC code (REST: mapped back from the status) and, for a refusal, the
// permission the answer names.
type transport struct {
	name string
	act  func(t *testing.T, s *seat, id string, a pb.Action, extra map[string]any) (codes.Code, string)
}

func grpcTransport(cl *testcluster.Cluster) transport {
	return transport{name: "gRPC", act: func(t *testing.T, s *seat, id string, a pb.Action, extra map[string]any) (codes.Code, string) {
		req := &pb.ActRequest{CaseId: id, RequestId: fmt.Sprintf("%s-%s-%s-%d", s.name, id, a, time.Now().UnixNano()), Action: a, Note: "测试 test"}
		if u, ok := extra["unit"].(string); ok {
			req.Unit = u
		}
		if m, ok := extra["extension_minutes"].(int); ok {
			req.ExtensionMinutes = int64(m)
		}
		_, err := cl.Cases(0).Act(withCred(context.Background(), s.cred), req)
		st := status.Convert(err)
		perm := ""
		for _, d := range st.Details() {
			if ei, ok := d.(*errdetails.ErrorInfo); ok {
				perm = ei.Metadata["permission"]
			}
		}
		return st.Code(), perm
	}}
}

var httpCodes = map[int]codes.Code{200: codes.OK, 400: codes.InvalidArgument, 401: codes.Unauthenticated, 403: codes.PermissionDenied,
	404: codes.NotFound, 409: codes.FailedPrecondition, 503: codes.Unavailable}

func restTransport(cl *testcluster.Cluster) transport {
	return transport{name: "REST", act: func(t *testing.T, s *seat, id string, a pb.Action, extra map[string]any) (codes.Code, string) {
		body := map[string]any{"request_id": fmt.Sprintf("%s-%s-%s-%d", s.name, id, a, time.Now().UnixNano()), "action": a.String(), "note": "测试 test"}
		for k, v := range extra {
			body[k] = v
		}
		code, out := restCall(t, cl, s.cred, http.MethodPost, "/v1/cases/"+id+":act", body)
		perm := ""
		if e, ok := out["error"].(map[string]any); ok {
			perm, _ = e["permission"].(string)
		}
		return code, perm
	}}
}

func restCall(t *testing.T, cl *testcluster.Cluster, cred, method, path string, body any) (codes.Code, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = strings.NewReader(string(b))
	}
	req, _ := http.NewRequest(method, cl.HTTPBase(0)+path, rd)
	if cred != "" {
		req.Header.Set("Authorization", "Bearer "+cred)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("%s %s: %d, body is not JSON: %s", method, path, resp.StatusCode, raw)
	}
	code, ok := httpCodes[resp.StatusCode]
	if !ok {
		t.Fatalf("%s %s: unexpected HTTP %d: %s", method, path, resp.StatusCode, raw)
	}
	return code, out
}

// walker prepares cases in a given state through the seats that own each step.
type walker struct {
	t     *testing.T
	cl    *testcluster.Cluster
	seats []*seat
	n     int
}

func (w *walker) do(seatName, id string, a pb.Action, mod func(*pb.ActRequest)) {
	w.t.Helper()
	w.n++
	req := &pb.ActRequest{CaseId: id, RequestId: fmt.Sprintf("walk-%d", w.n), Action: a, Note: "准备 setup"}
	if mod != nil {
		mod(req)
	}
	if _, err := w.cl.Cases(0).Act(withCred(context.Background(), seatNamed(w.seats, seatName).cred), req); err != nil {
		w.t.Fatalf("setup %s by %s on %s: %v", a, seatName, id, err)
	}
}

// caseIn returns a new case in the state action a starts from.
func (w *walker) caseIn(a pb.Action) string {
	w.t.Helper()
	w.n++
	resp, err := w.cl.Cases(0).ReportCase(withCred(context.Background(), seatNamed(w.seats, "intake").cred), &pb.ReportCaseRequest{
		RequestId: fmt.Sprintf("walk-report-%d", w.n), Source: pb.Source_SOURCE_HOTLINE_12345, Kind: pb.Kind_KIND_EVENT,
		MajorCode: "01", MinorCode: "02", GridCode: inGrid, Description: "暴露垃圾 exposed garbage",
		Reporter: &pb.Reporter{Name: "王先生", Phone: "13800000000"},
	})
	if err != nil {
		w.t.Fatalf("setup report: %v", err)
	}
	id := resp.Case.Id
	dispatch := func(r *pb.ActRequest) { r.Unit = unitIn }
	switch a {
	case pb.Action_ACTION_VERIFY, pb.Action_ACTION_SELF_HANDLE, pb.Action_ACTION_REJECT, pb.Action_ACTION_VOID:
		return id
	}
	w.do("insp-in", id, pb.Action_ACTION_VERIFY, nil)
	if a == pb.Action_ACTION_FILE {
		return id
	}
	w.do("leader", id, pb.Action_ACTION_FILE, nil)
	switch a {
	case pb.Action_ACTION_DISPATCH, pb.Action_ACTION_TRANSFER_UP, pb.Action_ACTION_REFER_REVIEW:
		return id
	case pb.Action_ACTION_DECIDE_OWNER:
		w.do("dispatcher", id, pb.Action_ACTION_REFER_REVIEW, nil)
		return id
	}
	w.do("dispatcher", id, pb.Action_ACTION_DISPATCH, dispatch)
	switch a {
	case pb.Action_ACTION_ACCEPT, pb.Action_ACTION_REQUEST_RETURN, pb.Action_ACTION_SUPERVISE, pb.Action_ACTION_REASSIGN:
		return id
	case pb.Action_ACTION_APPROVE_RETURN, pb.Action_ACTION_DENY_RETURN:
		w.do("unit-in", id, pb.Action_ACTION_REQUEST_RETURN, nil)
		return id
	}
	w.do("unit-in", id, pb.Action_ACTION_ACCEPT, nil)
	switch a {
	case pb.Action_ACTION_HANDLE, pb.Action_ACTION_REQUEST_EXTENSION, pb.Action_ACTION_REQUEST_SUSPEND:
		return id
	case pb.Action_ACTION_APPROVE_EXTENSION, pb.Action_ACTION_DENY_EXTENSION:
		w.do("unit-in", id, pb.Action_ACTION_REQUEST_EXTENSION, func(r *pb.ActRequest) { r.ExtensionMinutes = 60 })
		return id
	case pb.Action_ACTION_APPROVE_SUSPEND, pb.Action_ACTION_DENY_SUSPEND, pb.Action_ACTION_RESUME:
		w.do("unit-in", id, pb.Action_ACTION_REQUEST_SUSPEND, nil)
		if a == pb.Action_ACTION_RESUME {
			w.do("leader", id, pb.Action_ACTION_APPROVE_SUSPEND, nil)
		}
		return id
	}
	w.do("unit-in", id, pb.Action_ACTION_HANDLE, nil)
	if a == pb.Action_ACTION_CHECK_PASS || a == pb.Action_ACTION_CHECK_FAIL {
		return id
	}
	w.do("insp-in", id, pb.Action_ACTION_CHECK_PASS, nil)
	return id // CLOSE
}

// federationOnly are the actions a node outside a federation refuses
// whoever asks (there is no parent, no node below): the table checks
// that only the seats allowed get past authorization.
var federationOnly = []pb.Action{pb.Action_ACTION_TRANSFER_UP, pb.Action_ACTION_HAND_DOWN}

// TestAccessTable is every seat × every workflow action × a case in or out
// of its scope, over gRPC and REST: the seats the workflow lets take the
// action, on a case in their unit or grids, succeed; every other one gets
// PermissionDenied (403) naming the missing permission, and the raft log
// does not grow.
func TestAccessTable(t *testing.T) {
	cl, _, seats := authCluster(t)
	w := &walker{t: t, cl: cl, seats: seats}
	node := cl.Replica(0).Node
	for _, tr := range []transport{grpcTransport(cl), restTransport(cl)} {
		for _, row := range workflow.Transitions() {
			a := row.Action
			if a == pb.Action_ACTION_REPORT {
				continue
			}
			id := w.caseIn(a)
			extra := map[string]any{}
			switch a {
			case pb.Action_ACTION_DISPATCH:
				extra["unit"] = unitIn
			case pb.Action_ACTION_REASSIGN, pb.Action_ACTION_DECIDE_OWNER:
				extra["unit"] = "parks"
			case pb.Action_ACTION_REQUEST_EXTENSION:
				extra["extension_minutes"] = 60
			}
			var allowed []*seat
			for _, s := range seats {
				if slices.Contains(row.Roles, s.role) && !s.out {
					allowed = append(allowed, s)
					continue
				}
				before := node.Status().LastLogIndex
				code, perm := tr.act(t, s, id, a, extra)
				if code != codes.PermissionDenied || perm != string(auth.ActPermission(a)) {
					t.Errorf("%s %s by %s (%s): %v naming %q, want PermissionDenied naming %s", tr.name, a, s.name, s.role, code, perm, auth.ActPermission(a))
				}
				if after := node.Status().LastLogIndex; after != before {
					t.Errorf("%s %s by %s: refused, but the raft log grew from %d to %d", tr.name, a, s.name, before, after)
				}
			}
			if len(allowed) == 0 {
				t.Fatalf("%s: no seat may take it", a)
			}
			s := allowed[0]
			before := node.Status().LastLogIndex
			code, _ := tr.act(t, s, id, a, extra)
			if slices.Contains(federationOnly, a) {
				if code != codes.FailedPrecondition {
					t.Errorf("%s %s by %s outside a federation: %v, want FailedPrecondition (authorized, refused by the workflow)", tr.name, a, s.name, code)
				}
				continue
			}
			if code != codes.OK {
				t.Errorf("%s %s by %s (%s): %v, want OK", tr.name, a, s.name, s.role, code)
			} else if after := node.Status().LastLogIndex; after <= before {
				t.Errorf("%s %s by %s succeeded without a log entry", tr.name, a, s.name)
			}
		}
	}
}

// TestAccessReads: who reads a case, who sees the reporter's phone, what
// each seat's list holds, and that the role comes from the credentials.
func TestAccessReads(t *testing.T) {
	cl, admin, seats := authCluster(t)
	w := &walker{t: t, cl: cl, seats: seats}
	id := w.caseIn(pb.Action_ACTION_ACCEPT) // dispatched to sanitation, in insp-in's grid
	// A report through the app's key: the app reads it, the camera does not.
	app := seatNamed(seats, "app")
	own, err := cl.Cases(0).ReportCase(withCred(context.Background(), app.cred), &pb.ReportCaseRequest{
		RequestId: "app-report-1", Source: pb.Source_SOURCE_APP, Kind: pb.Kind_KIND_EVENT, MajorCode: "01", MinorCode: "02",
		GridCode: inGrid, Description: "路边垃圾 garbage"})
	if err != nil {
		t.Fatal(err)
	}
	if own.Case.ReportedBy != "key:"+strings.Split(strings.TrimPrefix(app.cred, "chk_"), "_")[0] {
		t.Errorf("reported_by = %q", own.Case.ReportedBy)
	}
	if _, err := cl.Cases(0).ReportCase(withCred(context.Background(), app.cred), &pb.ReportCaseRequest{
		RequestId: "app-report-2", Source: pb.Source_SOURCE_HOTLINE_12345, Kind: pb.Kind_KIND_EVENT, MajorCode: "01", MinorCode: "02",
		GridCode: inGrid, Description: "冒充热线 posing as the hotline"}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("app reporting as the 12345 hotline: %v, want PermissionDenied", err)
	}

	readers := map[string]bool{"intake": true, "leader": true, "dispatcher": true, "supervisor": true, "evaluator": true, "insp-in": true, "unit-in": true}
	contact := map[string]bool{"intake": true, "leader": true}
	for _, s := range seats {
		ctx := withCred(context.Background(), s.cred)
		c, err := cl.Cases(0).GetCase(ctx, &pb.GetCaseRequest{CaseId: id})
		switch {
		case readers[s.name] && err != nil:
			t.Errorf("GetCase by %s: %v", s.name, err)
		case !readers[s.name] && status.Code(err) != codes.PermissionDenied:
			t.Errorf("GetCase by %s: %v, want PermissionDenied", s.name, err)
		case err == nil && (c.Reporter != nil) != contact[s.name]:
			t.Errorf("GetCase by %s: reporter contact shown = %v, want %v", s.name, c.Reporter != nil, contact[s.name])
		}
		// The same over REST.
		code, body := restCall(t, cl, s.cred, http.MethodGet, "/v1/cases/"+id, nil)
		if (code == codes.OK) != readers[s.name] || (code != codes.OK && code != codes.PermissionDenied) {
			t.Errorf("REST GET by %s: %v %v", s.name, code, body)
		}
		if code == codes.OK && (body["reporter"] != nil) != contact[s.name] {
			t.Errorf("REST GET by %s: reporter shown = %v", s.name, body["reporter"] != nil)
		}
		// Lists hold only what the seat may read.
		list, err := cl.Cases(0).ListCases(ctx, &pb.ListCasesRequest{PageSize: 100})
		if s.name == "admin" {
			if status.Code(err) != codes.PermissionDenied {
				t.Errorf("ListCases by admin: %v, want PermissionDenied", err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ListCases by %s: %v", s.name, err)
			continue
		}
		var ids []string
		for _, c := range list.Cases {
			ids = append(ids, c.Id)
			if c.Reporter != nil && !contact[s.name] {
				t.Errorf("ListCases by %s shows a reporter's contact", s.name)
			}
		}
		if slices.Contains(ids, id) != readers[s.name] {
			t.Errorf("ListCases by %s: holds the dispatched case = %v, want %v (%v)", s.name, slices.Contains(ids, id), readers[s.name], ids)
		}
		if s.name == "app" && !slices.Equal(ids, []string{own.Case.Id}) {
			t.Errorf("the app lists %v, want only its own report %s", ids, own.Case.Id)
		}
	}

	// The role comes from the credentials: a body that names another is refused.
	leader := seatNamed(seats, "leader")
	before := cl.Replica(0).Node.Status().LastLogIndex
	_, err = cl.Cases(0).Act(withCred(context.Background(), leader.cred), &pb.ActRequest{CaseId: id, RequestId: "claim-1",
		Action: pb.Action_ACTION_ACCEPT, Role: pb.Role_ROLE_HANDLING_UNIT, Actor: "sanitation"})
	if status.Code(err) != codes.PermissionDenied {
		t.Errorf("leader claiming HANDLING_UNIT: %v, want PermissionDenied", err)
	}
	if after := cl.Replica(0).Node.Status().LastLogIndex; after != before {
		t.Errorf("a refused claim grew the log from %d to %d", before, after)
	}

	// History keeps the real principal and unit; the audit lists it.
	unit := seatNamed(seats, "unit-in")
	resp, err := cl.Cases(0).Accept(withCred(context.Background(), unit.cred), &pb.ActRequest{CaseId: id, RequestId: "accept-1"})
	if err != nil {
		t.Fatal(err)
	}
	h := resp.Case.History[len(resp.Case.History)-1]
	if h.Principal != "acct:unit-in" || h.ActorUnit != unitIn || h.Actor != "unit-in同志" || h.Role != pb.Role_ROLE_HANDLING_UNIT {
		t.Errorf("history entry %+v", h)
	}
	audit, err := pb.NewAuthServiceClient(cl.Conn(0)).ListAudit(withCred(context.Background(), admin), &pb.ListAuditRequest{Principal: "acct:unit-in", PageSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, ev := range audit.Events {
		found = found || (ev.CaseId == id && ev.Action == pb.Action_ACTION_ACCEPT.String() && ev.Unit == unitIn)
	}
	if !found {
		t.Errorf("audit of acct:unit-in lacks the accept of %s: %v", id, audit.Events)
	}
	if _, err := pb.NewAuthServiceClient(cl.Conn(0)).ListAudit(withCred(context.Background(), leader.cred), &pb.ListAuditRequest{}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("audit by the shift leader: %v, want PermissionDenied", err)
	}
}

// TestAccessManagement: membership, backups, import, reconciliation and
// account management belong to the administrator; nobody else gets past them and
// the log does not grow.
func TestAccessManagement(t *testing.T) {
	cl, _, seats := authCluster(t)
	node := cl.Replica(0).Node
	calls := map[string]func(ctx context.Context) error{
		"CreateAccount": func(ctx context.Context) error {
			_, err := pb.NewAuthServiceClient(cl.Conn(0)).CreateAccount(ctx, &pb.CreateAccountRequest{RequestId: "x-1", Name: "mallory", Role: pb.Role_ROLE_ADMIN, Password: "mallory-password"})
			return err
		},
		"CreateAPIKey": func(ctx context.Context) error {
			_, err := pb.NewAuthServiceClient(cl.Conn(0)).CreateAPIKey(ctx, &pb.CreateAPIKeyRequest{RequestId: "x-2", Name: "k", Role: pb.Role_ROLE_SYSTEM, Sources: []pb.Source{pb.Source_SOURCE_CAMERA}})
			return err
		},
		"Join": func(ctx context.Context) error {
			_, err := cl.ClusterAdmin(0).Join(ctx, &pb.JoinRequest{NodeId: "evil", RaftAddr: "127.0.0.1:1"})
			return err
		},
		"Remove": func(ctx context.Context) error {
			_, err := cl.ClusterAdmin(0).Remove(ctx, &pb.RemoveRequest{NodeId: "n1"})
			return err
		},
		// A backup holds every case and identity: the administrator's alone.
		"SaveSnapshot": func(ctx context.Context) error {
			st, err := cl.ClusterAdmin(0).SaveSnapshot(ctx, &pb.SaveSnapshotRequest{})
			if err != nil {
				return err
			}
			m, err := st.Recv()
			if err == nil && m.GetInfo() == nil {
				return fmt.Errorf("the stream starts without the snapshot's info")
			}
			return err
		},
		"ImportCases": func(ctx context.Context) error {
			_, err := pb.NewOwnershipServiceClient(cl.Conn(0)).ImportCases(ctx, &pb.ImportCasesRequest{RequestId: "x-3"})
			return err
		},
		"Reconcile": func(ctx context.Context) error {
			_, err := pb.NewOwnershipServiceClient(cl.Conn(0)).Reconcile(ctx, &pb.ReconcileRequest{})
			return err
		},
	}
	for _, s := range seats {
		for name, call := range calls {
			before := node.Status().LastLogIndex
			err := call(withCred(context.Background(), s.cred))
			if s.role == pb.Role_ROLE_ADMIN {
				if status.Code(err) == codes.PermissionDenied || status.Code(err) == codes.Unauthenticated {
					t.Errorf("%s by admin: %v", name, err)
				}
				continue
			}
			if status.Code(err) != codes.PermissionDenied {
				t.Errorf("%s by %s: %v, want PermissionDenied", name, s.name, err)
			}
			if after := node.Status().LastLogIndex; after != before {
				t.Errorf("%s by %s: refused, but the log grew from %d to %d", name, s.name, before, after)
			}
		}
	}
}

// TestUnauthenticated: without credentials (or with bad ones) every method
// but login, refresh and health answers Unauthenticated over gRPC and 401
// over REST; health, readiness, metrics and the OpenAPI document stay open.
func TestUnauthenticated(t *testing.T) {
	cl, _, _ := authCluster(t)
	public := map[string]bool{pb.AuthService_Login_FullMethodName: true, pb.AuthService_Refresh_FullMethodName: true}
	services := []protoreflect.ServiceDescriptor{
		pb.File_cityhub_v1_case_service_proto.Services().ByName("CaseService"),
		pb.File_cityhub_v1_cluster_service_proto.Services().ByName("ClusterService"),
		pb.File_cityhub_v1_ownership_proto.Services().ByName("OwnershipService"),
		pb.File_cityhub_v1_auth_service_proto.Services().ByName("AuthService"),
		pb.File_cityhub_v1_geo_service_proto.Services().ByName("GeoService"),
		pb.File_cityhub_v1_feed_proto.Services().ByName("FeedService"),
		pb.File_cityhub_v1_evidence_service_proto.Services().ByName("EvidenceService"),
	}
	n := 0
	for _, sd := range services {
		for i := 0; i < sd.Methods().Len(); i++ {
			m := fmt.Sprintf("/%s/%s", sd.FullName(), sd.Methods().Get(i).Name())
			if public[m] {
				continue
			}
			for _, ctx := range []context.Context{context.Background(), withCred(context.Background(), "forged.token.value"), withCred(context.Background(), "chk_0000_nope")} {
				err := cl.Conn(0).Invoke(ctx, m, &emptypb.Empty{}, &emptypb.Empty{}, grpc.WaitForReady(true))
				if status.Code(err) != codes.Unauthenticated {
					t.Errorf("%s without valid credentials: %v, want Unauthenticated", m, err)
				}
			}
			n++
		}
	}
	if n < 40 {
		t.Errorf("only %d methods checked", n)
	}
	// REST: every path of the OpenAPI document.
	resp, err := http.Get(cl.HTTPBase(0) + "/openapi.json")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("openapi.json: %v %v", err, resp)
	}
	var doc struct {
		Paths               map[string]map[string]any `json:"paths"`
		SecurityDefinitions map[string]any            `json:"securityDefinitions"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if _, ok := doc.SecurityDefinitions["bearer"]; !ok {
		t.Errorf("the OpenAPI document declares no bearer security scheme: %v", doc.SecurityDefinitions)
	}
	paths := 0
	for path, ops := range doc.Paths {
		for method := range ops {
			if path == "/v1/auth/login" || path == "/v1/auth/refresh" {
				continue
			}
			p := strings.NewReplacer("{case_id}", "320582-20261203-000001", "{node_id}", "n1", "{name}", "x", "{id}", "x").Replace(path)
			code, body := restCall(t, cl, "", strings.ToUpper(method), p, map[string]any{})
			if code != codes.Unauthenticated {
				t.Errorf("%s %s without credentials: %v %v", method, p, code, body)
			}
			paths++
		}
	}
	if paths < 40 {
		t.Errorf("only %d REST operations checked", paths)
	}
	for _, p := range []string{"/v1/evaluation.csv", "/v1/reconcile/report.csv", "/v1/cases:watch", "/v1/evidence/320582-20261203-000001",
		"/v1/evidence/320582-20261203-000001/" + strings.Repeat("ab", 32)} {
		if code, _ := restCall(t, cl, "", http.MethodGet, p, nil); code != codes.Unauthenticated {
			t.Errorf("GET %s without credentials: %v", p, code)
		}
	}
	if code, _ := restCall(t, cl, "", http.MethodPost, "/v1/evidence/320582-20261203-000001?request_id=x&stage=report", map[string]any{}); code != codes.Unauthenticated {
		t.Errorf("POST /v1/evidence without credentials: %v", code)
	}
	for _, p := range []string{"/healthz", "/readyz", "/metrics", "/openapi.json"} {
		resp, err := http.Get(cl.HTTPBase(0) + p)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %v %v", p, err, resp.StatusCode)
		}
		resp.Body.Close()
	}
	// The metrics count the refusals.
	resp, err = http.Get(cl.HTTPBase(0) + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(raw), "cityhub_auth_failures_total") {
		t.Error("/metrics has no cityhub_auth_failures_total")
	}
}
