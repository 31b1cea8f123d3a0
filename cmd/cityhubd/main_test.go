package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestHelpAndVersion: --help prints the flags and is not a failure (the
// issue's "cityhubd --help exits 1"), --version prints one line naming the
// binary and its toolchain, and an unknown flag is an error.
func TestHelpAndVersion(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := run([]string{"--help"}, &out, &errOut); err != nil {
		t.Fatalf("--help: %v", err)
	}
	for _, want := range []string{"usage: cityhubd", "--config", "--version", "--raft-addr"} {
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
	if err := run([]string{"--no-such-flag"}, &out, &errOut); err == nil {
		t.Error("an unknown flag was accepted")
	}
}
