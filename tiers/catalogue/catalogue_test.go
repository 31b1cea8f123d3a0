package catalogue

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

const (
	comp  = pb.Kind_KIND_COMPONENT
	event = pb.Kind_KIND_EVENT
)

// The classes DOMAIN.md section 4 names; every city table in the default
// catalogue must keep them.
var domainClasses = []struct {
	kind         pb.Kind
	major, minor string
	name         string
}{
	{comp, "01", "01", "上水井盖"},
	{comp, "01", "02", "污水井盖"},
	{comp, "01", "03", "雨水井盖"},
	{comp, "01", "05", "电力井盖"},
	{comp, "01", "14", "不明井盖"},
	{comp, "01", "18", "路灯"},
	{comp, "02", "03", "公交站亭"},
	{comp, "02", "14", "交通信号灯"},
	{comp, "03", "01", "公共厕所"},
	{comp, "03", "05", "垃圾箱"},
	{comp, "03", "07", "广告牌匾"},
	{comp, "04", "02", "行道树"},
	{comp, "04", "05", "绿地"},
	{event, "01", "01", "私搭乱建"},
	{event, "01", "02", "暴露垃圾"},
	{event, "01", "04", "道路不洁"},
	{event, "02", "01", "非法小广告"},
	{event, "03", "02", "工地扬尘"},
	{event, "04", "01", "路面塌陷"},
	{event, "04", "02", "自来水管破裂"},
	{event, "05", "01", "无照经营游商"},
	{event, "05", "04", "店外经营"},
	{event, "05", "05", "机动车乱停放"},
}

func TestDefaultLoads(t *testing.T) {
	// Guards the panic in Default: the embedded file must load.
	c, err := Load(defaultYAML)
	if err != nil {
		t.Fatalf("embedded default catalogue does not load: %v", err)
	}
	if c.Version() != "2026.1" {
		t.Errorf("Version() = %q, want 2026.1", c.Version())
	}
	if c.Name() == "" {
		t.Error("Name() is empty")
	}
	if Default() != Default() {
		t.Error("Default() should return the same shared catalogue")
	}
	if Default().Len() != c.Len() {
		t.Errorf("Default().Len() = %d, Load().Len() = %d", Default().Len(), c.Len())
	}
}

func TestDefaultHasDomainClasses(t *testing.T) {
	c := Default()
	for _, dc := range domainClasses {
		cl, err := c.Lookup(dc.kind, dc.major, dc.minor)
		if err != nil {
			t.Errorf("Lookup(%v, %s, %s): %v", dc.kind, dc.major, dc.minor, err)
			continue
		}
		if cl.Name != dc.name {
			t.Errorf("%v %s/%s name = %q, want %q", dc.kind, dc.major, dc.minor, cl.Name, dc.name)
		}
		if cl.NameEN == "" || cl.MajorName == "" || cl.MajorNameEN == "" {
			t.Errorf("%v: missing names: %+v", cl, cl)
		}
	}
}

func TestDefaultMajors(t *testing.T) {
	c := Default()
	want := map[pb.Kind][]string{
		comp:  {"01 公用设施", "02 道路交通", "03 市容环境", "04 园林绿化", "05 房屋土地", "06 其他设施"},
		event: {"01 市容环境", "02 宣传广告", "03 施工管理", "04 突发事件", "05 街面秩序"},
	}
	for kind, names := range want {
		var got []string
		for _, m := range c.Majors(kind) {
			got = append(got, m.Code+" "+m.Name)
			n := 0
			for _, cl := range c.Classes() {
				if cl.Kind == kind && cl.MajorCode == m.Code {
					n++
				}
			}
			if n < 8 || n > 16 {
				t.Errorf("%v major %s has %d minors, want 8..16", kind, m.Code, n)
			}
		}
		if !slices.Equal(got, names) {
			t.Errorf("Majors(%v) = %v, want %v", kind, got, names)
		}
	}
	// Both minor-code widths are present under component major 01.
	if _, err := c.Lookup(comp, "01", "201"); err != nil {
		t.Errorf("3-digit minor 01/201: %v", err)
	}
}

func TestClassesSortedAndProto(t *testing.T) {
	c := Default()
	classes := c.Classes()
	if len(classes) != c.Len() {
		t.Fatalf("Classes() has %d, Len() %d", len(classes), c.Len())
	}
	less := func(a, b Class) bool {
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		if a.MajorCode != b.MajorCode {
			return cmpCode(a.MajorCode, b.MajorCode) < 0
		}
		return cmpCode(a.MinorCode, b.MinorCode) < 0
	}
	for i := 1; i < len(classes); i++ {
		if !less(classes[i-1], classes[i]) {
			t.Fatalf("Classes() not sorted at %d: %v then %v", i, classes[i-1], classes[i])
		}
	}
	// 2-digit minors sort before 3-digit ones.
	var minors01 []string
	for _, cl := range classes {
		if cl.Kind == comp && cl.MajorCode == "01" {
			minors01 = append(minors01, cl.MinorCode)
		}
	}
	if last := minors01[len(minors01)-1]; len(last) != 3 || len(minors01[0]) != 2 {
		t.Errorf("component 01 minors order: %v", minors01)
	}
	// Classes returns a copy.
	classes[0].Name = "changed"
	if c.Classes()[0].Name == "changed" {
		t.Error("Classes() exposes the catalogue's own slice")
	}

	p := c.Proto()
	if p.GetVersion() != "2026.1" || len(p.GetClasses()) != c.Len() {
		t.Fatalf("Proto() = version %q, %d classes", p.GetVersion(), len(p.GetClasses()))
	}
	for i, pc := range p.GetClasses() {
		cl := c.Classes()[i]
		if pc.GetKind() != cl.Kind || pc.GetMajorCode() != cl.MajorCode || pc.GetMinorCode() != cl.MinorCode ||
			pc.GetName() != cl.Name || pc.GetMajorName() != cl.MajorName {
			t.Fatalf("Proto class %d = %v, want %v", i, pc, cl)
		}
	}
}

func TestLookupUnknown(t *testing.T) {
	c := Default()
	tests := []struct {
		name         string
		kind         pb.Kind
		major, minor string
		want         []string
	}{
		{"unknown major", comp, "09", "01",
			[]string{"component class 09/01", "major class 09", "valid component majors: 01 公用设施, 02 道路交通"}},
		{"unknown event major", event, "06", "01",
			[]string{"event class 06/01", "05 街面秩序"}},
		{"unknown minor", comp, "01", "99",
			[]string{"component class 01/99", "minor class 99", "01 公用设施", "18 路灯", "201 电动汽车充电桩"}},
		{"event minor under component", comp, "05", "10",
			[]string{"05/10", "房屋土地"}},
		{"unspecified kind", pb.Kind_KIND_UNSPECIFIED, "01", "01",
			[]string{"KIND_UNSPECIFIED", "KIND_COMPONENT or KIND_EVENT"}},
		{"malformed major", event, "1", "01", []string{"event class 1/01", "valid event majors"}},
		{"empty minor", event, "01", "", []string{`event class 01/"": no minor class ""`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.Lookup(tt.kind, tt.major, tt.minor)
			if !errors.Is(err, ErrUnknownClass) {
				t.Fatalf("Lookup(%v, %q, %q) = %v, want ErrUnknownClass", tt.kind, tt.major, tt.minor, err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestValidateClass(t *testing.T) {
	c := Default()
	const grid = "320508110152102" // district 320508
	tests := []struct {
		name                           string
		kind                           pb.Kind
		major, minor, component, gridC string
		field                          string // "" means valid
		sentinel                       error
		reason                         string
	}{
		{"component without id", comp, "01", "01", "", grid, "", nil, ""},
		{"component with id", comp, "01", "01", "3205080101000001", grid, "", nil, ""},
		{"17-digit id, 3-digit minor", comp, "01", "201", "32050801201000007", grid, "", nil, ""},
		{"event", event, "05", "05", "", grid, "", nil, ""},

		{"unspecified kind", pb.Kind_KIND_UNSPECIFIED, "01", "01", "", grid, "kind", ErrUnknownClass, "KIND_UNSPECIFIED"},
		{"kind out of range", pb.Kind(7), "01", "01", "", grid, "kind", ErrUnknownClass, "not a case kind"},
		{"empty major", comp, "", "01", "", grid, "major_code", ErrInvalidCode, "2 ASCII digits"},
		{"3-digit major", comp, "001", "01", "", grid, "major_code", ErrInvalidCode, "2 ASCII digits"},
		{"fullwidth major", comp, "０1", "01", "", grid, "major_code", ErrInvalidCode, "2 ASCII digits"},
		{"1-digit minor", comp, "01", "1", "", grid, "minor_code", ErrInvalidCode, "2 or 3"},
		{"4-digit minor", comp, "01", "0101", "", grid, "minor_code", ErrInvalidCode, "2 or 3"},
		{"unknown major", comp, "07", "01", "", grid, "major_code", ErrUnknownClass, "valid component majors"},
		{"unknown minor", event, "05", "99", "", grid, "minor_code", ErrUnknownClass, "valid minors"},
		{"unknown 3-digit minor", comp, "01", "999", "", grid, "minor_code", ErrUnknownClass, "minor class 999"},
		{"empty grid", event, "05", "05", "", "", "grid_code", ErrInvalidCode, "empty"},
		{"short grid", event, "05", "05", "", "32050811015210", "grid_code", ErrInvalidCode, "14 digits"},
		{"fullwidth grid", event, "05", "05", "", "32050811015210３", "grid_code", ErrInvalidCode, "'３'"},
		{"zero district grid", event, "05", "05", "", "000000110152102", "grid_code", ErrInvalidCode, "000000"},
		{"component id on event", event, "05", "05", "3205080101000001", grid, "component_id", ErrInvalidCode, "event"},
		{"component id too short", comp, "01", "01", "320508010100001", grid, "component_id", ErrInvalidCode, "15 digits"},
		{"component id non-digit", comp, "01", "01", "320508010100000x", grid, "component_id", ErrInvalidCode, "'x'"},
		{"component id unicode digit", comp, "01", "01", "320508010100000１", grid, "component_id", ErrInvalidCode, "'１'"},
		{"component id other minor", comp, "01", "01", "3205080102000001", grid, "component_id", ErrInvalidCode, "class 01/02"},
		{"component id other major", comp, "01", "01", "3205080201000001", grid, "component_id", ErrInvalidCode, "class 02/01"},
		{"16-digit id for 3-digit class", comp, "01", "201", "3205080120000001", grid, "component_id", ErrInvalidCode, "class 01/20"},
		{"component id other district", comp, "01", "01", "3205820101000001", grid, "component_id", ErrInvalidCode, "district 320582"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := c.ValidateClass(tt.kind, tt.major, tt.minor, tt.component, tt.gridC)
			if tt.field == "" {
				if err != nil {
					t.Fatalf("ValidateClass = %v, want nil", err)
				}
				return
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("ValidateClass = %v (%T), want *FieldError", err, err)
			}
			if fe.Field != tt.field {
				t.Errorf("Field = %q, want %q (%v)", fe.Field, tt.field, err)
			}
			if !errors.Is(err, tt.sentinel) {
				t.Errorf("error %v does not wrap %v", err, tt.sentinel)
			}
			if !strings.HasPrefix(err.Error(), tt.field+": ") {
				t.Errorf("Error() = %q, want prefix %q", err, tt.field+": ")
			}
			if !strings.Contains(fe.Reason, tt.reason) {
				t.Errorf("Reason %q does not contain %q", fe.Reason, tt.reason)
			}
			if strings.Contains(fe.Reason, "invalid code:") || strings.Contains(fe.Reason, "unknown class:") {
				t.Errorf("Reason %q repeats the sentinel", fe.Reason)
			}
		})
	}
}

func TestLoadRejectsBadCatalogues(t *testing.T) {
	const head = "version: \"x\"\nname: test\n"
	tests := []struct {
		name string
		yaml string
		want []string // substrings of the error
	}{
		{"empty", "", []string{"empty"}},
		{"not yaml", "version: [", []string{"yaml"}},
		{"missing version", "name: t\nevents:\n  - {code: \"01\", name: a, minors: [{code: \"01\", name: b}]}\n",
			[]string{"version: missing"}},
		{"missing name", "version: v\nevents:\n  - {code: \"01\", name: a, minors: [{code: \"01\", name: b}]}\n",
			[]string{"name: missing"}},
		{"no classes", head, []string{"no components and no events"}},
		{"unknown key", head + "events:\n  - {code: \"01\", name: a, minor: [{code: \"01\", name: b}]}\n",
			[]string{"minor"}},
		{"duplicate major", head + `events:
  - {code: "01", name: 市容环境, minors: [{code: "01", name: 私搭乱建}]}
  - {code: "01", name: 宣传广告, minors: [{code: "01", name: 非法小广告}]}
`, []string{`events[1] (code "01", name "宣传广告")`, "duplicate major code", `events[0] (code "01", name "市容环境")`}},
		{"duplicate minor", head + `components:
  - code: "01"
    name: 公用设施
    minors:
      - {code: "01", name: 上水井盖}
      - {code: "18", name: 路灯}
      - {code: "18", name: 路灯杆}
`, []string{`components[0].minors[2] (code "18", name "路灯杆")`, "duplicate minor code", `minors[1] (code "18", name "路灯")`}},
		{"major code length", head + `events:
  - {code: "1", name: 市容环境, minors: [{code: "01", name: 私搭乱建}]}
`, []string{`events[0] (code "1", name "市容环境")`, "2 ASCII digits"}},
		{"minor code length", head + `events:
  - {code: "01", name: 市容环境, minors: [{code: "0101", name: 私搭乱建}]}
`, []string{`events[0].minors[0] (code "0101", name "私搭乱建")`, "2 or 3 ASCII digits"}},
		{"unquoted 1-digit code", head + `events:
  - {code: 1, name: 市容环境, minors: [{code: "01", name: 私搭乱建}]}
`, []string{`code "1"`}},
		{"non-digit code", head + `events:
  - {code: "01", name: 市容环境, minors: [{code: "Ａ1", name: 私搭乱建}]}
`, []string{`code "Ａ1"`, "ASCII digits"}},
		{"zero code", head + `events:
  - {code: "00", name: 市容环境, minors: [{code: "01", name: 私搭乱建}]}
`, []string{"00 is not a class"}},
		{"missing minor name", head + `events:
  - {code: "01", name: 市容环境, minors: [{code: "01", name: 私搭乱建}, {code: "02"}]}
`, []string{`events[0].minors[1] (code "02", name "")`, "minor name is missing"}},
		{"blank major name", head + `components:
  - {code: "01", name: "  ", minors: [{code: "01", name: 上水井盖}]}
`, []string{`components[0]`, "major name is missing"}},
		{"major without minors", head + `events:
  - {code: "01", name: 市容环境}
`, []string{"no minor classes"}},
		{"two documents", head + "events:\n  - {code: \"01\", name: a, minors: [{code: \"01\", name: b}]}\n---\nversion: y\n",
			[]string{"more than one YAML document"}},
		{"all problems reported", head + `events:
  - {code: "1", name: a, minors: [{code: "01", name: b}]}
  - {code: "02", name: c, minors: [{code: "01"}]}
`, []string{`events[0] (code "1"`, `events[1].minors[0] (code "01", name "")`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load([]byte(tt.yaml))
			if err == nil {
				t.Fatalf("Load accepted a bad catalogue: %d classes", c.Len())
			}
			if !errors.Is(err, ErrBadCatalogue) {
				t.Errorf("error %v does not wrap ErrBadCatalogue", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestLoadFile(t *testing.T) {
	if _, err := LoadFile(filepath.Join("testdata", "missing.yaml")); !errors.Is(err, ErrBadCatalogue) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("LoadFile(missing) = %v, want ErrBadCatalogue and ErrNotExist", err)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("version: v\nname: n\nevents:\n  - {code: \"01\", name: a, minors: [{code: \"1\", name: b}]}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := LoadFile(bad)
	if !errors.Is(err, ErrBadCatalogue) || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "events[0].minors[0]") {
		t.Errorf("LoadFile(bad) = %v, want ErrBadCatalogue naming the file and entry", err)
	}
}

func TestReplacementCatalogue(t *testing.T) {
	cd, err := LoadFile(filepath.Join("testdata", "chengdu.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	def := Default()
	if cd.Version() != "chengdu-2025.3" || cd.Len() != 8 {
		t.Fatalf("chengdu: version %q, %d classes", cd.Version(), cd.Len())
	}
	const grid = "510104020003004" // 成都锦江区
	tests := []struct {
		name                    string
		kind                    pb.Kind
		major, minor, component string
		chengdu, dflt           bool // accepted by each catalogue
	}{
		{"kept: water cover", comp, "01", "01", "5101040101000001", true, true},
		{"local major: dust control", event, "06", "01", "", true, false},
		{"local component major, 3-digit minor", comp, "10", "002", "51010410002000009", true, false},
		{"ownership in class: city-road collapse", event, "04", "11", "", true, false},
		{"dropped: illegal parking", event, "05", "05", "", false, true},
		{"dropped: bus shelter", comp, "02", "03", "", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, cc := range []struct {
				c    *Catalogue
				want bool
			}{{cd, tt.chengdu}, {def, tt.dflt}} {
				err := cc.c.ValidateClass(tt.kind, tt.major, tt.minor, tt.component, grid)
				if (err == nil) != cc.want {
					t.Errorf("catalogue %s: ValidateClass(%v %s/%s) = %v, want accepted=%v",
						cc.c.Version(), tt.kind, tt.major, tt.minor, err, cc.want)
				}
				if err != nil && !errors.Is(err, ErrUnknownClass) {
					t.Errorf("catalogue %s: %v is not ErrUnknownClass", cc.c.Version(), err)
				}
			}
		})
	}
	cl, err := cd.Lookup(event, "04", "01")
	if err != nil || cl.Name != "路面塌陷（区管）" {
		t.Errorf("chengdu 04/01 = %+v, %v", cl, err)
	}
	_, err = cd.Lookup(event, "05", "05")
	if err == nil || !strings.Contains(err.Error(), "chengdu-2025.3") || !strings.Contains(err.Error(), "06 扬尘治理") {
		t.Errorf("chengdu Lookup error should name the catalogue and its majors: %v", err)
	}
}

func TestConcurrentUse(t *testing.T) {
	c := Default()
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, dc := range domainClasses {
				if _, err := c.Lookup(dc.kind, dc.major, dc.minor); err != nil {
					t.Error(err)
				}
				_ = c.Classes()
				_ = c.Proto()
				_ = c.ValidateClass(dc.kind, dc.major, dc.minor, "", "320582110152102")
			}
		}()
	}
	wg.Wait()
}
