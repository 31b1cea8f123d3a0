// Package cli is the command line every cityhub program shares (cobra): a
// root command with --help and --version (the build's version line, from
// package version), flags also accepted after one dash as the programs'
// earlier standard-library flags were (`cityhublint -imports .`), and the
// exit statuses: 0 for success, --help and --version; 2 for a usage
// error; the code of an *ExitError; 1 for any other failure.
//
// cityhubctl builds its own root (subcommands, its own exit statuses) and
// shares only the version line.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cityhub/cityhub/cmd/internal/version"
)

// Root returns the root command of a program without subcommands: no
// positional arguments (set Args to take some), errors and usage left to
// Status, --version printing "<program> <version line>".
func Root(program, short, long string) *cobra.Command {
	c := &cobra.Command{
		Use:           program,
		Short:         short,
		Long:          long,
		Version:       version.Read().String(),
		SilenceErrors: true,
		SilenceUsage:  true,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 {
				return Usagef("unexpected argument %q", args[0])
			}
			return nil
		},
	}
	c.SetVersionTemplate("{{.Name}} {{.Version}}\n")
	c.Flags().Bool("version", false, "print the version (module version, VCS revision and time, toolchain) and exit")
	c.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return UsageError{err} })
	return c
}

// UsageError is a mistake in the command line: exit status 2.
type UsageError struct{ Err error }

func (e UsageError) Error() string { return e.Err.Error() }
func (e UsageError) Unwrap() error { return e.Err }

// Usagef returns a UsageError.
func Usagef(format string, args ...any) error {
	return UsageError{fmt.Errorf(format, args...)}
}

// ExitError ends the program with Code; Err, when set, is printed.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}
func (e *ExitError) Unwrap() error { return e.Err }

// Exit returns an *ExitError with code wrapping err (nil: nothing printed).
func Exit(code int, err error) error { return &ExitError{Code: code, Err: err} }

// Execute runs root on args with its output on stdout and stderr.
func Execute(ctx context.Context, root *cobra.Command, args []string, stdout, stderr io.Writer) error {
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetArgs(SingleDash(root, args))
	return root.ExecuteContext(ctx)
}

// Status prints err, if any, on stderr as "<program>: <err>" (a usage
// error with a pointer to --help) and returns the exit status it calls for.
func Status(program string, err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		if ee.Err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", program, ee.Err)
		}
		return ee.Code
	}
	var ue UsageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "%s: %v\nrun '%s --help' for usage\n", program, err, program)
		return 2
	}
	fmt.Fprintf(stderr, "%s: %v\n", program, err)
	return 1
}

// SingleDash rewrites "-name" and "-name=value" to "--name…" for every
// flag of root whose name is longer than one letter, up to a "--": the
// programs' flags were the standard library's, which take one dash or two,
// and scripts may still pass one. A one-letter flag or shorthand is left
// to pflag.
func SingleDash(root *cobra.Command, args []string) []string {
	root.InitDefaultHelpFlag()
	root.InitDefaultVersionFlag()
	out := make([]string, len(args))
	copy(out, args)
	for i, a := range out {
		if a == "--" {
			break
		}
		if len(a) < 3 || a[0] != '-' || a[1] == '-' {
			continue
		}
		name, _, _ := strings.Cut(a[1:], "=")
		if len(name) > 1 && root.Flags().Lookup(name) != nil {
			out[i] = "-" + a
		}
	}
	return out
}
