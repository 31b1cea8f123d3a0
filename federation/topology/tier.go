package topology

import (
	"fmt"
	"strings"
)

// Tier is the level of the administrative hierarchy a node serves.
// The zero value is not a valid tier.
type Tier int

const (
	City      Tier = iota + 1 // 市: first-level platform, the root
	District                  // 区/县: second-level platform
	Street                    // 街道/乡镇: third-level platform
	Community                 // 社区: fourth-level platform
)

// String returns the lower-case English name of the tier.
func (t Tier) String() string {
	switch t {
	case City:
		return "city"
	case District:
		return "district"
	case Street:
		return "street"
	case Community:
		return "community"
	}
	return fmt.Sprintf("Tier(%d)", int(t))
}

// Valid reports whether t is one of the four tiers.
func (t Tier) Valid() bool { return t >= City && t <= Community }

// CodeLen is the number of digits of a jurisdiction code at this tier:
// 6 for city and district, 9 for street, 12 for community. It is 0 for an
// invalid tier.
func (t Tier) CodeLen() int {
	switch t {
	case City, District:
		return 6
	case Street:
		return 9
	case Community:
		return 12
	}
	return 0
}

// ParseTier parses a tier name: the English name (any case) or the Chinese
// one (市, 区/县, 街道/乡镇, 社区).
func ParseTier(s string) (Tier, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "city", "市":
		return City, nil
	case "district", "区", "县", "区县":
		return District, nil
	case "street", "街道", "乡镇":
		return Street, nil
	case "community", "社区":
		return Community, nil
	}
	return 0, fmt.Errorf("unknown tier %q (want city, district, street or community)", s)
}

// MarshalText implements encoding.TextMarshaler.
func (t Tier) MarshalText() ([]byte, error) {
	if !t.Valid() {
		return nil, fmt.Errorf("invalid tier %d", int(t))
	}
	return []byte(t.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (t *Tier) UnmarshalText(b []byte) error {
	v, err := ParseTier(string(b))
	if err != nil {
		return err
	}
	*t = v
	return nil
}
