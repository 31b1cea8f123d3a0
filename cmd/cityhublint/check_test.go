package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// writePkg writes files (name -> source) into a fresh temp dir.
func writePkg(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, src := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string // "line:col: substring", in order
	}{
		{
			name: "time.Now",
			src: `package p
import "time"
func f() time.Time { return time.Now() }
`,
			want: []string{"3:29: forbidden call time.Now in state machine package (leader must stamp it into the command)"},
		},
		{
			name: "all time functions",
			src: `package p
import "time"
func f(t0 time.Time) {
	_ = time.Since(t0)
	_ = time.Until(t0)
	<-time.After(1)
	_ = time.Tick(1)
	_ = time.NewTimer(1)
	_ = time.NewTicker(1)
	time.AfterFunc(1, func() {})
	time.Sleep(1)
}
`,
			want: []string{
				"4:6: forbidden call time.Since",
				"5:6: forbidden call time.Until",
				"6:4: forbidden call time.After",
				"7:6: forbidden call time.Tick",
				"8:6: forbidden call time.NewTimer",
				"9:6: forbidden call time.NewTicker",
				"10:2: forbidden call time.AfterFunc",
				"11:2: forbidden call time.Sleep",
			},
		},
		{
			name: "method value, not a call",
			src: `package p
import "time"
var clock = time.Now
`,
			want: []string{"3:13: forbidden call time.Now"},
		},
		{
			name: "renamed import",
			src: `package p
import t "time"
func f() t.Time { return t.Now() }
`,
			want: []string{"3:26: forbidden call time.Now"},
		},
		{
			name: "dot import",
			src: `package p
import . "time"
type S struct{ Now int }
func (S) Sleep() {}
func f(s S) { _ = Now(); _ = s.Now; s.Sleep(); _ = S{Now: 1} }
`,
			want: []string{"5:19: forbidden call time.Now"},
		},
		{
			name: "math/rand",
			src: `package p
import "math/rand"
func f() int { return rand.Int() }
`,
			want: []string{"2:8: forbidden import math/rand in state machine package"},
		},
		{
			name: "math/rand/v2 renamed, crypto/rand blank",
			src: `package p
import (
	r "math/rand/v2"
	_ "crypto/rand"
)
func f() int { return r.Int() }
`,
			want: []string{
				"3:2: forbidden import math/rand/v2",
				"4:2: forbidden import crypto/rand",
			},
		},
		{
			name: "os environment",
			src: `package p
import myos "os"
func f() {
	_ = myos.Getenv("X")
	_, _ = myos.LookupEnv("X")
	_ = myos.Environ()
	_, _ = myos.Hostname()
	_ = myos.Getpid()
}
`,
			want: []string{
				"4:6: forbidden call os.Getenv",
				"5:9: forbidden call os.LookupEnv",
				"6:6: forbidden call os.Environ",
				"7:9: forbidden call os.Hostname",
				"8:6: forbidden call os.Getpid",
			},
		},
		{
			name: "allowed time and os forms",
			src: `package p
import (
	"os"
	"time"
)
const d = 5 * time.Minute / time.Millisecond
var _ time.Duration = d
func f(ts time.Time, ms int64) (time.Time, bool) {
	u := time.UnixMilli(ms)
	v := time.Unix(ms, 0).UTC()
	_ = ts.Add(time.Second).Before(u) && ts.After(v) && ts.Sub(u) > 0
	_ = ts.UnixMilli()
	_ = os.ErrNotExist
	return u, ts.Equal(v)
}
`,
		},
		{
			name: "local variable shadows import",
			src: `package p
import "time"
type clock struct{}
func (clock) Now() time.Time { return time.Time{} }
func f(time clock) { _ = time.Now() }
func g() { time := clock{}; _ = time.Now() }
`,
		},
		{
			name: "same name from another package",
			src: `package p
import "example.com/clock/time"
func f() { time.Now() }
`,
		},
		{
			name: "allow on same line",
			src: `package p
import "time"
func f() { _ = time.Now() } //cityhublint:allow only used for a log line
`,
		},
		{
			name: "allow on line above",
			src: `package p
import "time"
func f() {
	//cityhublint:allow tracing span, never reaches state
	_ = time.Now()
	_ = time.Now()
}
`,
			want: []string{"6:6: forbidden call time.Now"},
		},
		{
			name: "trailing allow does not cover next line",
			src: `package p
import "time"
func f() {
	_ = time.Now() //cityhublint:allow tracing
	_ = time.Now()
}
`,
			want: []string{"5:6: forbidden call time.Now"},
		},
		{
			name: "allow on import",
			src: `package p
import "math/rand" //cityhublint:allow seeded from the command, see Apply
var _ = rand.New
`,
		},
		{
			name: "allow without reason is an error and suppresses nothing",
			src: `package p
import "time"
func f() {
	//cityhublint:allow
	_ = time.Now()
	_ = time.Now() //cityhublint:allow   
}
`,
			want: []string{
				"4:2: cityhublint:allow directive needs a reason",
				"5:6: forbidden call time.Now",
				"6:6: forbidden call time.Now",
				"6:17: cityhublint:allow directive needs a reason",
			},
		},
		{
			name: "other directives are not the allow directive",
			src: `package p
import "time"
func f() {
	//cityhublint:allowed
	_ = time.Now()
}
`,
			want: []string{"5:6: forbidden call time.Now"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := writePkg(t, map[string]string{
				"p.go": tc.src,
				// Test files are not checked.
				"p_test.go": "package p\nimport \"time\"\nvar _ = time.Now()\n",
			})
			got, err := Check(dir)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %d findings, want %d:\n%s", len(got), len(tc.want), fmtFindings(got))
			}
			for i, w := range tc.want {
				pos, msg, _ := strings.Cut(w, ": ")
				g := got[i]
				if filepath.Base(g.Pos.Filename) != "p.go" {
					t.Errorf("finding %d in %s, want p.go", i, g.Pos.Filename)
				}
				if gotPos := strings.Join([]string{itoa(g.Pos.Line), itoa(g.Pos.Column)}, ":"); gotPos != pos {
					t.Errorf("finding %d at %s, want %s: %s", i, gotPos, pos, g)
				}
				if !strings.Contains(g.Message, msg) {
					t.Errorf("finding %d = %q, want it to contain %q", i, g.Message, msg)
				}
			}
		})
	}
}

func TestCheckErrors(t *testing.T) {
	if _, err := Check(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("missing dir: want error")
	}
	if _, err := Check(writePkg(t, map[string]string{"a_test.go": "package p\n"})); err == nil {
		t.Error("dir without non-test Go files: want error")
	}
	if _, err := Check(writePkg(t, map[string]string{"a.go": "package p\nfunc {\n"})); err == nil {
		t.Error("unparsable file: want error")
	}
}

func TestRun(t *testing.T) {
	clean := writePkg(t, map[string]string{"a.go": "package p\nimport \"time\"\nvar _ = time.Unix(0, 0)\n"})
	dirty := writePkg(t, map[string]string{"a.go": "package p\nimport \"time\"\nvar _ = time.Now()\n"})
	broken := writePkg(t, map[string]string{"a.go": "package p\nfunc {\n"})
	tests := []struct {
		name       string
		args       []string
		code       int
		wantStdout string
	}{
		{"no args", nil, 2, ""},
		{"bad flag", []string{"-nope"}, 2, ""},
		{"clean", []string{clean}, 0, ""},
		{"dirty", []string{clean, dirty}, 1,
			filepath.Join(dirty, "a.go") + ":3:9: forbidden call time.Now in state machine package (leader must stamp it into the command)\n"},
		{"broken wins", []string{dirty, broken}, 2,
			filepath.Join(dirty, "a.go") + ":3:9: forbidden call time.Now in state machine package (leader must stamp it into the command)\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(tc.args, &stdout, &stderr); code != tc.code {
				t.Errorf("exit %d, want %d (stderr %q)", code, tc.code, stderr.String())
			}
			if stdout.String() != tc.wantStdout {
				t.Errorf("stdout %q, want %q", stdout.String(), tc.wantStdout)
			}
			if tc.code != 2 && stderr.Len() != 0 {
				t.Errorf("unexpected stderr %q", stderr.String())
			}
		})
	}
}

// TestStateMachinePackagesClean runs the lint on the real state machine
// packages.
func TestStateMachinePackagesClean(t *testing.T) {
	for _, dir := range []string{"../../tiers/workflow", "../../tiers/fsm"} {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			if _, err := os.Stat(dir); os.IsNotExist(err) {
				t.Skipf("%s does not exist", dir)
			}
			got, err := Check(dir)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 0 {
				t.Errorf("%s has %d findings:\n%s", dir, len(got), fmtFindings(got))
			}
		})
	}
}

func fmtFindings(fs []Finding) string {
	var b strings.Builder
	for _, f := range fs {
		b.WriteString(f.String())
		b.WriteByte('\n')
	}
	return b.String()
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestHelpAndVersion: --help and --version exit 0 and print to stdout;
// -imports keeps its one dash (the standard library's spelling).
func TestHelpAndVersion(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"--help"}, &out, &errOut); code != 0 || !strings.Contains(out.String(), "--imports") {
		t.Errorf("--help: exit %d, printed %q", code, out.String())
	}
	out.Reset()
	if code := run([]string{"--version"}, &out, &errOut); code != 0 || !strings.HasPrefix(out.String(), "cityhublint ") || strings.Count(out.String(), "\n") != 1 {
		t.Errorf("--version: exit %d, printed %q", code, out.String())
	}
	out.Reset()
	if code := run([]string{"-imports", t.TempDir()}, &out, &errOut); code != 2 {
		t.Errorf("-imports of a directory without a module: exit %d, want 2", code)
	}
}
