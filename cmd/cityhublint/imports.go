package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// The import rule (docs/ARCHITECTURE.md, "The import rule") is read from
// the document itself, so the written rule and the enforced one cannot
// drift apart: the section's table gives every package of the module a
// layer, and a package may import only packages of its own layer or a lower
// one. A layer may also name modules that its packages never link, directly
// or through anything they import.

// docPath is the architecture document, relative to the module root.
const docPath = "docs/ARCHITECTURE.md"

// Layer is one row of the import rule's table.
type Layer struct {
	Rank     int
	Name     string
	Patterns []string // module-relative package paths; "x/..." is x and everything under it; "cityhub" is the module root
	Never    []string // module paths no package of this layer links, directly or through its imports
}

// Rule is the import rule: its layers, lowest first.
type Rule struct{ Layers []Layer }

// ListedPackage is what the rule needs of `go list -json`: a package's
// module-relative path ("cityhub" for the root), its non-test imports within
// the module and every package it links.
type ListedPackage struct {
	Path    string
	Imports []string // module-relative
	Deps    []string // full import paths
}

var (
	backticked = regexp.MustCompile("`([^`]+)`")
	layerHead  = regexp.MustCompile(`^(\d+)\s+(.+)$`)
)

// tableAfter returns the cells of the rows of the first Markdown table after
// the heading line that starts with heading (header and separator rows
// skipped), stopping at the next heading.
func tableAfter(doc []byte, heading string) ([][]string, error) {
	sc := bufio.NewScanner(bytes.NewReader(doc))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	in, seen := false, false
	var rows [][]string
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") {
			if in {
				break
			}
			in = strings.HasPrefix(line, heading)
			continue
		}
		if !in {
			continue
		}
		if !strings.HasPrefix(line, "|") {
			if seen {
				break // the table ended
			}
			continue
		}
		if !seen { // header row
			seen = true
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		if strings.Trim(cells[0], " -:") == "" {
			continue // separator row
		}
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		rows = append(rows, cells)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("no table under %q", heading)
	}
	return rows, nil
}

// ParseRule reads the import rule from the architecture document: the table
// under "## The import rule", one row per layer: "N name", the packages in
// backticks, the modules never linked in backticks.
func ParseRule(doc []byte) (*Rule, error) {
	rows, err := tableAfter(doc, "## The import rule")
	if err != nil {
		return nil, fmt.Errorf("import rule: %w", err)
	}
	r := &Rule{}
	for _, cells := range rows {
		if len(cells) < 2 {
			return nil, fmt.Errorf("import rule: row %q: want layer, packages[, never links]", strings.Join(cells, "|"))
		}
		m := layerHead.FindStringSubmatch(cells[0])
		if m == nil {
			return nil, fmt.Errorf("import rule: layer %q does not start with its number", cells[0])
		}
		rank, _ := strconv.Atoi(m[1])
		l := Layer{Rank: rank, Name: m[2]}
		for _, s := range backticked.FindAllStringSubmatch(cells[1], -1) {
			l.Patterns = append(l.Patterns, s[1])
		}
		if len(cells) > 2 {
			for _, s := range backticked.FindAllStringSubmatch(cells[2], -1) {
				l.Never = append(l.Never, s[1])
			}
		}
		if len(l.Patterns) == 0 {
			return nil, fmt.Errorf("import rule: layer %q names no package", cells[0])
		}
		r.Layers = append(r.Layers, l)
	}
	return r, nil
}

// LayerOf returns the layer of a module-relative package path; the most
// specific pattern wins (an exact path before "x/...", a longer prefix
// before a shorter one).
func (r *Rule) LayerOf(pkg string) (Layer, bool) {
	best, bestLen, found := Layer{}, -1, false
	for _, l := range r.Layers {
		for _, p := range l.Patterns {
			n := -1
			if p == pkg {
				n = len(p) + 1
			} else if prefix, ok := strings.CutSuffix(p, "/..."); ok && (pkg == prefix || strings.HasPrefix(pkg, prefix+"/")) {
				n = len(prefix)
			}
			if n > bestLen {
				best, bestLen, found = l, n, true
			}
		}
	}
	return best, found
}

// Check returns the violations of the rule, sorted: a package with no
// layer, an import of a higher layer, a forbidden module linked.
func (r *Rule) Check(pkgs []ListedPackage) []string {
	var out []string
	for _, p := range pkgs {
		l, ok := r.LayerOf(p.Path)
		if !ok {
			out = append(out, fmt.Sprintf("%s: in no layer of the import rule (%s)", p.Path, docPath))
			continue
		}
		for _, imp := range p.Imports {
			il, ok := r.LayerOf(imp)
			if ok && il.Rank > l.Rank {
				out = append(out, fmt.Sprintf("%s (layer %d %s) imports %s (layer %d %s)", p.Path, l.Rank, l.Name, imp, il.Rank, il.Name))
			}
		}
		for _, mod := range l.Never {
			for _, d := range p.Deps {
				if d == mod || strings.HasPrefix(d, mod+"/") {
					out = append(out, fmt.Sprintf("%s (layer %d %s) links %s (the layer never links %s)", p.Path, l.Rank, l.Name, d, mod))
					break
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

// ListedIn returns the packages that the document's "## Packages" table
// does not name (in backticks, in its first column).
func ListedIn(doc []byte, pkgs []ListedPackage) ([]string, error) {
	rows, err := tableAfter(doc, "## Packages")
	if err != nil {
		return nil, fmt.Errorf("packages table: %w", err)
	}
	named := map[string]bool{}
	for _, cells := range rows {
		for _, s := range backticked.FindAllStringSubmatch(cells[0], -1) {
			named[s[1]] = true
		}
	}
	var missing []string
	for _, p := range pkgs {
		if !named[p.Path] {
			missing = append(missing, fmt.Sprintf("%s: not in the packages table of %s", p.Path, docPath))
		}
	}
	return missing, nil
}

// rootName is how the documents name the module's root package.
const rootName = "cityhub"

// ListModule runs `go list -json ./...` in the module at root and returns
// its packages with module-relative paths (the root package as "cityhub").
func ListModule(root string) ([]ListedPackage, error) {
	cmd := exec.Command("go", "list", "-e", "-json=ImportPath,Imports,Deps,Module,Error", "./...")
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list: %w: %s", err, stderr.String())
	}
	type listed struct {
		ImportPath string
		Imports    []string
		Deps       []string
		Module     *struct{ Path string }
		Error      *struct{ Err string }
	}
	var pkgs []ListedPackage
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var l listed
		if err := dec.Decode(&l); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("go list output: %w", err)
		}
		if l.Error != nil {
			return nil, fmt.Errorf("go list: %s: %s", l.ImportPath, l.Error.Err)
		}
		if l.Module == nil {
			return nil, fmt.Errorf("go list: %s is in no module", l.ImportPath)
		}
		mod := l.Module.Path
		rel := func(p string) (string, bool) {
			if p == mod {
				return rootName, true
			}
			r, ok := strings.CutPrefix(p, mod+"/")
			return r, ok
		}
		p := ListedPackage{Deps: l.Deps}
		p.Path, _ = rel(l.ImportPath)
		for _, imp := range l.Imports {
			if r, ok := rel(imp); ok {
				p.Imports = append(p.Imports, r)
			}
		}
		pkgs = append(pkgs, p)
	}
	return pkgs, nil
}

// CheckImports checks the module at root against the import rule and the
// packages table of its architecture document.
func CheckImports(root string) ([]string, error) {
	doc, err := os.ReadFile(filepath.Join(root, docPath))
	if err != nil {
		return nil, err
	}
	rule, err := ParseRule(doc)
	if err != nil {
		return nil, err
	}
	pkgs, err := ListModule(root)
	if err != nil {
		return nil, err
	}
	findings := rule.Check(pkgs)
	missing, err := ListedIn(doc, pkgs)
	if err != nil {
		return nil, err
	}
	return append(findings, missing...), nil
}
