package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/cityhub/cityhub/cmd/internal/cli"
)

// TestCommandLine: --help and --version exit 0 without starting anything;
// the flags keep their names and defaults (make run passes ARGS through),
// and the standard library's one-dash spelling still works.
func TestCommandLine(t *testing.T) {
	exec := func(args ...string) (options, bool, string, error) {
		var got options
		started := false
		var out, errOut bytes.Buffer
		err := cli.Execute(context.Background(), rootCmd(func(_ context.Context, o options) error {
			got, started = o, true
			return nil
		}, &out, &errOut), args, &out, &errOut)
		return got, started, out.String(), err
	}
	_, started, out, err := exec("--help")
	if err != nil || started {
		t.Fatalf("--help: %v, started %v", err, started)
	}
	for _, f := range []string{"--data", "--rate", "--duration", "--replicas", "--tls", "--port-base", "--no-backlog", "--version"} {
		if !strings.Contains(out, f) {
			t.Errorf("--help lacks %s:\n%s", f, out)
		}
	}
	_, started, out, err = exec("--version")
	if err != nil || started || !strings.HasPrefix(out, "cityhubdemo ") || strings.Count(out, "\n") != 1 {
		t.Errorf("--version: %v, started %v, printed %q", err, started, out)
	}

	o, started, _, err := exec()
	if err != nil || !started {
		t.Fatalf("no flags: %v, started %v", err, started)
	}
	if o.dataDir != "data/demo" || o.rate != 4 || o.duration != 0 || o.replicas != 1 || o.tls || o.portBase != 7000 || o.noBacklog {
		t.Errorf("defaults: %+v", o)
	}
	o, _, _, err = exec("--data", "x", "--rate", "2.5", "--duration=1m", "--replicas", "3", "--tls", "-port-base", "20000", "-no-backlog")
	if err != nil {
		t.Fatal(err)
	}
	if o.dataDir != "x" || o.rate != 2.5 || o.duration != time.Minute || o.replicas != 3 || !o.tls || o.portBase != 20000 || !o.noBacklog {
		t.Errorf("set: %+v", o)
	}
	if _, _, _, err := exec("--rate", "fast"); cli.Status("cityhubdemo", err, &bytes.Buffer{}) != 2 {
		t.Errorf("--rate fast: %v, want a usage error", err)
	}
}
