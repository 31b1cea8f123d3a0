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

// TestCommandLine: --help and --version exit 0 without sending anything;
// the flags keep their names and defaults (scripts/bench-tier.sh), and an
// empty --addrs takes the protocol's default address.
func TestCommandLine(t *testing.T) {
	t.Setenv("CITYHUB_TOKEN", "")
	t.Setenv("CITYHUB_PASSWORD", "")
	type call struct {
		o       options
		backlog int64
	}
	exec := func(args ...string) (*call, string, error) {
		var got *call
		var out bytes.Buffer
		err := cli.Execute(context.Background(), rootCmd(func(o options, backlog int64, _ io.Writer) error {
			got = &call{o, backlog}
			return nil
		}, &out), args, &out, &bytes.Buffer{})
		return got, out.String(), err
	}
	got, out, err := exec("--help")
	if err != nil || got != nil {
		t.Fatalf("--help: %v, ran %v", err, got)
	}
	for _, f := range []string{"--proto", "--addrs", "--clients", "--duration", "--requests", "--warmup", "--timeout", "--jurisdiction", "--json", "--token", "--user", "--password", "--backlog", "--version"} {
		if !strings.Contains(out, f) {
			t.Errorf("--help lacks %s", f)
		}
	}
	got, out, err = exec("--version")
	if err != nil || got != nil || !strings.HasPrefix(out, "cityhubload ") || strings.Count(out, "\n") != 1 {
		t.Errorf("--version: %v, ran %v, printed %q", err, got, out)
	}

	got, _, err = exec()
	if err != nil || got == nil {
		t.Fatalf("no flags: %v", err)
	}
	if o := got.o; o.proto != "grpc" || strings.Join(o.addrs, ",") != "127.0.0.1:7101" || o.clients != 1 || o.duration != 10*time.Second ||
		o.requests != 0 || o.warmup != 0 || o.timeout != 10*time.Second || o.jurisdiction != "320582" || o.json || got.backlog != 0 {
		t.Errorf("defaults: %+v", got)
	}
	got, _, err = exec("--proto", "rest", "--clients", "64", "--duration", "20s", "--warmup", "3s", "--backlog", "1000", "-json")
	if err != nil || got == nil {
		t.Fatal(err)
	}
	if o := got.o; o.proto != "rest" || strings.Join(o.addrs, ",") != "http://127.0.0.1:7201" || o.clients != 64 || o.duration != 20*time.Second ||
		o.warmup != 3*time.Second || !o.json || got.backlog != 1000 {
		t.Errorf("set: %+v", got)
	}
	got, _, _ = exec("--addrs", " 127.0.0.1:7101, 127.0.0.1:7102 ,")
	if got == nil || strings.Join(got.o.addrs, ",") != "127.0.0.1:7101,127.0.0.1:7102" {
		t.Errorf("--addrs list: %+v", got)
	}
}

// TestBacklogNeedsGRPC: --backlog over REST is refused with exit status 2
// before anything is dialled.
func TestBacklogNeedsGRPC(t *testing.T) {
	err := load(options{proto: "rest", clients: 1}, 10, io.Discard)
	if code := cli.Status("cityhubload", err, io.Discard); code != 2 {
		t.Errorf("--backlog over rest: %v, exit status %d, want 2", err, code)
	}
}
