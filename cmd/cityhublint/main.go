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
// With -imports ROOT it checks instead the module at ROOT against the import
// rule written in ROOT/docs/ARCHITECTURE.md ("The import rule": the layers,
// the packages in each, the modules a layer and those below never link) and
// that every package is named in that document's packages table (imports.go).
// `make lint` runs `cityhublint -imports .`; TestImportRule runs the same on
// the repository.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/cityhub/cityhub/cmd/internal/version"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("cityhublint", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: cityhublint dir [dir ...] | cityhublint -imports ROOT")
		fmt.Fprintln(stderr, "Reports nondeterministic calls (clock, randomness, environment) in Raft state machine packages;")
		fmt.Fprintln(stderr, "with -imports, imports against the layers of ROOT/docs/ARCHITECTURE.md (\"The import rule\").")
	}
	showVersion := version.Flag(fs)
	imports := fs.String("imports", "", "check the module at this root against the import rule of its docs/ARCHITECTURE.md instead")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *showVersion {
		version.Print(stdout, "cityhublint")
		return 0
	}
	if *imports != "" {
		findings, err := CheckImports(*imports)
		if err != nil {
			fmt.Fprintf(stderr, "cityhublint: %v\n", err)
			return 2
		}
		for _, f := range findings {
			fmt.Fprintln(stdout, f)
		}
		if len(findings) > 0 {
			return 1
		}
		return 0
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}

	status := 0
	for _, dir := range fs.Args() {
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
	return status
}
