package catalogue

import (
	"errors"
	"fmt"
	"unicode/utf8"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// Code lengths (DOMAIN.md section 4).
const (
	GridCodeLen       = 15 // unit grid code
	ComponentIDLen    = 16 // component id, 2-digit minor class
	ComponentIDLenNew = 17 // component id, 3-digit minor class (GB/T 47678)

	districtLen  = 6
	streetLen    = 3
	communityLen = 3
	serialLen    = 6
	majorLen     = 2
)

// Sentinel errors. Test for them with errors.Is.
var (
	// ErrInvalidCode: a grid code, component id or class code is malformed,
	// or a component id does not fit the case it is attached to.
	ErrInvalidCode = errors.New("invalid code")
	// ErrUnknownClass: a well-formed class code (or kind) is not in the catalogue.
	ErrUnknownClass = errors.New("unknown class")
	// ErrBadCatalogue: a catalogue file cannot be parsed or breaks the rules.
	ErrBadCatalogue = errors.New("bad catalogue")
)

// FieldError is a validation failure tied to one field of the wire request
// ("kind", "major_code", "minor_code", "grid_code", "component_id").
// Err is ErrInvalidCode or ErrUnknownClass.
type FieldError struct {
	Field  string
	Reason string
	Err    error
}

// Error returns "field: reason".
func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

// Unwrap returns the sentinel (ErrInvalidCode or ErrUnknownClass).
func (e *FieldError) Unwrap() error { return e.Err }

// Grid is a parsed unit grid code: district(6) + street(3) + community(3) +
// grid(3). Each field holds only its own digits; the methods return the
// cumulative prefixes used for jurisdiction matching.
type Grid struct {
	District  string // 6 digits, GB/T 2260 county-level code, e.g. 320582
	Street    string // 3 digits
	Community string // 3 digits
	Grid      string // 3 digits
}

// Code returns the full 15-digit grid code.
func (g Grid) Code() string { return g.District + g.Street + g.Community + g.Grid }

// String returns the full 15-digit grid code.
func (g Grid) String() string { return g.Code() }

// CityCode returns the 4-digit GB/T 2260 prefecture prefix of the district
// (e.g. "4113" for 411302). Municipalities and some province-administered
// counties do not follow the prefecture split; use it as a hint only.
func (g Grid) CityCode() string { return prefix(g.District, 4) }

// DistrictCode returns the 6-digit district code.
func (g Grid) DistrictCode() string { return g.District }

// StreetCode returns the 9-digit prefix district+street that names the street
// (街道) platform's jurisdiction.
func (g Grid) StreetCode() string { return g.District + g.Street }

// CommunityCode returns the 12-digit prefix district+street+community that
// names the community (社区) jurisdiction.
func (g Grid) CommunityCode() string { return g.District + g.Street + g.Community }

// Prefix returns the grid-code prefix that names the jurisdiction of the
// given tier containing this grid: 4 digits for TIER_CITY (see CityCode), 6
// for TIER_DISTRICT, 9 for TIER_STREET, 12 for TIER_COMMUNITY, and "" for any
// other tier.
func (g Grid) Prefix(t pb.Tier) string {
	switch t {
	case pb.Tier_TIER_CITY:
		return g.CityCode()
	case pb.Tier_TIER_DISTRICT:
		return g.DistrictCode()
	case pb.Tier_TIER_STREET:
		return g.StreetCode()
	case pb.Tier_TIER_COMMUNITY:
		return g.CommunityCode()
	}
	return ""
}

// In reports whether the grid lies inside the jurisdiction named by a grid
// prefix (as returned by Prefix). The empty prefix contains every grid.
func (g Grid) In(jurisdiction string) bool {
	c := g.Code()
	return len(jurisdiction) <= len(c) && c[:len(jurisdiction)] == jurisdiction
}

func prefix(s string, n int) string {
	if len(s) < n {
		return s
	}
	return s[:n]
}

// ValidateGridCode checks that s is a unit grid code: exactly 15 ASCII digits
// whose 6-digit district part is not 000000. Errors wrap ErrInvalidCode.
func ValidateGridCode(s string) error {
	if err := checkDigits("grid code", s, GridCodeLen); err != nil {
		return err
	}
	if s[:districtLen] == "000000" {
		return invalid("grid code %s: district part is 000000", s)
	}
	return nil
}

// ParseGridCode validates s (see ValidateGridCode) and splits it.
func ParseGridCode(s string) (Grid, error) {
	if err := ValidateGridCode(s); err != nil {
		return Grid{}, err
	}
	return Grid{
		District:  s[0:6],
		Street:    s[6:9],
		Community: s[9:12],
		Grid:      s[12:15],
	}, nil
}

// JurisdictionOf returns the first digits digits of a grid code: 4 (city,
// see Grid.CityCode), 6 (district), 9 (street), 12 (community) or 15 (the
// grid itself). It returns "" when grid is not a valid grid code or digits is
// not one of those values.
func JurisdictionOf(grid string, digits int) string {
	switch digits {
	case 4, 6, 9, 12, 15:
	default:
		return ""
	}
	if ValidateGridCode(grid) != nil {
		return ""
	}
	return grid[:digits]
}

// ComponentID is a parsed component identifier: district(6) + major(2) +
// minor(2 or 3) + serial(6).
type ComponentID struct {
	District string // 6 digits
	Major    string // 2 digits
	Minor    string // 2 digits (16-digit id) or 3 digits (17-digit id)
	Serial   string // 6 digits
}

// String returns the identifier as digits.
func (c ComponentID) String() string { return c.District + c.Major + c.Minor + c.Serial }

// ValidateComponentID checks that id is a component identifier: 16 or 17
// ASCII digits, with a district part other than 000000 and major and minor
// class parts other than all zeros. Whether the class exists is a catalogue
// question (Catalogue.ValidateClass). Errors wrap ErrInvalidCode.
func ValidateComponentID(id string) error {
	_, err := ParseComponentID(id)
	return err
}

// ParseComponentID validates id (see ValidateComponentID) and splits it:
// 16 digits as 6+2+2+6, 17 digits as 6+2+3+6.
func ParseComponentID(id string) (ComponentID, error) {
	if err := checkDigits("component id", id, ComponentIDLen, ComponentIDLenNew); err != nil {
		return ComponentID{}, err
	}
	minorLen := len(id) - districtLen - majorLen - serialLen
	c := ComponentID{
		District: id[:districtLen],
		Major:    id[districtLen : districtLen+majorLen],
		Minor:    id[districtLen+majorLen : districtLen+majorLen+minorLen],
		Serial:   id[len(id)-serialLen:],
	}
	switch {
	case c.District == "000000":
		return ComponentID{}, invalid("component id %s: district part is 000000", id)
	case allZero(c.Major):
		return ComponentID{}, invalid("component id %s: major class part is %s", id, c.Major)
	case allZero(c.Minor):
		return ComponentID{}, invalid("component id %s: minor class part is %s", id, c.Minor)
	}
	return c, nil
}

// checkDigits reports, wrapping ErrInvalidCode, whether s is made of ASCII
// digits only and has one of the lengths given.
func checkDigits(what, s string, lengths ...int) error {
	want := fmt.Sprint(lengths[0])
	if len(lengths) == 2 {
		want = fmt.Sprintf("%d or %d", lengths[0], lengths[1])
	}
	if s == "" {
		return invalid("%s is empty, want %s digits", what, want)
	}
	pos := 0
	for i, r := range s {
		pos++
		if r < '0' || r > '9' {
			desc := fmt.Sprintf("%q", r)
			if r == utf8.RuneError {
				if _, size := utf8.DecodeRuneInString(s[i:]); size == 1 {
					desc = fmt.Sprintf("byte 0x%02x (invalid UTF-8)", s[i])
				}
			}
			return invalid("%s %s: character %d is %s, want ASCII digits 0-9 only", what, quote(s), pos, desc)
		}
	}
	for _, n := range lengths {
		if len(s) == n {
			return nil
		}
	}
	return invalid("%s %s has %d digits, want %s", what, quote(s), len(s), want)
}

func allZero(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] != '0' {
			return false
		}
	}
	return true
}

func invalid(format string, args ...any) error {
	return &reasonError{sentinel: ErrInvalidCode, reason: fmt.Sprintf(format, args...)}
}

// reasonError is a sentinel plus a reason; FieldError reuses the reason.
type reasonError struct {
	sentinel error
	reason   string
}

func (e *reasonError) Error() string { return e.sentinel.Error() + ": " + e.reason }
func (e *reasonError) Unwrap() error { return e.sentinel }

// reasonOf returns the reason of err without the sentinel's prefix.
func reasonOf(err error) string {
	var re *reasonError
	if errors.As(err, &re) {
		return re.reason
	}
	return err.Error()
}

// quote quotes user input for an error message, cut to a readable length.
func quote(s string) string {
	const max = 40
	if utf8.RuneCountInString(s) <= max {
		return fmt.Sprintf("%q", s)
	}
	n := 0
	for i := range s {
		if n == max {
			return fmt.Sprintf("%q…", s[:i])
		}
		n++
	}
	return fmt.Sprintf("%q", s)
}
