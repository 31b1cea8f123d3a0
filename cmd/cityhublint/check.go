package main

import (
	"bytes"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// allowDirective is the escape hatch. It must be written exactly like this
// (no space after "//") and followed by a non-empty reason.
const allowDirective = "//cityhublint:allow"

// Finding is one problem reported by Check.
type Finding struct {
	Pos     token.Position
	Message string
}

func (f Finding) String() string {
	return fmt.Sprintf("%s:%d:%d: %s", f.Pos.Filename, f.Pos.Line, f.Pos.Column, f.Message)
}

// forbiddenFuncs lists, per import path, the package-level identifiers that
// must not be referenced, with the hint printed after the finding.
var forbiddenFuncs = map[string]map[string]string{
	"time": {
		"Now":       hintClock,
		"Since":     hintClock,
		"Until":     hintClock,
		"After":     hintClock,
		"Tick":      hintClock,
		"NewTimer":  hintClock,
		"NewTicker": hintClock,
		"AfterFunc": hintClock,
		"Sleep":     hintClock,
	},
	"os": {
		"Getenv":    hintNode,
		"LookupEnv": hintNode,
		"Environ":   hintNode,
		"Hostname":  hintNode,
		"Getpid":    hintNode,
	},
}

// forbiddenImports are import paths that may not appear at all.
var forbiddenImports = map[string]string{
	"math/rand":    hintRand,
	"math/rand/v2": hintRand,
	"crypto/rand":  hintRand,
}

const (
	hintClock = "leader must stamp it into the command"
	hintRand  = "leader must draw randomness and put it into the command"
	hintNode  = "node-local value differs between replicas; resolve it before proposing"
)

// Check parses every non-test .go file directly in dir (not recursively) and
// returns the forbidden references it finds, sorted by position. An error
// means dir could not be read, holds no non-test Go files, or a file does not
// parse.
func Check(dir string) ([]Finding, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	fset := token.NewFileSet()
	var findings []Finding
	nfiles := 0
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		path := filepath.Join(dir, name)
		src, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		f, err := parser.ParseFile(fset, path, src, parser.ParseComments)
		if err != nil {
			return nil, err
		}
		nfiles++
		findings = append(findings, checkFile(fset, f, src)...)
	}
	if nfiles == 0 {
		return nil, fmt.Errorf("%s: no non-test Go files", dir)
	}
	sort.SliceStable(findings, func(i, j int) bool {
		a, b := findings[i].Pos, findings[j].Pos
		if a.Filename != b.Filename {
			return a.Filename < b.Filename
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Column < b.Column
	})
	return findings, nil
}

func checkFile(fset *token.FileSet, f *ast.File, src []byte) []Finding {
	var raw []Finding

	// Local package name -> import path, for the packages we care about.
	// A dot import maps "." to the path and is handled separately.
	names := map[string]string{}
	var dotImports []string
	for _, imp := range f.Imports {
		path, err := strconv.Unquote(imp.Path.Value)
		if err != nil {
			continue
		}
		if hint, bad := forbiddenImports[path]; bad {
			raw = append(raw, Finding{
				Pos:     fset.Position(imp.Pos()),
				Message: fmt.Sprintf("forbidden import %s in state machine package (%s)", path, hint),
			})
			continue
		}
		if _, ok := forbiddenFuncs[path]; !ok {
			continue
		}
		local := path // "time" and "os" are their own last element
		if imp.Name != nil {
			local = imp.Name.Name
		}
		switch local {
		case "_":
		case ".":
			dotImports = append(dotImports, path)
		default:
			names[local] = path
		}
	}

	report := func(n ast.Node, path, fn string) {
		raw = append(raw, Finding{
			Pos: fset.Position(n.Pos()),
			Message: fmt.Sprintf("forbidden call %s.%s in state machine package (%s)",
				path, fn, forbiddenFuncs[path][fn]),
		})
	}

	if len(names) > 0 || len(dotImports) > 0 {
		var visit func(ast.Node) bool
		walk := func(n ast.Node) {
			if n != nil {
				ast.Inspect(n, visit)
			}
		}
		visit = func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.SelectorExpr:
				// x.Obj != nil means the parser resolved the name to a
				// declaration in this file (a local variable, parameter,
				// ...), which shadows the import.
				if x, ok := n.X.(*ast.Ident); ok && x.Obj == nil {
					if path, ok := names[x.Name]; ok {
						if _, bad := forbiddenFuncs[path][n.Sel.Name]; bad {
							report(n, path, n.Sel.Name)
						}
						return false
					}
				}
				walk(n.X) // never the selector name: s.Now is not time.Now
				return false
			case *ast.Ident:
				// Reached only for identifiers in expression position
				// (selectors, field names, method names and composite
				// literal keys are skipped below), so a bare Now here
				// comes from a dot import unless declared in this file.
				if n.Obj == nil {
					for _, path := range dotImports {
						if _, bad := forbiddenFuncs[path][n.Name]; bad {
							report(n, path, n.Name)
						}
					}
				}
			case *ast.Field:
				walk(n.Type)
				return false
			case *ast.FuncDecl:
				if n.Recv != nil {
					walk(n.Recv)
					walk(n.Type)
					walk(n.Body)
					return false
				}
			case *ast.CompositeLit:
				walk(n.Type)
				for _, e := range n.Elts {
					if kv, ok := e.(*ast.KeyValueExpr); ok {
						if _, isIdent := kv.Key.(*ast.Ident); isIdent {
							walk(kv.Value)
							continue
						}
					}
					walk(e)
				}
				return false
			}
			return true
		}
		walk(f)
	}

	// Collect allow directives: line -> reason given. A directive on a line
	// of its own covers the next line; a trailing directive covers its own
	// line only.
	allowed := map[int]bool{}
	var directiveErrs []Finding
	for _, cg := range f.Comments {
		for _, c := range cg.List {
			if !strings.HasPrefix(c.Text, allowDirective) {
				continue
			}
			rest := c.Text[len(allowDirective):]
			if rest != "" && rest[0] != ' ' && rest[0] != '\t' {
				continue // e.g. //cityhublint:allowed, not our directive
			}
			pos := fset.Position(c.Pos())
			if strings.TrimSpace(rest) == "" {
				directiveErrs = append(directiveErrs, Finding{
					Pos:     pos,
					Message: "cityhublint:allow directive needs a reason (//cityhublint:allow <reason>)",
				})
				continue
			}
			allowed[pos.Line] = true
			if standalone(src, pos.Offset) {
				allowed[pos.Line+1] = true
			}
		}
	}

	out := directiveErrs
	for _, fd := range raw {
		if !allowed[fd.Pos.Line] {
			out = append(out, fd)
		}
	}
	return out
}

// standalone reports whether only whitespace precedes offset on its line.
func standalone(src []byte, offset int) bool {
	start := bytes.LastIndexByte(src[:offset], '\n') + 1
	return len(bytes.TrimSpace(src[start:offset])) == 0
}
