package main

import (
	"bytes"
	"io"
	"strings"

	"github.com/mattn/go-runewidth"
)

// table lines up tab-separated cells in columns by display width, as a
// terminal shows them: a Han character takes two columns (text/tabwriter
// counts runes, so every column after Chinese text went out of line). A
// cell ends at a tab; the last cell of a line is not padded. Two spaces
// separate columns.
type table struct {
	w   io.Writer
	buf bytes.Buffer
}

func newTable(w io.Writer) *table { return &table{w: w} }

func (t *table) Write(p []byte) (int, error) { return t.buf.Write(p) }

// row writes one line of cells.
func (t *table) row(cells ...string) { row(t, cells...) }

// Flush writes the lines, padded, and empties the table.
func (t *table) Flush() error {
	text := strings.TrimSuffix(t.buf.String(), "\n")
	t.buf.Reset()
	if text == "" {
		return nil
	}
	lines := strings.Split(text, "\n")
	cells := make([][]string, len(lines))
	var widths []int
	for i, l := range lines {
		cells[i] = strings.Split(l, "\t")
		for j, c := range cells[i][:len(cells[i])-1] {
			if j >= len(widths) {
				widths = append(widths, 0)
			}
			widths[j] = max(widths[j], displayWidth(c))
		}
	}
	var b strings.Builder
	for _, cs := range cells {
		for j, c := range cs {
			b.WriteString(c)
			if j < len(cs)-1 {
				b.WriteString(strings.Repeat(" ", widths[j]-displayWidth(c)+2))
			}
		}
		b.WriteByte('\n')
	}
	_, err := io.WriteString(t.w, b.String())
	return err
}

// displayWidth is how many terminal columns s takes (East Asian wide and
// full-width characters two, combining marks none).
func displayWidth(s string) int { return runewidth.StringWidth(s) }
