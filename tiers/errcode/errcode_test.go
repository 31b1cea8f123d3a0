package errcode

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cityhub/cityhub/tiers/diskspace"
	"github.com/cityhub/cityhub/tiers/workflow"
)

// TestEverySentinelOneCode: every sentinel is in the table once, and
// answers with its row's code, wrapped or not (no earlier row hides it).
func TestEverySentinelOneCode(t *testing.T) {
	seen := map[error]int{}
	for i, r := range Table {
		if j, dup := seen[r.Err]; dup {
			t.Errorf("%q in rows %d and %d", r.Err, j, i)
		}
		seen[r.Err] = i
		for _, err := range []error{r.Err, fmt.Errorf("context: %w", r.Err), fmt.Errorf("a: %w", fmt.Errorf("b: %w", r.Err))} {
			if got := Code(err); got != r.Code {
				t.Errorf("%q (row %d): code %v, want %v", err, i, got, r.Code)
			}
			if got := status.Code(Status(err)); got != r.Code {
				t.Errorf("%q (row %d): status %v, want %v", err, i, got, r.Code)
			}
		}
	}
	if got := Code(errors.New("surprise")); got != codes.Internal {
		t.Errorf("unknown error: %v, want Internal", got)
	}
	// A status from a forwarded call passes through unchanged.
	in := status.Error(codes.FailedPrecondition, "from the leader")
	if out := Status(fmt.Errorf("forwarded: %w", in)); status.Code(out) != codes.FailedPrecondition || status.Convert(out).Message() != "from the leader" {
		t.Errorf("forwarded status changed: %v", out)
	}
	// A field error carries the field in the details.
	st := status.Convert(Status(&workflow.FieldError{Field: "unit", Reason: "required", Err: ErrInvalid}))
	if st.Code() != codes.InvalidArgument || len(st.Details()) != 1 {
		t.Fatalf("field error: %v %v", st.Code(), st.Details())
	}
	// Below the disk reserve: Unavailable with the reason, so forwarders do
	// not take it for "not the leader".
	st = status.Convert(Status(fmt.Errorf("propose: %w", &diskspace.LowError{Dir: "/d", Free: 1, Reserve: 2})))
	if st.Code() != codes.Unavailable || !diskspace.IsRefusal(st.Err()) {
		t.Fatalf("disk refusal: %v %v", st.Code(), st.Details())
	}
}

// notForCallers are sentinels that never reach a caller, with the reason.
var notForCallers = map[string]string{
	"tiers/catalogue.ErrBadCatalogue": "a catalogue file that does not load stops the node at start",
	"tiers/fsm.ErrReplayed":           "an entry the store already holds; the FSM answers its first result",
	"tiers/fsm.ErrNewerLog":           "the message of the FSM's panic on an entry of a newer release (the version gate keeps it from happening)",
	"tiers/store.ErrBadSnapshot":      "a raft snapshot stream that is not ours: raft's restore fails",
	"tiers/store.ErrStateLost":        "a restore that failed half-way: the FSM stops the replica",
	"tiers/store.ErrDamaged":          "the start-up check refuses the store (node.ErrDamaged)",
	"tiers/store.ErrNotCounterKey":    "a key that is no counter, inside the store's counter scan",
	"tiers/node.ErrDamaged":           "the replica refuses to start (exit status 3)",
}

// sentinelDirs are the packages whose errors can answer a caller (through
// tiers/api, the internal plane or the federation's server).
var sentinelDirs = []string{
	"tiers/workflow", "tiers/catalogue", "tiers/store", "tiers/fsm", "tiers/node", "tiers/diskspace",
	"tiers/feed", "tiers/auth", "federation/reconcile", "tiers/errcode",
}

// TestEverySentinelInTable finds the package-level sentinel errors
// (var ErrX = errors.New / fmt.Errorf) of the packages whose errors reach a
// caller, and wants each in the table, or in notForCallers with a reason: a
// new sentinel gets its code here, not in a table of its own.
func TestEverySentinelInTable(t *testing.T) {
	inTable := map[string]bool{}
	for _, r := range Table {
		inTable[r.Err.Error()] = true
	}
	found := 0
	for _, dir := range sentinelDirs {
		for name, msg := range sentinels(t, filepath.Join("..", "..", dir)) {
			found++
			key := dir + "." + name
			if _, ok := notForCallers[key]; ok {
				continue
			}
			if !ast.IsExported(name) && dir != "tiers/errcode" {
				continue // unexported: the package answers it itself
			}
			if msg == "" {
				t.Errorf("%s: a sentinel whose message the test cannot read", key)
				continue
			}
			if !inTable[msg] && !anyRowEndsWith(msg) {
				t.Errorf("%s (%q) is in no row of the table, nor in notForCallers", key, msg)
			}
		}
	}
	if found < 40 {
		t.Fatalf("found %d sentinels: the scan is broken", found)
	}
}

// anyRowEndsWith matches a sentinel made with fmt.Errorf("%w: ...") by the
// text after the wrapped error.
func anyRowEndsWith(suffix string) bool {
	for _, r := range Table {
		if strings.HasSuffix(r.Err.Error(), suffix) {
			return true
		}
	}
	return false
}

// sentinels returns the package-level error variables of dir's non-test
// files: name → the literal message (the part after "%w: " of an Errorf).
func sentinels(t *testing.T, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	fset := token.NewFileSet()
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, e.Name()), nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.VAR {
				continue
			}
			for _, spec := range g.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, n := range vs.Names {
					if !strings.HasPrefix(n.Name, "Err") && !strings.HasPrefix(n.Name, "err") || i >= len(vs.Values) {
						continue
					}
					call, ok := vs.Values[i].(*ast.CallExpr)
					if !ok {
						continue
					}
					sel, ok := call.Fun.(*ast.SelectorExpr)
					if !ok || !(sel.Sel.Name == "New" || sel.Sel.Name == "Errorf") || len(call.Args) == 0 {
						continue
					}
					msg := ""
					if lit, ok := call.Args[0].(*ast.BasicLit); ok && lit.Kind == token.STRING {
						msg = strings.Trim(lit.Value, "\"`")
						if sel.Sel.Name == "Errorf" {
							msg = strings.TrimPrefix(msg, "%w")
						}
					}
					out[n.Name] = msg
				}
			}
		}
	}
	return out
}

func TestTableRowsAreErrors(t *testing.T) {
	for i, r := range Table {
		if r.Err == nil {
			t.Errorf("row %d: nil error", i)
		}
		if r.Code == codes.OK || r.Code == codes.Unknown {
			t.Errorf("row %d (%v): code %v", i, r.Err, r.Code)
		}
	}
}
