// Command cityhublint is a small static check that keeps the Raft state
// machine deterministic (after the Nomad/Consul lint that forbids time.Now in
// the FSM). It is run by `make lint` as
//
//	go run ./cmd/cityhublint ./tiers/workflow ./tiers/fsm ./tiers/store
//
// For each package directory given, it parses every non-test .go file in
// that directory (not subdirectories, and regardless of build constraints)
// and reports:
//
//   - references to time.Now, time.Since, time.Until, time.After, time.Tick,
//     time.NewTimer, time.NewTicker, time.AfterFunc and time.Sleep;
//   - any import of math/rand, math/rand/v2 or crypto/rand;
//   - references to os.Getenv, os.LookupEnv, os.Environ, os.Hostname and
//     os.Getpid.
//
// Any reference is reported, not only calls, so `now := time.Now` is caught.
// Package names are resolved through each file's imports, so renamed imports
// (t "time") and dot imports are handled. A local variable, parameter or
// other declaration in the same file that shadows the import name (a
// parameter called time, say) is recognised and not flagged; the analysis is
// purely syntactic (no type checking), so anything subtler than that is not.
//
// Not checked: iteration over a map, whose random order is a classic source
// of nondeterminism when it leaks into output or state, cannot be told apart
// from harmless iteration without much deeper analysis, so nothing is
// flagged for maps; reviewers must watch for it. Other node-local inputs
// (time.LoadLocation, os.ReadFile, network access, ...) are not checked
// either.
//
// Escape hatch: a line comment
//
//	//cityhublint:allow <reason>
//
// on the same line as the finding, or alone on the line above it, suppresses
// it. The reason is required; a directive without one is reported as an error
// and suppresses nothing.
//
// Findings are printed as
//
//	file:line:col: forbidden call time.Now in state machine package (leader must stamp it into the command)
//
// and the exit status is 1 if there are any, 0 (and no output) otherwise,
// and 2 on usage errors, unreadable directories or unparsable files.
//
// With --imports ROOT (or -imports: one dash works too) it checks instead the module at ROOT against the import
// rule written in ROOT/docs/ARCHITECTURE.md ("The import rule": the layers,
// the packages in each, the modules a layer and those below never link) and
// that every package is named in that document's packages table (imports.go).
// `make lint` runs `cityhublint --imports .`; TestImportRule runs the same on
// the repository.
package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/cityhub/cityhub/cmd/internal/cli"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes one command line and returns the exit status: 0 clean (and
// for --help and --version), 1 findings, 2 usage errors and unreadable or
// unparsable input.
func run(args []string, stdout, stderr io.Writer) int {
	var imports string
	status := 0
	root := cli.Root("cityhublint", "Keep the Raft state machine deterministic and the packages in their layers",
		`usage: cityhublint dir [dir ...] | cityhublint --imports ROOT

Reports nondeterministic calls (clock, randomness, environment) in Raft
state machine packages; with --imports (or -imports), imports against the
layers of ROOT/docs/ARCHITECTURE.md ("The import rule").

Exit status: 0 no findings, 1 findings, 2 usage errors, unreadable
directories or unparsable files.`)
	root.Use = "cityhublint dir [dir ...] | cityhublint --imports ROOT"
	root.Args = cobra.ArbitraryArgs
	root.Flags().StringVar(&imports, "imports", "", "check the module at this root against the import rule of its docs/ARCHITECTURE.md instead")
	root.RunE = func(cmd *cobra.Command, dirs []string) error {
		if imports != "" {
			findings, err := CheckImports(imports)
			if err != nil {
				return cli.Exit(2, err)
			}
			for _, f := range findings {
				fmt.Fprintln(stdout, f)
			}
			if len(findings) > 0 {
				status = 1
			}
			return nil
		}
		if len(dirs) == 0 {
			return cli.Usagef("no package directory given")
		}
		for _, dir := range dirs {
			findings, err := Check(dir)
			if err != nil {
				fmt.Fprintf(stderr, "cityhublint: %v\n", err)
				status = 2
				continue
			}
			for _, f := range findings {
				fmt.Fprintln(stdout, f)
			}
			if len(findings) > 0 && status == 0 {
				status = 1
			}
		}
		return nil
	}
	if err := cli.Execute(context.Background(), root, args, stdout, stderr); err != nil {
		return cli.Status("cityhublint", err, stderr)
	}
	return status
}
