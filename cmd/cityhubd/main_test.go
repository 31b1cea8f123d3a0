package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/cityhub/cityhub/cmd/internal/cli"
	"github.com/cityhub/cityhub/tiers/node"
)

// TestHelpAndVersion: --help prints the flags and is not a failure (the
// issue's "cityhubd --help exits 1"), --version prints one line naming the
// binary and its toolchain, and an unknown flag is a usage error (exit 2).
func TestHelpAndVersion(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := run([]string{"--help"}, &out, &errOut); err != nil {
		t.Fatalf("--help: %v", err)
	}
	for _, want := range []string{"Usage:", "cityhubd [flags]", "--config", "--rejoin", "--version", "--raft-addr", "--topology", "--fed-node", "--catalogue", "--log-level"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("--help output lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	if err := run([]string{"--version"}, &out, &errOut); err != nil {
		t.Fatalf("--version: %v", err)
	}
	if line := out.String(); !strings.HasPrefix(line, "cityhubd ") || !strings.Contains(line, " go1.") || strings.Count(line, "\n") != 1 {
		t.Errorf("--version = %q, want one line \"cityhubd <version> ... go1.x os/arch\"", line)
	}
	err := run([]string{"--no-such-flag"}, &out, &errOut)
	if code := cli.Status("cityhubd", err, &errOut); code != 2 {
		t.Errorf("an unknown flag: %v, exit status %d, want 2", err, code)
	}
	err = run([]string{"extra"}, &out, &errOut)
	if code := cli.Status("cityhubd", err, &errOut); code != 2 {
		t.Errorf("a positional argument: %v, exit status %d, want 2", err, code)
	}
}

// TestFlagsReachTheConfiguration: the flags bound to configuration keys
// (config.BindFlags) still override the file through the cobra command: a
// bad --tier is refused by the configuration's validation, naming its key,
// before anything starts (exit status 1, not a usage error).
func TestFlagsReachTheConfiguration(t *testing.T) {
	var out, errOut bytes.Buffer
	err := run([]string{"--node-id", "n1", "--tier", "province", "--data-dir", t.TempDir()}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "node.tier") {
		t.Fatalf("--tier province: %v, want a configuration error naming node.tier", err)
	}
	if code := cli.Status("cityhubd", err, &errOut); code != 1 {
		t.Errorf("exit status %d, want 1", code)
	}
}

// TestDamagedExitStatus: a refusal to start on damaged data exits 3 (what
// RestartPreventExitStatus names); other failures exit 1.
func TestDamagedExitStatus(t *testing.T) {
	var errOut bytes.Buffer
	if code := cli.Status("cityhubd", withExitStatus(fmt.Errorf("state store: %w", node.ErrDamaged)), &errOut); code != exitDamaged {
		t.Errorf("damaged data: exit status %d, want %d", code, exitDamaged)
	}
	if !strings.Contains(errOut.String(), "cityhubd: state store:") {
		t.Errorf("damaged data printed %q", errOut.String())
	}
	if code := cli.Status("cityhubd", withExitStatus(errors.New("grpc.addr: in use")), &errOut); code != 1 {
		t.Errorf("another failure: exit status %d, want 1", code)
	}
}

// TestGCPercent: node.gc_percent reaches the runtime; GOGC set in the
// environment, or 0, leaves the runtime's setting alone.
func TestGCPercent(t *testing.T) {
	orig := debug.SetGCPercent(100)
	defer debug.SetGCPercent(orig)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, tc := range []struct {
		percent int
		gogc    string
		want    int
	}{
		{200, "", 200},
		{300, "150", 100}, // GOGC wins: cityhubd does not touch it
		{0, "", 100},
	} {
		debug.SetGCPercent(100)
		setGCPercent(tc.percent, tc.gogc, logger)
		if got := debug.SetGCPercent(100); got != tc.want {
			t.Errorf("gc_percent %d, GOGC %q: the runtime runs at %d, want %d", tc.percent, tc.gogc, got, tc.want)
		}
	}
}
