package catalogue

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// Class is one minor class of the catalogue, with its major class.
type Class struct {
	Kind        pb.Kind
	MajorCode   string // 2 digits
	MinorCode   string // 2 digits, or 3 for the 17-digit component series
	Name        string // Chinese name of the minor class, e.g. 上水井盖
	NameEN      string // English name; may be empty
	MajorName   string // Chinese name of the major class, e.g. 公用设施
	MajorNameEN string // may be empty
}

// Code returns major+minor, e.g. "0101".
func (c Class) Code() string { return c.MajorCode + c.MinorCode }

// String returns e.g. "component 01/18 路灯".
func (c Class) String() string {
	return fmt.Sprintf("%s %s/%s %s", kindWord(c.Kind), c.MajorCode, c.MinorCode, c.Name)
}

// Proto returns the wire form of the class.
func (c Class) Proto() *pb.CatalogueClass {
	return &pb.CatalogueClass{
		Kind:      c.Kind,
		MajorCode: c.MajorCode,
		MinorCode: c.MinorCode,
		Name:      c.Name,
		MajorName: c.MajorName,
	}
}

// Major is one major class of the catalogue.
type Major struct {
	Kind   pb.Kind
	Code   string // 2 digits
	Name   string
	NameEN string
}

// Catalogue is a loaded, validated class catalogue. It is immutable: all
// methods are safe for concurrent use, and replacing the catalogue means
// loading a new one.
type Catalogue struct {
	version string
	name    string
	majors  map[majorKey]*majorEntry
	classes map[classKey]Class
	sorted  []Class // by kind, major, minor
}

type majorKey struct {
	kind  pb.Kind
	major string
}

type classKey struct {
	kind         pb.Kind
	major, minor string
}

type majorEntry struct {
	Major
	minors []Class // sorted by code
}

// Version returns the catalogue's version string, e.g. "2026.1".
func (c *Catalogue) Version() string { return c.version }

// Name returns the catalogue's descriptive name.
func (c *Catalogue) Name() string { return c.name }

// Len returns the number of (minor) classes.
func (c *Catalogue) Len() int { return len(c.sorted) }

// Classes returns every class, sorted by kind (components first), major code
// and minor code (2-digit codes before 3-digit ones). The slice is a copy.
func (c *Catalogue) Classes() []Class { return slices.Clone(c.sorted) }

// Majors returns the major classes of one kind, sorted by code.
func (c *Catalogue) Majors(kind pb.Kind) []Major {
	var out []Major
	for _, m := range c.majors {
		if m.Kind == kind {
			out = append(out, m.Major)
		}
	}
	slices.SortFunc(out, func(a, b Major) int { return cmpCode(a.Code, b.Code) })
	return out
}

// Lookup finds a class. Errors wrap ErrUnknownClass and name the kind, major
// and minor asked for, listing the valid majors (or the valid minors of the
// major) to choose from.
func (c *Catalogue) Lookup(kind pb.Kind, major, minor string) (Class, error) {
	if cl, ok := c.classes[classKey{kind, major, minor}]; ok {
		return cl, nil
	}
	_, err := c.lookupField(kind, major, minor)
	return Class{}, err
}

// lookupField is Lookup's failure path; it also returns the field to blame.
func (c *Catalogue) lookupField(kind pb.Kind, major, minor string) (string, error) {
	if kind != pb.Kind_KIND_COMPONENT && kind != pb.Kind_KIND_EVENT {
		return "kind", unknown("kind %s (class %s/%s): want KIND_COMPONENT or KIND_EVENT", kind, codeText(major), codeText(minor))
	}
	w := kindWord(kind)
	m, ok := c.majors[majorKey{kind, major}]
	if !ok {
		majors := c.Majors(kind)
		if len(majors) == 0 {
			return "major_code", unknown("%s class %s/%s: catalogue %s has no %s classes", w, codeText(major), codeText(minor), c.version, w)
		}
		hint := make([]string, len(majors))
		for i, mj := range majors {
			hint[i] = mj.Code + " " + mj.Name
		}
		return "major_code", unknown("%s class %s/%s: no %s major class %s in catalogue %s; valid %s majors: %s",
			w, codeText(major), codeText(minor), w, codeText(major), c.version, w, strings.Join(hint, ", "))
	}
	hint := make([]string, len(m.minors))
	for i, cl := range m.minors {
		hint[i] = cl.MinorCode + " " + cl.Name
	}
	return "minor_code", unknown("%s class %s/%s: no minor class %s under %s major %s %s in catalogue %s; valid minors: %s",
		w, major, codeText(minor), codeText(minor), w, major, m.Name, c.version, strings.Join(hint, ", "))
}

// Proto returns the wire form of the catalogue (GetCatalogue). Each call
// builds a fresh message.
func (c *Catalogue) Proto() *pb.Catalogue {
	out := &pb.Catalogue{Version: c.version, Classes: make([]*pb.CatalogueClass, len(c.sorted))}
	for i, cl := range c.sorted {
		out.Classes[i] = cl.Proto()
	}
	return out
}

// ValidateClass checks the classification fields of a case (or a report):
//
//   - kind must be KIND_COMPONENT or KIND_EVENT ("kind", ErrUnknownClass);
//   - major must be 2 digits and minor 2 or 3 digits ("major_code" /
//     "minor_code", ErrInvalidCode), and the class must be in the catalogue
//     ("major_code" / "minor_code", ErrUnknownClass);
//   - gridCode is required and must be a valid grid code ("grid_code",
//     ErrInvalidCode);
//   - componentID is optional for components; when given it must be a valid
//     component id of the same major and minor class, in the grid code's
//     district. Events must not carry one ("component_id", ErrInvalidCode).
//
// It returns the first failure, in that order, as a *FieldError.
func (c *Catalogue) ValidateClass(kind pb.Kind, major, minor, componentID, gridCode string) error {
	if kind != pb.Kind_KIND_COMPONENT && kind != pb.Kind_KIND_EVENT {
		return &FieldError{Field: "kind", Err: ErrUnknownClass,
			Reason: fmt.Sprintf("kind %s is not a case kind, want KIND_COMPONENT or KIND_EVENT", kind)}
	}
	if !isDigits(major) || len(major) != majorLen {
		return &FieldError{Field: "major_code", Err: ErrInvalidCode,
			Reason: fmt.Sprintf("major class code %s must be 2 ASCII digits", quote(major))}
	}
	if !isDigits(minor) || (len(minor) != 2 && len(minor) != 3) {
		return &FieldError{Field: "minor_code", Err: ErrInvalidCode,
			Reason: fmt.Sprintf("minor class code %s must be 2 or 3 ASCII digits", quote(minor))}
	}
	cl, err := c.Lookup(kind, major, minor)
	if err != nil {
		field, _ := c.lookupField(kind, major, minor)
		return &FieldError{Field: field, Reason: reasonOf(err), Err: ErrUnknownClass}
	}
	grid, err := ParseGridCode(gridCode)
	if err != nil {
		return &FieldError{Field: "grid_code", Reason: reasonOf(err), Err: ErrInvalidCode}
	}
	if componentID == "" {
		return nil
	}
	if kind != pb.Kind_KIND_COMPONENT {
		return &FieldError{Field: "component_id", Err: ErrInvalidCode,
			Reason: fmt.Sprintf("component id %s given on an event case; only components (KIND_COMPONENT) carry one", quote(componentID))}
	}
	id, err := ParseComponentID(componentID)
	if err != nil {
		return &FieldError{Field: "component_id", Reason: reasonOf(err), Err: ErrInvalidCode}
	}
	if id.Major != major || id.Minor != minor {
		return &FieldError{Field: "component_id", Err: ErrInvalidCode,
			Reason: fmt.Sprintf("component id %s is of class %s/%s, but the case is classed %s/%s (%s)",
				componentID, id.Major, id.Minor, major, minor, cl.Name)}
	}
	if id.District != grid.District {
		return &FieldError{Field: "component_id", Err: ErrInvalidCode,
			Reason: fmt.Sprintf("component id %s is in district %s, but grid code %s is in district %s",
				componentID, id.District, gridCode, grid.District)}
	}
	return nil
}

var defaultCatalogue = sync.OnceValue(func() *Catalogue {
	c, err := Load(defaultYAML)
	if err != nil {
		panic("catalogue: embedded default.yaml is broken: " + err.Error())
	}
	return c
})

// Default returns the built-in catalogue (tiers/catalogue/default.yaml). It
// is parsed once and shared. It panics only if the embedded file is broken,
// which the package tests rule out.
func Default() *Catalogue { return defaultCatalogue() }

// LoadFile reads and loads a catalogue file (see Load).
func LoadFile(path string) (*Catalogue, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadCatalogue, err)
	}
	c, err := Load(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// file is the YAML layout of a catalogue (tiers/catalogue/default.yaml).
type file struct {
	Version    string      `yaml:"version"`
	Name       string      `yaml:"name"`
	Components []fileMajor `yaml:"components"`
	Events     []fileMajor `yaml:"events"`
}

type fileMajor struct {
	Code   string      `yaml:"code"`
	Name   string      `yaml:"name"`
	NameEN string      `yaml:"name_en"`
	Minors []fileMinor `yaml:"minors"`
}

type fileMinor struct {
	Code   string `yaml:"code"`
	Name   string `yaml:"name"`
	NameEN string `yaml:"name_en"`
}

// Load parses and validates a catalogue in YAML. The rules: version and name
// are set; each major has a 2-digit code unique within its kind, a name and
// at least one minor; each minor has a 2- or 3-digit code unique within its
// major and a name (name_en is optional); unknown keys are refused. All
// problems found are reported together, each wrapping ErrBadCatalogue and
// naming the entry (e.g. `components[0].minors[3] (code "1", name "路灯")`).
func Load(data []byte) (*Catalogue, error) {
	var f file
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: empty document", ErrBadCatalogue)
		}
		return nil, fmt.Errorf("%w: %w", ErrBadCatalogue, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: more than one YAML document", ErrBadCatalogue)
	}

	c := &Catalogue{
		version: strings.TrimSpace(f.Version),
		name:    strings.TrimSpace(f.Name),
		majors:  make(map[majorKey]*majorEntry),
		classes: make(map[classKey]Class),
	}
	var errs []error
	bad := func(where, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: %s: %s", ErrBadCatalogue, where, fmt.Sprintf(format, args...)))
	}
	if c.version == "" {
		bad("version", "missing")
	}
	if c.name == "" {
		bad("name", "missing")
	}
	if len(f.Components) == 0 && len(f.Events) == 0 {
		bad("catalogue", "no components and no events")
	}
	c.addKind(pb.Kind_KIND_COMPONENT, "components", f.Components, bad)
	c.addKind(pb.Kind_KIND_EVENT, "events", f.Events, bad)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	for _, m := range c.majors {
		c.sorted = append(c.sorted, m.minors...)
	}
	slices.SortFunc(c.sorted, func(a, b Class) int {
		return cmp.Or(
			cmp.Compare(a.Kind, b.Kind),
			cmpCode(a.MajorCode, b.MajorCode),
			cmpCode(a.MinorCode, b.MinorCode))
	})
	return c, nil
}

func (c *Catalogue) addKind(kind pb.Kind, list string, majors []fileMajor, bad func(where, format string, args ...any)) {
	seenMajor := make(map[string]string) // code → where
	for i, fm := range majors {
		where := fmt.Sprintf("%s[%d] (code %q, name %q)", list, i, fm.Code, fm.Name)
		name := strings.TrimSpace(fm.Name)
		ok := true
		switch {
		case !isDigits(fm.Code) || len(fm.Code) != majorLen:
			bad(where, "major code must be 2 ASCII digits")
			ok = false
		case allZero(fm.Code):
			bad(where, "major code 00 is not a class")
			ok = false
		case seenMajor[fm.Code] != "":
			bad(where, "duplicate major code, already used by %s", seenMajor[fm.Code])
			ok = false
		default:
			seenMajor[fm.Code] = where
		}
		if name == "" {
			bad(where, "major name is missing")
			ok = false
		}
		if len(fm.Minors) == 0 {
			bad(where, "major has no minor classes")
			ok = false
		}
		m := &majorEntry{Major: Major{Kind: kind, Code: fm.Code, Name: name, NameEN: strings.TrimSpace(fm.NameEN)}}
		seenMinor := make(map[string]string)
		for j, fn := range fm.Minors {
			w := fmt.Sprintf("%s[%d].minors[%d] (code %q, name %q)", list, i, j, fn.Code, fn.Name)
			switch {
			case !isDigits(fn.Code) || (len(fn.Code) != 2 && len(fn.Code) != 3):
				bad(w, "minor code must be 2 or 3 ASCII digits")
				ok = false
			case allZero(fn.Code):
				bad(w, "minor code %s is not a class", fn.Code)
				ok = false
			case seenMinor[fn.Code] != "":
				bad(w, "duplicate minor code in major %s, already used by %s", fm.Code, seenMinor[fn.Code])
				ok = false
			default:
				seenMinor[fn.Code] = w
			}
			minorName := strings.TrimSpace(fn.Name)
			if minorName == "" {
				bad(w, "minor name is missing")
				ok = false
			}
			m.minors = append(m.minors, Class{
				Kind:        kind,
				MajorCode:   fm.Code,
				MinorCode:   fn.Code,
				Name:        minorName,
				NameEN:      strings.TrimSpace(fn.NameEN),
				MajorName:   name,
				MajorNameEN: m.NameEN,
			})
		}
		if !ok {
			continue
		}
		slices.SortFunc(m.minors, func(a, b Class) int { return cmpCode(a.MinorCode, b.MinorCode) })
		c.majors[majorKey{kind, fm.Code}] = m
		for _, cl := range m.minors {
			c.classes[classKey{kind, cl.MajorCode, cl.MinorCode}] = cl
		}
	}
}

// cmpCode orders codes by length, then by digits: 2-digit minors before
// 3-digit ones.
func cmpCode(a, b string) int {
	return cmp.Or(cmp.Compare(len(a), len(b)), cmp.Compare(a, b))
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// codeText shows a code as is when it is a short run of ASCII digits and
// quoted otherwise, so that empty or odd input stays visible in messages.
func codeText(s string) string {
	if isDigits(s) && len(s) <= 3 {
		return s
	}
	return quote(s)
}

func kindWord(k pb.Kind) string {
	switch k {
	case pb.Kind_KIND_COMPONENT:
		return "component"
	case pb.Kind_KIND_EVENT:
		return "event"
	}
	return k.String()
}

func unknown(format string, args ...any) error {
	return &reasonError{sentinel: ErrUnknownClass, reason: fmt.Sprintf(format, args...)}
}
