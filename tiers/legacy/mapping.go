package legacy

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Mapping reads columns of an export under other names: the export's
// header name (or JSON key) → a column of Columns. Names are compared
// trimmed and case-insensitively.
type Mapping map[string]string

// Aliases are the Chinese headers old systems commonly write, read as
// columns without a mapping (a mapping given wins; an alias whose column the
// header also names directly is ignored).
var Aliases = map[string]string{
	"案件编号": "legacy_id", "案卷编号": "legacy_id", "案卷号": "legacy_id", "案件号": "legacy_id",
	"上报时间": "reported_at", "发现时间": "reported_at",
	"问题来源": "source", "案件来源": "source", "来源": "source",
	"案件类型": "kind", "问题类型": "kind",
	"大类": "major", "大类代码": "major", "大类编码": "major",
	"小类": "minor", "小类代码": "minor", "小类编码": "minor",
	"单元网格": "grid_code", "网格编码": "grid_code", "网格编号": "grid_code", "网格号": "grid_code",
	"部件编号": "component_id", "部件标识码": "component_id", "部件编码": "component_id",
	"纬度": "lat", "经度": "lng",
	"地址": "address", "发生地址": "address", "问题地址": "address", "事发地址": "address",
	"问题描述": "description", "案件描述": "description", "描述": "description",
	"状态": "status", "案件状态": "status", "案卷状态": "status",
	"处置单位": "dispatched_unit", "责任单位": "dispatched_unit", "派遣单位": "dispatched_unit",
	"处置时限": "deadline", "截止时间": "deadline", "处置截止时间": "deadline",
}

func mapKey(name string) string { return strings.ToLower(strings.TrimSpace(name)) }

// add records old → column, refusing a column that is not one.
func (m Mapping) add(old, col string) error {
	o, c := strings.TrimSpace(old), mapKey(col)
	switch {
	case o == "":
		return fmt.Errorf("mapping %q: no column name before '='", old+"="+col)
	case !slices.Contains(Columns, c):
		return fmt.Errorf("mapping %s=%s: %q is not a column; the columns are %s", o, strings.TrimSpace(col), strings.TrimSpace(col), strings.Join(Columns, ", "))
	}
	if prev, ok := m[mapKey(o)]; ok && prev != c {
		return fmt.Errorf("mapping %s: given as %s and as %s", o, prev, c)
	}
	m[mapKey(o)] = c
	return nil
}

// Parse reads "old=column,old=column" (the form of --map) into m.
func (m Mapping) Parse(s string) error {
	for _, part := range strings.Split(s, ",") {
		if strings.TrimSpace(part) == "" {
			continue
		}
		old, col, ok := strings.Cut(part, "=")
		if !ok {
			return fmt.Errorf("mapping %q: want OLD=column", strings.TrimSpace(part))
		}
		if err := m.add(old, col); err != nil {
			return err
		}
	}
	return nil
}

// Read reads a mapping file into m: YAML (a mapping of old names to
// columns) when yamlFile, else lines of old=column ('#' starts a comment,
// blank lines are skipped).
func (m Mapping) Read(r io.Reader, yamlFile bool) error {
	if yamlFile {
		var doc map[string]string
		if err := yaml.NewDecoder(r).Decode(&doc); err != nil && err != io.EOF {
			return fmt.Errorf("mapping file: want a YAML mapping of old column names to columns: %w", err)
		}
		keys := make([]string, 0, len(doc))
		for k := range doc {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			if err := m.add(k, doc[k]); err != nil {
				return err
			}
		}
		return nil
	}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(strings.TrimPrefix(sc.Text(), "\ufeff"))
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		old, col, ok := strings.Cut(line, "=")
		if !ok {
			return fmt.Errorf("mapping file line %d: want OLD=column, got %q", n, line)
		}
		if err := m.add(old, col); err != nil {
			return fmt.Errorf("mapping file line %d: %w", n, err)
		}
	}
	return sc.Err()
}

// Rename is a column of an export read under another name.
type Rename struct {
	From string `json:"from"` // the export's name
	To   string `json:"to"`   // the column
}

func (r Rename) String() string { return r.From + " → " + r.To }

// columnOf says which column a header name (or JSON key) gives: col is ""
// for a name to ignore; renamed when a mapping or an alias gave it; quiet
// for the quarantine columns, ignored without being listed. taken says
// which columns the header names directly (an alias to one of those is
// ignored).
func (m Mapping) columnOf(name string, taken func(string) bool) (col string, renamed, quiet bool) {
	key := mapKey(name)
	if c, ok := m[key]; ok {
		return c, true, false
	}
	switch {
	case slices.Contains(QuarantineColumns, key):
		return "", false, true
	case slices.Contains(Columns, key):
		return key, false, false
	}
	if c, ok := Aliases[strings.TrimSpace(name)]; ok && !taken(c) {
		return c, true, false
	}
	return "", false, false
}

// direct says whether a name is a column by itself (not by a mapping).
func (m Mapping) direct(name string) (string, bool) {
	key := mapKey(name)
	if _, ok := m[key]; ok {
		return "", false
	}
	if slices.Contains(Columns, key) {
		return key, true
	}
	return "", false
}
