package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/replica/testcluster"
)

// The runbook's commands as printed: save from a running node, status,
// restore the group's data directory offline, start it again.
func TestSnapshotSaveStatusRestore(t *testing.T) {
	c := testcluster.New(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	resp, err := c.Cases(0).ReportCase(ctx, &pb.ReportCaseRequest{
		RequestId: "bk-1", Actor: "insp-1", Role: pb.Role_ROLE_INSPECTOR, Source: pb.Source_SOURCE_INSPECTOR,
		Kind: pb.Kind_KIND_EVENT, MajorCode: "01", MinorCode: "02", GridCode: "320582110152102", Description: "井盖缺失",
	})
	if err != nil {
		t.Fatal(err)
	}
	addr := c.Members[0].Cfg.GRPC.Addr
	dir := t.TempDir()
	file := filepath.Join(dir, "node.snap")

	code, out, errOut := runCLI(t, "--addr", addr, "snapshot", "save", file)
	if code != 0 {
		t.Fatalf("save: exit %d\n%s%s", code, out, errOut)
	}
	for _, re := range []string{`(?m)^snapshot saved: ` + regexp.QuoteMeta(file) + `$`, `(?m)^taken on: +n1 \(leader\), `,
		`(?m)^index / term: +\d+ / \d+ \(the group's state index when the save started: \d+\)$`, `(?m)^cases: +1$`,
		`(?m)^sha256: +[0-9a-f]{64}  \(` + regexp.QuoteMeta(file) + `\.sha256\)$`} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("save output lacks %s:\n%s", re, out)
		}
	}
	if _, err := os.Stat(file + ".part"); !os.IsNotExist(err) {
		t.Errorf("the .part file is left: %v", err)
	}

	code, out, errOut = runCLI(t, "snapshot", "status", file)
	if code != 0 || !regexp.MustCompile(`(?m)^checksum: +ok$`).MatchString(out) || !regexp.MustCompile(`(?m)^node\.snap\.sha256: +ok$`).MatchString(out) {
		t.Fatalf("status: exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ = runCLI(t, "-o", "json", "snapshot", "status", file)
	var js struct {
		Cases      float64 `json:"cases"`
		ChecksumOK bool    `json:"checksum_ok"`
		Info       struct {
			NodeID string `json:"node_id"`
		} `json:"info"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &js) != nil || js.Cases != 1 || !js.ChecksumOK || js.Info.NodeID != "n1" {
		t.Fatalf("status -o json: exit %d %+v\n%s", code, js, out)
	}

	// A damaged copy: exit 1, and restore refuses it.
	b, _ := os.ReadFile(file)
	b[len(b)/2] ^= 0x10
	bad := filepath.Join(dir, "bad.snap")
	if err := os.WriteFile(bad, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := runCLI(t, "snapshot", "status", bad); code != 1 || !strings.Contains(out, "DAMAGED") {
		t.Fatalf("damaged status: exit %d\n%s%s", code, out, errOut)
	}

	m := c.Members[0]
	cluster := "n1=" + m.Cfg.Raft.Addr
	if code, _, errOut := runCLI(t, "snapshot", "restore", bad, "--data-dir", t.TempDir(), "--name", "n1", "--initial-cluster", cluster); code != 1 || !strings.Contains(errOut, "bad backup") {
		t.Fatalf("restore of a damaged backup: exit %d %s", code, errOut)
	}
	if code, _, errOut := runCLI(t, "snapshot", "restore", file, "--data-dir", t.TempDir(), "--name", "n1", "--initial-cluster", "n1"); code != 2 {
		t.Fatalf("bad --initial-cluster: exit %d %s", code, errOut)
	}
	// Over a replica's own state: refused.
	c.Kill(0)
	if code, _, errOut := runCLI(t, "snapshot", "restore", file, "--data-dir", m.Cfg.Node.DataDir, "--name", "n1", "--initial-cluster", cluster); code != 1 || !strings.Contains(errOut, "not empty") {
		t.Fatalf("restore over existing state: exit %d %s", code, errOut)
	}
	c.Destroy()
	code, out, errOut = runCLI(t, "snapshot", "restore", file, "--data-dir", m.Cfg.Node.DataDir, "--name", "n1", "--initial-cluster", cluster)
	if code != 0 || !strings.Contains(out, "restored "+file+" into "+m.Cfg.Node.DataDir+": replica n1 of "+cluster) {
		t.Fatalf("restore: exit %d\n%s%s", code, out, errOut)
	}
	c.Start(0)
	c.WaitLeader(30 * time.Second)
	got, err := c.Cases(0).GetCase(ctx, &pb.GetCaseRequest{CaseId: resp.Case.Id})
	if err != nil || got.Description != "井盖缺失" {
		t.Fatalf("the case after the restore: %v %v", got, err)
	}
}
