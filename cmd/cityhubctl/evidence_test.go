package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/replica/testcluster"
)

// evidence upload, list and get against a one-replica node: the photo
// (the EXIF fixture) goes up, is listed with its EXIF place, and comes back
// byte for byte; a retry with the same request id changes nothing.
func TestEvidenceUploadListGet(t *testing.T) {
	addr, _ := districtNode(t)
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cl := pb.NewCaseServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rep, err := cl.ReportCase(ctx, &pb.ReportCaseRequest{RequestId: "cli-ev-1", Actor: "王五", Role: pb.Role_ROLE_INSPECTOR,
		Source: pb.Source_SOURCE_INSPECTOR, Kind: pb.Kind_KIND_EVENT, MajorCode: "01", MinorCode: "02", GridCode: "320505001001007", Description: "暴露垃圾"})
	if err != nil {
		t.Fatal(err)
	}
	id := rep.Case.Id
	photo := filepath.Join("..", "..", "tiers", "evidence", "testdata", "exif.jpg")
	data, err := os.ReadFile(photo)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	sha := hex.EncodeToString(sum[:])
	var out, errOut string
	testcluster.WaitFor(t, 30*time.Second, "upload (the version gate opens once the replica registered)", func() bool {
		var code int
		code, out, errOut = runCLI(t, "--addr", addr, "evidence", "upload", id, photo, "--stage", "report", "--kind", "处置前", "--request-id", "cli-up-1")
		if code != 0 && !strings.Contains(errOut, "Unavailable") {
			t.Fatalf("upload: exit %d\n%s%s", code, out, errOut)
		}
		return code == 0
	})
	if !strings.Contains(out, sha) || !strings.Contains(out, "image/jpeg") || !strings.Contains(out, "31.29870,120.58530") {
		t.Errorf("upload output:\n%s", out)
	}
	code, out, errOut := runCLI(t, "--addr", addr, "evidence", "upload", id, photo, "--stage", "report", "--kind", "before", "--request-id", "cli-up-1")
	if code != 0 || !strings.Contains(errOut, "nothing changed") {
		t.Errorf("retry: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = runCLI(t, "--addr", addr, "evidence", "list", id)
	if code != 0 || strings.Count(out, sha) != 1 || !strings.Contains(out, "exif.jpg") || !strings.Contains(out, "before") {
		t.Errorf("list: exit %d\n%s%s", code, out, errOut)
	}
	dst := filepath.Join(t.TempDir(), "back.jpg")
	code, out, errOut = runCLI(t, "--addr", addr, "evidence", "get", id, sha, "--to", dst)
	got, _ := os.ReadFile(dst)
	if code != 0 || !bytes.Equal(got, data) {
		t.Errorf("get: exit %d, %d bytes\n%s%s", code, len(got), out, errOut)
	}
	code, _, errOut = runCLI(t, "--addr", addr, "evidence", "get", id, strings.Repeat("0", 64), "--to", dst)
	if code == 0 || !strings.Contains(errOut, "NotFound") {
		t.Errorf("get of an unknown sha: exit %d %s", code, errOut)
	}
	if got2, _ := os.ReadFile(dst); !bytes.Equal(got2, data) {
		t.Error("a failed get overwrote the file")
	}
	code, _, errOut = runCLI(t, "--addr", addr, "evidence", "upload", id, photo, "--stage", "lunch")
	if code == 0 || !strings.Contains(errOut, "report") {
		t.Errorf("unknown stage: exit %d %s", code, errOut)
	}
}
