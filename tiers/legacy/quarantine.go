package legacy

import (
	"bufio"
	"encoding/csv"
	"io"
	"slices"
	"strconv"
	"strings"
)

// bom starts the quarantine file, so spreadsheet programs read it as UTF-8
// (Parse skips it).
const bom = "\ufeff"

// QuarantineHeader is the header of a quarantine file: line, legacy_id,
// field, reason, then the row's other columns.
func QuarantineHeader() []string {
	h := []string{"line", "legacy_id", "field", "reason"}
	for _, c := range Columns {
		if c != "legacy_id" {
			h = append(h, c)
		}
	}
	return h
}

// WriteQuarantine writes the bad rows as CSV, sorted by line (rows of the
// same line keep their order), with the values that could be read of each.
func WriteQuarantine(w io.Writer, bad []Bad) error {
	rows := slices.Clone(bad)
	slices.SortStableFunc(rows, func(a, b Bad) int { return int(a.Err.GetLine()) - int(b.Err.GetLine()) })
	bw := bufio.NewWriter(w)
	if _, err := bw.WriteString(bom); err != nil {
		return err
	}
	cw := csv.NewWriter(bw)
	if err := cw.Write(QuarantineHeader()); err != nil {
		return err
	}
	for _, b := range rows {
		legacyID := b.Err.GetLegacyId()
		if legacyID == "" && b.Row != nil {
			legacyID = b.Row.LegacyId
		}
		rec := []string{strconv.Itoa(int(b.Err.GetLine())), legacyID, b.Err.GetField(), b.Err.GetReason()}
		vals := Values(b.Row)
		for i, c := range Columns {
			if c != "legacy_id" {
				rec = append(rec, vals[i])
			}
		}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return err
	}
	return bw.Flush()
}

// IsQuarantine reports whether r starts with the header WriteQuarantine
// writes (so a stale quarantine file may be replaced or removed without
// touching anything else).
func IsQuarantine(r io.Reader) bool {
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && line == "" {
		return false
	}
	line = strings.TrimPrefix(strings.TrimRight(line, "\r\n"), bom)
	return line == strings.Join(QuarantineHeader(), ",")
}
