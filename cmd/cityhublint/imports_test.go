package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// repoRoot is the module root, two levels above this package.
const repoRoot = "../.."

// TestImportRule checks the repository against the import rule written in
// docs/ARCHITECTURE.md: every package in a layer, no import of a higher
// layer, no forbidden module linked, every package in the packages table.
func TestImportRule(t *testing.T) {
	findings, err := CheckImports(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range findings {
		t.Error(f)
	}
}

// TestImportRuleCatchesTheIssue puts back, on the real graph and the real
// rule, what issue 14 found: the state machine linking the spreadsheet
// library and the gateway, a node package importing a leader job, and a
// package nobody placed.
func TestImportRuleCatchesTheIssue(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join(repoRoot, docPath))
	if err != nil {
		t.Fatal(err)
	}
	rule, err := ParseRule(doc)
	if err != nil {
		t.Fatal(err)
	}
	pkgs, err := ListModule(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	if got := rule.Check(pkgs); len(got) != 0 {
		t.Fatalf("the repository already breaks the rule: %q", got)
	}
	i := slices.IndexFunc(pkgs, func(p ListedPackage) bool { return p.Path == "tiers/fsm" })
	j := slices.IndexFunc(pkgs, func(p ListedPackage) bool { return p.Path == "tiers/node" })
	if i < 0 || j < 0 {
		t.Fatalf("tiers/fsm or tiers/node not listed: %d %d", i, j)
	}
	pkgs[i].Imports = append(slices.Clone(pkgs[i].Imports), "tiers/export", "proto/cityhub/v1/gw")
	pkgs[i].Deps = append(slices.Clone(pkgs[i].Deps), "github.com/xuri/excelize/v2", "github.com/grpc-ecosystem/grpc-gateway/v2/runtime")
	pkgs[j].Imports = append(slices.Clone(pkgs[j].Imports), "federation/relay")
	pkgs = append(pkgs, ListedPackage{Path: "tiers/newthing"})
	got := rule.Check(pkgs)
	for _, want := range []string{
		"tiers/fsm (layer 4 state machine) imports proto/cityhub/v1/gw (layer 7 api)",
		"tiers/fsm (layer 4 state machine) links github.com/grpc-ecosystem/grpc-gateway/v2/runtime",
		"tiers/fsm (layer 4 state machine) links github.com/xuri/excelize/v2",
		"tiers/node (layer 5 node) imports federation/relay (layer 6 leader jobs)",
		"tiers/newthing: in no layer",
	} {
		if !slices.ContainsFunc(got, func(f string) bool { return strings.HasPrefix(f, want) }) {
			t.Errorf("no finding %q in %q", want, got)
		}
	}
	// tiers/export is below tiers/fsm, so importing it is allowed by the
	// layers; only the module it links is not.
	if slices.ContainsFunc(got, func(f string) bool { return strings.Contains(f, "imports tiers/export") }) {
		t.Errorf("an import of a lower layer reported: %q", got)
	}
	missing, err := ListedIn(doc, pkgs)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(missing, []string{"tiers/newthing: not in the packages table of " + docPath}) {
		t.Errorf("packages table check: %q", missing)
	}
}

const ruleDoc = "# doc\n\n## Packages\n\n| package | role |\n|---|---|\n" +
	"| `a` | a |\n| `b/c` | bc |\n| `testdata` (root package `cityhub`) | root |\n\n" +
	"## The import rule\n\nText.\n\n| layer | packages | never links |\n|---|---|---|\n" +
	"| 0 low | `cityhub`, `a` | `example.com/heavy` |\n" +
	"| 1 mid | `b/...` | |\n" +
	"| 2 top | `b/c`, `cmd/...` | |\n\n" +
	"## Next\n\n| not | this |\n|---|---|\n| `x` | y |\n"

func TestParseRule(t *testing.T) {
	r, err := ParseRule([]byte(ruleDoc))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Layers) != 3 || r.Layers[0].Name != "low" || r.Layers[2].Rank != 2 ||
		!slices.Equal(r.Layers[0].Patterns, []string{"cityhub", "a"}) || !slices.Equal(r.Layers[0].Never, []string{"example.com/heavy"}) ||
		len(r.Layers[1].Never) != 0 {
		t.Fatalf("parsed %+v", r.Layers)
	}
	for pkg, want := range map[string]int{"a": 0, "cityhub": 0, "b": 1, "b/d/e": 1, "b/c": 2, "cmd/x/y": 2} {
		if l, ok := r.LayerOf(pkg); !ok || l.Rank != want {
			t.Errorf("LayerOf(%q) = %d %v, want %d", pkg, l.Rank, ok, want)
		}
	}
	for _, pkg := range []string{"ab", "bc", "c", "x"} {
		if l, ok := r.LayerOf(pkg); ok {
			t.Errorf("LayerOf(%q) = %+v", pkg, l)
		}
	}
	for _, bad := range []string{
		"## The import rule\n\nno table\n",
		"## The import rule\n\n| l | p |\n|---|---|\n| low | `a` |\n",
		"## The import rule\n\n| l | p |\n|---|---|\n| 0 low | a |\n",
		"## Packages\n\n| a | b |\n|---|---|\n| `a` | a |\n",
	} {
		if _, err := ParseRule([]byte(bad)); err == nil {
			t.Errorf("ParseRule(%q) accepted", bad)
		}
	}
}

func TestRuleCheck(t *testing.T) {
	r, err := ParseRule([]byte(ruleDoc))
	if err != nil {
		t.Fatal(err)
	}
	pkgs := []ListedPackage{
		{Path: "cityhub"},
		{Path: "a", Imports: []string{"cityhub"}, Deps: []string{"example.com/heavyweight", "example.com/light"}},
		{Path: "b/d", Imports: []string{"a", "b/c"}},
		{Path: "b/c", Imports: []string{"b/d", "cmd/tool"}, Deps: []string{"example.com/heavy/sub"}},
		{Path: "cmd/tool", Imports: []string{"b/c"}},
		{Path: "lost"},
	}
	want := []string{
		"b/d (layer 1 mid) imports b/c (layer 2 top)",
		"lost: in no layer of the import rule (docs/ARCHITECTURE.md)",
	}
	if got := r.Check(pkgs); !slices.Equal(got, want) {
		t.Errorf("Check:\n got  %q\n want %q", got, want)
	}
	pkgs[1].Deps = append(pkgs[1].Deps, "example.com/heavy/v2")
	got := r.Check(pkgs)
	if !slices.Contains(got, "a (layer 0 low) links example.com/heavy/v2 (the layer never links example.com/heavy)") || len(got) != 3 {
		t.Errorf("forbidden module: %q", got)
	}
	missing, err := ListedIn([]byte(ruleDoc), pkgs)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"b/d: not in the packages table of docs/ARCHITECTURE.md", "cmd/tool: not in the packages table of docs/ARCHITECTURE.md", "lost: not in the packages table of docs/ARCHITECTURE.md"}; !slices.Equal(missing, want) {
		t.Errorf("ListedIn:\n got  %q\n want %q", missing, want)
	}
}

func TestRunImports(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"-imports", repoRoot}, &out, &errOut); code != 0 || out.Len() != 0 {
		t.Fatalf("exit %d, out %q, err %q", code, out.String(), errOut.String())
	}
	if code := run([]string{"-imports", t.TempDir()}, &out, &errOut); code != 2 {
		t.Fatalf("a directory without the document: exit %d", code)
	}
}
