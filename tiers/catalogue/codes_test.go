package catalogue

import (
	"errors"
	"strings"
	"testing"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

func TestValidateGridCode(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr string // substring of the error; "" means valid
	}{
		{"example from DOMAIN.md", "320582110152102", ""},
		{"Wancheng district", "411302001002003", ""},
		{"zeros below district", "411302000000000", ""},
		{"empty", "", "empty"},
		{"14 digits", "32058211015210", "has 14 digits, want 15"},
		{"16 digits", "3205821101521020", "has 16 digits, want 15"},
		{"letter", "32058211015210X", `character 15 is 'X'`},
		{"space", "320582 10152102", `character 7 is ' '`},
		{"leading sign", "+32058211015210", `character 1 is '+'`},
		{"fullwidth digit", "32058211015210３", `character 15 is '３'`},
		{"arabic-indic digit", "٣20582110152102", "ASCII digits"},
		{"all fullwidth", "３２０５８２１１０１５２１０２", "character 1 is '３'"},
		{"invalid utf-8", "32058211015210\xff", "invalid UTF-8"},
		{"district 000000", "000000110152102", "district part is 000000"},
		{"all zeros", "000000000000000", "district part is 000000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateGridCode(tt.in)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("ValidateGridCode(%q) = %v, want nil", tt.in, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("ValidateGridCode(%q) = nil, want error containing %q", tt.in, tt.wantErr)
			}
			if !errors.Is(err, ErrInvalidCode) {
				t.Errorf("error %v does not wrap ErrInvalidCode", err)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not contain %q", err, tt.wantErr)
			}
			if _, perr := ParseGridCode(tt.in); perr == nil {
				t.Errorf("ParseGridCode(%q) accepted an invalid code", tt.in)
			}
		})
	}
}

func TestParseGridCode(t *testing.T) {
	g, err := ParseGridCode("320582110152102")
	if err != nil {
		t.Fatal(err)
	}
	want := Grid{District: "320582", Street: "110", Community: "152", Grid: "102"}
	if g != want {
		t.Fatalf("got %+v, want %+v", g, want)
	}
	checks := []struct{ name, got, want string }{
		{"Code", g.Code(), "320582110152102"},
		{"String", g.String(), "320582110152102"},
		{"CityCode", g.CityCode(), "3205"},
		{"DistrictCode", g.DistrictCode(), "320582"},
		{"StreetCode", g.StreetCode(), "320582110"},
		{"CommunityCode", g.CommunityCode(), "320582110152"},
		{"Prefix(CITY)", g.Prefix(pb.Tier_TIER_CITY), "3205"},
		{"Prefix(DISTRICT)", g.Prefix(pb.Tier_TIER_DISTRICT), "320582"},
		{"Prefix(STREET)", g.Prefix(pb.Tier_TIER_STREET), "320582110"},
		{"Prefix(COMMUNITY)", g.Prefix(pb.Tier_TIER_COMMUNITY), "320582110152"},
		{"Prefix(UNSPECIFIED)", g.Prefix(pb.Tier_TIER_UNSPECIFIED), ""},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
	for _, in := range []string{"", "3205", "320582", "320582110", "320582110152", "320582110152102"} {
		if !g.In(in) {
			t.Errorf("In(%q) = false, want true", in)
		}
	}
	for _, in := range []string{"320583", "320582111", "3205821101521020", "320582110152103"} {
		if g.In(in) {
			t.Errorf("In(%q) = true, want false", in)
		}
	}
}

func TestJurisdictionOf(t *testing.T) {
	const grid = "320582110152102"
	tests := []struct {
		grid   string
		digits int
		want   string
	}{
		{grid, 4, "3205"},
		{grid, 6, "320582"},
		{grid, 9, "320582110"},
		{grid, 12, "320582110152"},
		{grid, 15, grid},
		{grid, 0, ""},
		{grid, 7, ""},
		{grid, 16, ""},
		{grid, -1, ""},
		{"32058211015210", 6, ""},
		{"000000110152102", 6, ""},
	}
	for _, tt := range tests {
		if got := JurisdictionOf(tt.grid, tt.digits); got != tt.want {
			t.Errorf("JurisdictionOf(%q, %d) = %q, want %q", tt.grid, tt.digits, got, tt.want)
		}
	}
}

func TestComponentID(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    ComponentID
		wantErr string
	}{
		{"16 digits, DOMAIN.md example", "3205080101000001",
			ComponentID{District: "320508", Major: "01", Minor: "01", Serial: "000001"}, ""},
		{"16 digits, street lamp", "3205821118123456",
			ComponentID{District: "320582", Major: "11", Minor: "18", Serial: "123456"}, ""},
		{"17 digits, 3-digit minor", "32058201201000042",
			ComponentID{District: "320582", Major: "01", Minor: "201", Serial: "000042"}, ""},
		{"empty", "", ComponentID{}, "empty, want 16 or 17 digits"},
		{"15 digits", "320508010100000", ComponentID{}, "has 15 digits, want 16 or 17"},
		{"18 digits", "320508010100000100", ComponentID{}, "has 18 digits, want 16 or 17"},
		{"letter", "32050801010000A1", ComponentID{}, "character 15 is 'A'"},
		{"hyphen", "320508-0101-0001", ComponentID{}, "character 7 is '-'"},
		{"fullwidth digit", "320508010100000１", ComponentID{}, "character 16 is '１'"},
		{"district 000000", "0000000101000001", ComponentID{}, "district part is 000000"},
		{"major 00", "3205080001000001", ComponentID{}, "major class part is 00"},
		{"minor 00", "3205080100000001", ComponentID{}, "minor class part is 00"},
		{"minor 000", "32050801000000001", ComponentID{}, "minor class part is 000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseComponentID(tt.in)
			verr := ValidateComponentID(tt.in)
			if (err == nil) != (verr == nil) {
				t.Fatalf("ParseComponentID err %v, ValidateComponentID err %v: disagree", err, verr)
			}
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("ParseComponentID(%q) = %v", tt.in, err)
				}
				if got != tt.want {
					t.Fatalf("got %+v, want %+v", got, tt.want)
				}
				if got.String() != tt.in {
					t.Fatalf("String() = %q, want %q", got.String(), tt.in)
				}
				return
			}
			if err == nil {
				t.Fatalf("ParseComponentID(%q) = %+v, want error containing %q", tt.in, got, tt.wantErr)
			}
			if !errors.Is(err, ErrInvalidCode) {
				t.Errorf("error %v does not wrap ErrInvalidCode", err)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestLongInputIsTruncatedInErrors(t *testing.T) {
	err := ValidateGridCode(strings.Repeat("1", 10000))
	if err == nil || len(err.Error()) > 200 {
		t.Fatalf("error for a 10000-digit code should be short, got %d bytes", len(err.Error()))
	}
}

func FuzzValidateGridCode(f *testing.F) {
	for _, s := range []string{
		"", "320582110152102", "000000110152102", "32058211015210３",
		"3205821101521020", "\xff\xfe", "٣٣٣٣٣٣٣٣٣٣٣٣٣٣٣",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := ValidateGridCode(s)
		g, perr := ParseGridCode(s)
		if (err == nil) != (perr == nil) {
			t.Fatalf("ValidateGridCode and ParseGridCode disagree on %q: %v / %v", s, err, perr)
		}
		if err != nil {
			if !errors.Is(err, ErrInvalidCode) {
				t.Fatalf("error %v does not wrap ErrInvalidCode", err)
			}
			return
		}
		if len(s) != GridCodeLen || !isDigits(s) || s[:6] == "000000" {
			t.Fatalf("accepted invalid grid code %q", s)
		}
		if g.Code() != s || !g.In(g.StreetCode()) {
			t.Fatalf("round trip of %q gave %+v", s, g)
		}
		for _, d := range []int{4, 6, 9, 12, 15} {
			if JurisdictionOf(s, d) != s[:d] {
				t.Fatalf("JurisdictionOf(%q, %d) = %q", s, d, JurisdictionOf(s, d))
			}
		}
	})
}
