package cli

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

func TestSingleDash(t *testing.T) {
	root := Root("prog", "", "")
	root.Flags().String("imports", "", "")
	root.Flags().BoolP("json", "j", false, "")
	got := SingleDash(root, []string{"-imports", ".", "-imports=x", "--imports", "-j", "-json", "-version", "-help", "-nope", "-", "--", "-json"})
	want := []string{"--imports", ".", "--imports=x", "--imports", "-j", "--json", "--version", "--help", "-nope", "-", "--", "-json"}
	if !slices.Equal(got, want) {
		t.Errorf("SingleDash:\n got %q\nwant %q", got, want)
	}
}

// TestRoot: --help and --version exit 0 on stdout; a bad flag or an
// argument is a usage error (2); an ExitError keeps its code; any other
// error is 1.
func TestRoot(t *testing.T) {
	exec := func(fail error, args ...string) (string, int, string) {
		root := Root("prog", "does things", "prog does things.")
		root.Flags().Int("n", 1, "how many")
		root.RunE = func(*cobra.Command, []string) error { return fail }
		var out, errOut bytes.Buffer
		code := Status("prog", Execute(context.Background(), root, args, &out, &errOut), &errOut)
		return out.String(), code, errOut.String()
	}
	if out, code, _ := exec(nil, "--help"); code != 0 || !strings.Contains(out, "prog does things.") || !strings.Contains(out, "--version") {
		t.Errorf("--help: %d %q", code, out)
	}
	if out, code, _ := exec(nil, "--version"); code != 0 || !strings.HasPrefix(out, "prog ") || strings.Count(out, "\n") != 1 {
		t.Errorf("--version: %d %q", code, out)
	}
	for _, args := range [][]string{{"--n", "x"}, {"--nope"}, {"arg"}} {
		if _, code, errOut := exec(nil, args...); code != 2 || !strings.Contains(errOut, "prog --help") {
			t.Errorf("%q: exit %d, stderr %q; want 2 and a pointer to --help", args, code, errOut)
		}
	}
	if _, code, errOut := exec(Exit(3, errors.New("damaged")), "--n", "2"); code != 3 || errOut != "prog: damaged\n" {
		t.Errorf("ExitError: %d %q", code, errOut)
	}
	if _, code, errOut := exec(Exit(1, nil)); code != 1 || errOut != "" {
		t.Errorf("silent ExitError: %d %q", code, errOut)
	}
	if _, code, errOut := exec(errors.New("boom")); code != 1 || errOut != "prog: boom\n" {
		t.Errorf("error: %d %q", code, errOut)
	}
	if _, code, _ := exec(nil); code != 0 {
		t.Errorf("success: %d", code)
	}
}
