package ownership

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Component is one entry of the component register (部件普查台账): a
// physical component with its place and the units answerable for it.
// Supervising, Owning and Maintaining are unit ids of the topology.
type Component struct {
	ID          string // 16 digits (6 district + 2 major + 2 minor + 6 serial) or 17 (3-digit minor)
	Major       string // 2 digits
	Minor       string // 2 or 3 digits
	Name        string
	Grid        string // 15-digit grid code where it stands
	Supervising string // 主管部门
	Owning      string // 权属单位
	Maintaining string // 养护单位
	Line        int    // line of the register file it was read from
}

// Department returns the unit of the named department (Supervising, Owning
// or Maintaining), or "".
func (c Component) Department(dept string) string {
	switch dept {
	case Supervising:
		return c.Supervising
	case Owning:
		return c.Owning
	case Maintaining:
		return c.Maintaining
	}
	return ""
}

// ComponentHeader is the header line the register CSV must start with.
var ComponentHeader = []string{"component_id", "major", "minor", "name", "grid_code", "supervising", "owning", "maintaining"}

// parseComponents reads the register CSV. Empty input is an empty
// register. Every error names the line and the field.
func parseComponents(data []byte, v *view) (map[string]Component, []error) {
	out := map[string]Component{}
	if len(bytes.TrimSpace(data)) == 0 {
		return out, nil
	}
	r := csv.NewReader(bytes.NewReader(data))
	r.FieldsPerRecord = -1 // checked here, to name the line and the count
	r.ReuseRecord = true
	var errs []error
	bad := func(line int, field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("components line %d: %s: %s", line, field, fmt.Sprintf(format, args...)))
	}
	header, err := r.Read()
	if err != nil {
		return nil, []error{fmt.Errorf("components line 1: %w", err)}
	}
	if !slices.Equal(header, ComponentHeader) {
		return nil, []error{fmt.Errorf("components line 1: header: got %q, want %q",
			strings.Join(header, ","), strings.Join(ComponentHeader, ","))}
	}
	lines := map[string]int{}
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			// csv.ParseError names the line itself.
			errs = append(errs, fmt.Errorf("components: %w", err))
			break
		}
		line, _ := r.FieldPos(0)
		if len(rec) != len(ComponentHeader) {
			bad(line, "columns", "%d fields, want %d (%s)", len(rec), len(ComponentHeader), strings.Join(ComponentHeader, ","))
			continue
		}
		c := Component{
			ID: rec[0], Major: rec[1], Minor: rec[2], Name: strings.TrimSpace(rec[3]), Grid: rec[4],
			Supervising: rec[5], Owning: rec[6], Maintaining: rec[7], Line: line,
		}
		n := len(errs)
		checkComponent(c, v, func(field, format string, args ...any) { bad(line, field, format, args...) })
		if len(errs) > n {
			continue
		}
		if first, dup := lines[c.ID]; dup {
			bad(line, "component_id", "%s duplicates line %d", c.ID, first)
			continue
		}
		lines[c.ID] = line
		out[c.ID] = c
	}
	return out, errs
}

func checkComponent(c Component, v *view, bad func(field, format string, args ...any)) {
	idOK := true
	switch {
	case !allDigits(c.ID) || (len(c.ID) != 16 && len(c.ID) != 17):
		bad("component_id", "%q must be 16 or 17 digits", c.ID)
		idOK = false
	case strings.Trim(c.ID[len(c.ID)-6:], "0") == "":
		bad("component_id", "%s has serial 000000", c.ID)
	}
	if !allDigits(c.Major) || len(c.Major) != 2 {
		bad("major", "%q must be 2 digits", c.Major)
		idOK = false
	}
	if !allDigits(c.Minor) || (len(c.Minor) != 2 && len(c.Minor) != 3) {
		bad("minor", "%q must be 2 or 3 digits", c.Minor)
		idOK = false
	}
	if idOK {
		switch {
		case len(c.ID)-14 != len(c.Minor):
			bad("minor", "%q has %d digits but component id %s (%d digits) carries a %d-digit minor",
				c.Minor, len(c.Minor), c.ID, len(c.ID), len(c.ID)-14)
		case c.ID[6:8] != c.Major || c.ID[8:8+len(c.Minor)] != c.Minor:
			bad("component_id", "%s is of class %s/%s, the row says %s/%s",
				c.ID, c.ID[6:8], c.ID[8:8+len(c.Minor)], c.Major, c.Minor)
		}
	}
	if c.Name == "" {
		bad("name", "required")
	}
	if err := v.checkGrid(c.Grid); err != nil {
		bad("grid_code", "%v", err)
	} else if idOK && c.ID[:6] != c.Grid[:6] {
		bad("grid_code", "%s is in district %s, component id %s in district %s", c.Grid, c.Grid[:6], c.ID, c.ID[:6])
	}
	for _, d := range []struct{ field, unit string }{
		{Supervising, c.Supervising}, {Owning, c.Owning}, {Maintaining, c.Maintaining},
	} {
		switch _, ok := v.units[d.unit]; {
		case d.unit == "":
			bad(d.field, "required")
		case !ok:
			bad(d.field, "unknown department %q: not a unit of any node of the topology", d.unit)
		}
	}
}
