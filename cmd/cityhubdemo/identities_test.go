package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/cityhub/cityhub/config"
	"github.com/cityhub/cityhub/federation/topology"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/replica"
	"github.com/cityhub/cityhub/tiers/replica/testcluster"
)

// The demo's identities on one node with authentication on: provisioning
// makes the staff, the units' seats and the keys, again without a change
// on the same data; each call goes out as the account or key whose job it
// is, and the node takes the actor from it.
func TestIdentities(t *testing.T) {
	dir := t.TempDir()
	pw, err := ensurePassword(dir)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := ensurePassword(dir); err != nil || again != pw {
		t.Fatalf("second ensurePassword: %q %v, want %q", again, err, pw)
	}
	if fi, err := os.Stat(passwordFile(dir)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("password file: %v %v", fi, err)
	}
	c := testcluster.New(t, 1, func(c *config.Config) {
		c.Auth.Disabled = false
		c.Auth.AdminPasswordFile = passwordFile(dir)
		c.Auth.AdminUser = adminUser
		c.Node.Tier = "city"
		c.Node.Jurisdiction = "320500"
	})
	node := topology.Node{Name: "city", Tier: topology.City, Jurisdiction: "320500",
		Units: []topology.Unit{{ID: "city-water", Name: "市自来水有限公司"}, {ID: "lead", Name: "a unit named like a seat"}}}

	open := func() (*identities, pb.CaseServiceClient) {
		ids, err := newIdentities(dir, pw)
		if err != nil {
			t.Fatal(err)
		}
		cc, err := grpc.NewClient(c.Members[0].Cfg.GRPC.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithUnaryInterceptor(ids.unary(node.Name)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cc.Close() })
		ids.addNode(node, gridPrefix(node), cc, func() *replica.Replica { return c.Replica(0) })
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		if err := ids.provision(ctx); err != nil {
			t.Fatal(err)
		}
		return ids, pb.NewCaseServiceClient(cc)
	}
	ids, cases := open()
	if n := ids.created.Load(); n != int64(len(staff)+2) || ids.keysMade.Load() != 3 {
		t.Errorf("created %d accounts and %d keys, want %d and 3", n, ids.keysMade.Load(), len(staff)+2)
	}
	if fi, err := os.Stat(filepath.Join(dir, "auth", "keys.json")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("keys file: %v %v", fi, err)
	}
	// Again on the same data: nothing new, the same keys.
	hotline := ids.key("city", "hotline-12345")
	ids, cases = open()
	if ids.created.Load() != 0 || ids.existed.Load() != int64(len(staff)+2) || ids.keysMade.Load() != 0 || ids.key("city", "hotline-12345") != hotline {
		t.Errorf("second provisioning: %d created, %d existed, %d keys made", ids.created.Load(), ids.existed.Load(), ids.keysMade.Load())
	}

	ctx := context.Background()
	report := func(src pb.Source, role pb.Role, grid string) (*pb.Case, error) {
		resp, err := cases.ReportCase(ctx, &pb.ReportCaseRequest{RequestId: "r-" + randomID(), Actor: "generator", Role: role, Source: src,
			Kind: pb.Kind_KIND_EVENT, MajorCode: "01", MinorCode: "02", GridCode: grid, Description: "暴露垃圾"})
		return resp.GetCase(), err
	}
	// Each source reports as its account or key.
	for _, tc := range []struct {
		src   pb.Source
		role  pb.Role
		actor string
	}{
		{pb.Source_SOURCE_INSPECTOR, pb.Role_ROLE_INSPECTOR, "监督员 city"},
		{pb.Source_SOURCE_HOTLINE_12345, pb.Role_ROLE_INTAKE_CLERK, "12345 热线平台"},
		{pb.Source_SOURCE_HOTLINE_12319, pb.Role_ROLE_INTAKE_CLERK, "受理员 city"},
		{pb.Source_SOURCE_APP, pb.Role_ROLE_CITIZEN, "市民通 app"},
		{pb.Source_SOURCE_CAMERA, pb.Role_ROLE_SYSTEM, "视频智能分析 camera"},
	} {
		cs, err := report(tc.src, tc.role, "320505001001002")
		if err != nil {
			t.Errorf("%s: %v", tc.src, err)
			continue
		}
		if h := cs.GetHistory(); len(h) == 0 || h[0].Actor != tc.actor || h[0].Role != tc.role {
			t.Errorf("%s: history %v, want actor %q", tc.src, h, tc.actor)
		}
	}

	// The case walks through its staff: the shift leader files, the
	// dispatcher dispatches to a unit outside the federation, whose seat is
	// made on its first step.
	cs, err := report(pb.Source_SOURCE_INSPECTOR, pb.Role_ROLE_INSPECTOR, "320505001001003")
	if err != nil {
		t.Fatal(err)
	}
	act := func(a pb.Action, role pb.Role, actor string, unit string) *pb.Case {
		t.Helper()
		resp, err := cases.Act(ctx, &pb.ActRequest{RequestId: "a-" + randomID(), CaseId: cs.Id, Action: a, Role: role, Actor: actor, Unit: unit,
			UnitTier: pb.Tier_TIER_CITY, TimeLimitMinutes: 60})
		if err != nil {
			t.Fatalf("%s as %s: %v", a, role, err)
		}
		return resp.Case
	}
	act(pb.Action_ACTION_FILE, pb.Role_ROLE_SHIFT_LEADER, "lead-1", "")
	act(pb.Action_ACTION_DISPATCH, pb.Role_ROLE_DISPATCHER, "disp-1", "traffic-police")
	got := act(pb.Action_ACTION_ACCEPT, pb.Role_ROLE_HANDLING_UNIT, "traffic-police", "")
	if last := got.History[len(got.History)-1]; last.Actor != "traffic-police" || last.Role != pb.Role_ROLE_HANDLING_UNIT {
		t.Errorf("accept: %v", last)
	}
	if ids.created.Load() != 1 {
		t.Errorf("%d accounts created on demand, want 1 (traffic-police)", ids.created.Load())
	}
	// Reads go as the shift leader; a unit's seat may not act on another
	// unit's case.
	if _, err := cases.GetCase(ctx, &pb.GetCaseRequest{CaseId: cs.Id}); err != nil {
		t.Errorf("GetCase: %v", err)
	}
	_, err = cases.Act(ctx, &pb.ActRequest{RequestId: "a-x", CaseId: cs.Id, Action: pb.Action_ACTION_HANDLE, Role: pb.Role_ROLE_HANDLING_UNIT, Actor: "city-water"})
	if status.Code(err) != codes.PermissionDenied {
		t.Errorf("city-water handles traffic-police's case: %v", err)
	}
	if got := unitAccount("lead"); got != "u-lead" {
		t.Errorf("unitAccount(lead) = %q", got)
	}
	if got := unitAccount("Some Unit/With Spaces"); !strings.HasPrefix(got, "u-some-unit-with-spaces") {
		t.Errorf("unitAccount: %q", got)
	}
}

// TestCtlCommand: the hints name the cityhubctl beside the demo's binary
// (make run: bin/cityhubctl, relative to the working directory), else go
// run.
func TestCtlCommand(t *testing.T) {
	repo := t.TempDir()
	bin := filepath.Join(repo, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	demo := filepath.Join(bin, "cityhubdemo")
	if got := ctlCommandFor(demo, repo); got != "go run ./cmd/cityhubctl" {
		t.Errorf("without bin/cityhubctl: %q", got)
	}
	if err := os.WriteFile(filepath.Join(bin, "cityhubctl"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if got := ctlCommandFor(demo, repo); got != filepath.Join("bin", "cityhubctl") {
		t.Errorf("from the repository: %q, want bin/cityhubctl", got)
	}
	if got := ctlCommandFor(demo, bin); got != "./cityhubctl" {
		t.Errorf("from bin/: %q, want ./cityhubctl", got)
	}
	if got := ctlCommandFor(demo, t.TempDir()); got != filepath.Join(bin, "cityhubctl") {
		t.Errorf("from elsewhere: %q, want the absolute path", got)
	}
}
