package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/cityhub/cityhub/cmd/internal/cli"
)

// TestCommandLine: --help and --version exit 0 without driving anything;
// the repeatable --node and --unit flags and the others keep their names,
// spellings and defaults (scripts/e2e-federation.sh); a chain without
// --grid or a node without --unit is a usage error (exit 2).
func TestCommandLine(t *testing.T) {
	exec := func(args ...string) (*options, string, error) {
		var got *options
		var out bytes.Buffer
		err := cli.Execute(context.Background(), rootCmd(func(o options) error { got = &o; return nil }), args, &out, &bytes.Buffer{})
		return got, out.String(), err
	}
	got, out, err := exec("--help")
	if err != nil || got != nil {
		t.Fatalf("--help: %v, ran %v", err, got)
	}
	for _, f := range []string{"--node", "--unit", "--grid", "--cases", "--spread", "--timeout", "--settle", "--extra", "--run", "--ca", "--admin-password-file", "--admin-user", "--version"} {
		if !strings.Contains(out, f) {
			t.Errorf("--help lacks %s", f)
		}
	}
	got, out, err = exec("--version")
	if err != nil || got != nil || !strings.HasPrefix(out, "cityhubfedcheck ") || strings.Count(out, "\n") != 1 {
		t.Errorf("--version: %v, ran %v, printed %q", err, got, out)
	}

	got, _, err = exec("--node", "city=127.0.0.1:17101,127.0.0.1:17102", "--unit", "city=city-water",
		"--node=d-320505=127.0.0.1:17111", "--unit", "d-320505=320505-roads", "--grid", "320505001001007", "--cases", "30", "--spread", "5s")
	if err != nil || got == nil {
		t.Fatalf("a chain of two: %v", err)
	}
	if len(got.nodes) != 2 || got.nodes[0].name != "city" || strings.Join(got.nodes[0].addrs, " ") != "127.0.0.1:17101 127.0.0.1:17102" ||
		got.nodes[1].name != "d-320505" || got.units["d-320505"] != "320505-roads" || got.units["city"] != "city-water" {
		t.Errorf("chain: %+v %v", got.nodes, got.units)
	}
	if got.grid != "320505001001007" || got.cases != 30 || got.spread != 5*time.Second || got.timeout != 150*time.Second ||
		got.settle != 60*time.Second || got.adminUser != "admin" || got.runID == "" {
		t.Errorf("options: %+v", got)
	}
	for _, bad := range [][]string{
		{"--node", "city=127.0.0.1:1", "--unit", "city=u"},                     // no --grid
		{"--node", "city=127.0.0.1:1", "--grid", "320505001001007"},            // no --unit
		{"--node", "city", "--unit", "city=u", "--grid", "320505001001007"},    // no addresses
		{"--node", "city=127.0.0.1:1", "--unit", "city=u", "--grid", "1", "x"}, // an argument
	} {
		got, _, err := exec(bad...)
		if code := cli.Status("cityhubfedcheck", err, io.Discard); code != 2 || got != nil {
			t.Errorf("%q: %v, exit status %d, ran %v; want a usage error", bad, err, code, got != nil)
		}
	}
}
