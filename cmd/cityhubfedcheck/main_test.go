package main

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

func history(rids ...string) *pb.Case {
	c := &pb.Case{Version: uint64(len(rids))}
	for i, r := range rids {
		c.History = append(c.History, &pb.HistoryEntry{Version: uint64(i + 1), RequestId: r})
	}
	return c
}

func TestHistoryDense(t *testing.T) {
	if msg := historyDense(history("a", "b", "c")); msg != "" {
		t.Fatalf("dense history refused: %s", msg)
	}
	gap := history("a", "b", "c")
	gap.History[1].Version = 3
	repeated := history("a", "b", "a")
	short := history("a", "b")
	short.Version = 3
	for name, c := range map[string]*pb.Case{"gap": gap, "repeated request id": repeated, "version past history": short} {
		if msg := historyDense(c); msg == "" {
			t.Errorf("%s: accepted", name)
		}
	}
}

func testDriver(t *testing.T, extra string) *driver {
	t.Helper()
	o := options{units: map[string]string{}}
	for _, n := range []string{"city", "d-1", "s-1"} {
		o.nodes = append(o.nodes, &group{name: n, addrs: []string{"127.0.0.1:1"}})
	}
	if extra != "" {
		o.extra = filepath.Join(t.TempDir(), "extra")
		if err := os.WriteFile(o.extra, []byte(extra), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	d, err := newDriver(o, slog.New(slog.NewTextHandler(os.Stderr, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.close)
	return d
}

func TestExpectedNodes(t *testing.T) {
	d := testDriver(t, "")
	// Held by the street, reported at the district: the street and its
	// ancestors, not below.
	r := &caseRun{holder: d.byName["s-1"], reporter: d.byName["d-1"]}
	got := d.expected(r)
	if len(got) != 3 || !got["city"] || !got["d-1"] || !got["s-1"] {
		t.Fatalf("expected %v", got)
	}
	// Held by the city, reported at the street: the street keeps a copy.
	r = &caseRun{holder: d.byName["city"], reporter: d.byName["s-1"]}
	got = d.expected(r)
	if len(got) != 2 || !got["city"] || !got["s-1"] || got["d-1"] {
		t.Fatalf("expected %v", got)
	}
}

func TestReadExtra(t *testing.T) {
	d := testDriver(t, "x-1 d-1 d-1\n\nx-2 s-1 city\n")
	runs, err := d.readExtra()
	if err != nil || len(runs) != 2 || runs[1].id != "x-2" || runs[1].holder.name != "s-1" || runs[1].reporter.name != "city" {
		t.Fatalf("readExtra: %v %v", runs, err)
	}
	d = testDriver(t, "x-1 nowhere d-1\n")
	if _, err := d.readExtra(); err == nil || !strings.Contains(err.Error(), "bad line") {
		t.Fatalf("unknown node: %v", err)
	}
}
