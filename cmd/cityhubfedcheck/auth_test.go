package main

import (
	"os"
	"path/filepath"
	"testing"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

func TestSeatOf(t *testing.T) {
	for _, c := range []struct {
		req  any
		want seat
		name string
	}{
		{&pb.ReportCaseRequest{Role: pb.Role_ROLE_INSPECTOR}, seat{role: pb.Role_ROLE_INSPECTOR}, "fed-insp"},
		{&pb.ActRequest{Role: pb.Role_ROLE_SHIFT_LEADER, Actor: "x"}, seat{role: pb.Role_ROLE_SHIFT_LEADER}, "fed-lead"},
		{&pb.ActRequest{Role: pb.Role_ROLE_DISPATCHER}, seat{role: pb.Role_ROLE_DISPATCHER}, "fed-disp"},
		{&pb.ActRequest{Role: pb.Role_ROLE_HANDLING_UNIT, Actor: "320505-roads"}, seat{role: pb.Role_ROLE_HANDLING_UNIT, unit: "320505-roads"}, "fed-320505-roads"},
		{&pb.GetCaseRequest{CaseId: "x"}, readSeat, "fed-lead"},
		{&pb.FederationStatusRequest{}, readSeat, "fed-lead"},
	} {
		got := seatOf(c.req)
		if got != c.want || seatName(got) != c.name {
			t.Errorf("%T: seat %+v (%s), want %+v (%s)", c.req, got, seatName(got), c.want, c.name)
		}
	}
	if n := seatName(seat{role: pb.Role_ROLE_HANDLING_UNIT, unit: "a-very-long-unit-name-of-forty-characters"}); len(n) != 32 {
		t.Errorf("seat name %q: not cut to 32", n)
	}
}

func TestAdminPassword(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "city"), []byte("city-secret-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if pw, err := adminPassword(dir, "city"); err != nil || pw != "city-secret-1" {
		t.Fatalf("directory: %q %v", pw, err)
	}
	if _, err := adminPassword(dir, "d-320505"); err == nil {
		t.Fatal("a node without a file: no error")
	}
	if pw, err := adminPassword(filepath.Join(dir, "city"), "d-320505"); err != nil || pw != "city-secret-1" {
		t.Fatalf("one file for every node: %q %v", pw, err)
	}
}
