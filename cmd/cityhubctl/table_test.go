package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/mattn/go-runewidth"
)

// TestTableAlignsChineseByDisplayWidth: the column after Chinese text
// starts at the same terminal column on every line (a Han character is
// two columns wide), and the last cell is not padded.
func TestTableAlignsChineseByDisplayWidth(t *testing.T) {
	var buf bytes.Buffer
	tw := newTable(&buf)
	tw.row("ID", "UNIT", "ACTOR", "NOTE")
	tw.row("1", "huanwei-01", "王五", "垃圾已清运")
	tw.row("22", "市政工程管理处", "li-si", "-")
	tw.row("333", "-", "赵六六六", "ok")
	if err := tw.Flush(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d lines:\n%s", len(lines), buf.String())
	}
	// The display column where each line's ACTOR and NOTE cells start.
	starts := func(line string, cells ...string) []int {
		var out []int
		from := 0
		for _, c := range cells {
			i := strings.Index(line[from:], c) + from
			out = append(out, runewidth.StringWidth(line[:i]))
			from = i + len(c)
		}
		return out
	}
	want := starts(lines[0], "ACTOR", "NOTE")
	for i, cells := range [][]string{{"王五", "垃圾已清运"}, {"li-si", "-"}, {"赵六六六", "ok"}} {
		if got := starts(lines[i+1], cells...); got[0] != want[0] || got[1] != want[1] {
			t.Errorf("line %d: columns start at %v, the header's at %v:\n%s", i+2, got, want, buf.String())
		}
	}
	for _, l := range lines {
		if strings.HasSuffix(l, " ") {
			t.Errorf("trailing spaces: %q", l)
		}
	}
}
