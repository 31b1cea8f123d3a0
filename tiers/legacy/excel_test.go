package legacy_test

import (
	"bytes"
	"encoding/csv"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/text/encoding/simplifiedchinese"
	"google.golang.org/protobuf/proto"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/legacy"
)

// excelDir holds an export of an old system as Excel on Chinese Windows
// saves it ("CSV (逗号分隔)": GBK) and its UTF-8 twin (see
// testdata/city/legacy/README.md).
var (
	excelDir  = filepath.Join(sampleDir, "excel")
	excelGBK  = filepath.Join(excelDir, "d-320505-gbk.csv")
	excelUTF8 = filepath.Join(excelDir, "d-320505-utf8.csv")
)

// excelIgnored are the columns of the export cityhub has no use for.
var excelIgnored = []string{"备注", "处理意见", "联系人"}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestExcelFixtureIsGBK checks that the GBK export is its UTF-8 twin
// encoded as GBK (code page 936). CITYHUB_WRITE_FIXTURES=1 writes it.
func TestExcelFixtureIsGBK(t *testing.T) {
	twin := readFile(t, excelUTF8)
	body, ok := bytes.CutPrefix(twin, []byte("\xef\xbb\xbf"))
	if !ok {
		t.Fatal("the UTF-8 twin lacks its byte order mark")
	}
	want, err := simplifiedchinese.GBK.NewEncoder().Bytes(body)
	if err != nil {
		t.Fatalf("the UTF-8 twin has text GBK cannot encode: %v", err)
	}
	if os.Getenv("CITYHUB_WRITE_FIXTURES") != "" {
		if err := os.WriteFile(excelGBK, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got := readFile(t, excelGBK)
	if !bytes.Equal(got, want) {
		t.Fatal("d-320505-gbk.csv is not d-320505-utf8.csv in GBK: CITYHUB_WRITE_FIXTURES=1 go test -run TestExcelFixtureIsGBK ./tiers/legacy")
	}
	if legacy.DetectEncoding(got) != legacy.EncodingGB18030 || legacy.DetectEncoding(body) != legacy.EncodingUTF8 {
		t.Error("detection")
	}
}

// excelWant reads the UTF-8 twin with encoding/csv alone: the rows as
// the export means them.
func excelWant(t *testing.T) []*pb.LegacyRow {
	t.Helper()
	recs, err := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(readFile(t, excelUTF8), []byte("\xef\xbb\xbf")))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	var out []*pb.LegacyRow
	for _, r := range recs[1:] {
		out = append(out, &pb.LegacyRow{LegacyId: r[0], ReportedAt: r[1], Source: r[2], Kind: r[3], Major: r[4], Minor: r[5], GridCode: r[6],
			ComponentId: r[7], Lat: r[8], Lng: r[9], Address: r[10], Description: r[11], Status: r[12], DispatchedUnit: r[13], Deadline: r[14]})
	}
	return out
}

func excelMapping(t *testing.T) legacy.Mapping {
	t.Helper()
	m := legacy.Mapping{}
	if err := m.Parse("任务号=legacy_id"); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestParseExcelExport(t *testing.T) {
	want := excelWant(t)
	if len(want) != 12 {
		t.Fatalf("the twin has %d rows, want 12", len(want))
	}
	for _, tc := range []struct {
		path     string
		enc      legacy.Encoding
		bom      bool
		given    legacy.Encoding
		detected bool
	}{
		{excelGBK, legacy.EncodingGB18030, false, legacy.EncodingAuto, true},
		{excelGBK, legacy.EncodingGBK, false, legacy.EncodingGBK, false},
		{excelGBK, legacy.EncodingGB18030, false, legacy.EncodingGB18030, false},
		{excelUTF8, legacy.EncodingUTF8, true, legacy.EncodingAuto, false},
	} {
		f, err := legacy.ParseWith(bytes.NewReader(readFile(t, tc.path)), legacy.Options{Format: legacy.FormatCSV, Encoding: tc.given, Mapping: excelMapping(t)})
		if err != nil {
			t.Fatalf("%s: %v", tc.path, err)
		}
		if f.Encoding != tc.enc || f.BOM != tc.bom || f.Detected != tc.detected {
			t.Errorf("%s: encoding %q bom %v detected %v", tc.path, f.Encoding, f.BOM, f.Detected)
		}
		if strings.Join(f.Ignored, ",") != strings.Join(excelIgnored, ",") {
			t.Errorf("%s: ignored %q, want %q", tc.path, f.Ignored, excelIgnored)
		}
		if len(f.Renamed) != 15 || f.Renamed[0] != (legacy.Rename{From: "任务号", To: "legacy_id"}) || f.Renamed[11] != (legacy.Rename{From: "问题描述", To: "description"}) {
			t.Errorf("%s: renamed %v", tc.path, f.Renamed)
		}
		if len(f.Bad) != 0 || len(f.Rows) != len(want) {
			t.Fatalf("%s: %d rows, bad %v", tc.path, len(f.Rows), f.Bad)
		}
		for i, r := range f.Rows {
			r = proto.Clone(r).(*pb.LegacyRow)
			r.Line = 0
			if !proto.Equal(r, want[i]) {
				t.Errorf("%s: row %d:\n got %v\nwant %v", tc.path, i, r, want[i])
			}
		}
		if f.Rows[4].Line != 6 || f.Rows[5].Line != 8 || f.Rows[4].Description != "非机动车道塌陷，边缘开裂\n现场已设置围挡，需尽快修复" {
			t.Errorf("%s: multi-line row: %v %v", tc.path, f.Rows[4], f.Rows[5].Line)
		}
		cases, _, rejected := validator().Validate(f.Rows)
		if len(cases) != 12 || len(rejected) != 0 {
			t.Errorf("%s: %d cases, rejected %v", tc.path, len(cases), rejected)
		}
	}

	// Without the mapping the legacy id is missing: the header is refused.
	_, err := legacy.ParseWith(bytes.NewReader(readFile(t, excelGBK)), legacy.Options{Format: legacy.FormatCSV})
	var he *legacy.HeaderError
	if !errors.As(err, &he) || he.Column != "legacy_id" {
		t.Errorf("without a mapping: %v", err)
	}

	// Read as UTF-8, every row of the GBK export is bad, naming UTF-8.
	f, err := legacy.ParseWith(bytes.NewReader(readFile(t, excelGBK)), legacy.Options{Format: legacy.FormatCSV, Encoding: legacy.EncodingUTF8, Mapping: excelMapping(t)})
	if err == nil {
		t.Errorf("GBK header read as UTF-8: %v rows", len(f.Rows))
	} else if !strings.Contains(err.Error(), "not valid UTF-8") {
		t.Errorf("GBK header read as UTF-8: %v", err)
	}
}

// A row with bytes that are not GB18030 is one bad row naming the
// encoding; the others are read.
func TestParseGBKBadRow(t *testing.T) {
	data := readFile(t, excelGBK)
	lamp, _ := simplifiedchinese.GBK.NewEncoder().String("路灯检修口盖板缺失")
	if !bytes.Contains(data, []byte(lamp)) {
		t.Fatal("fixture changed")
	}
	data = bytes.Replace(data, []byte(lamp), append([]byte(lamp[:4]), append([]byte{0xff, 0x30}, lamp[4:]...)...), 1)
	f, err := legacy.ParseWith(bytes.NewReader(data), legacy.Options{Format: legacy.FormatCSV, Mapping: excelMapping(t)})
	if err != nil {
		t.Fatal(err)
	}
	if f.Encoding != legacy.EncodingGB18030 || !f.Detected || len(f.Rows) != 11 || len(f.Bad) != 1 {
		t.Fatalf("encoding %s, %d rows, bad %v", f.Encoding, len(f.Rows), f.Bad)
	}
	e := f.Bad[0].Err
	if e.Line != 10 || e.LegacyId != "XQ-2019-000139" || e.Field != "description" || !strings.Contains(e.Reason, "not valid GB18030") {
		t.Errorf("bad row %v", e)
	}
	if r := f.Bad[0].Row; r == nil || r.Address != "华山路向阳小学旁" || !strings.Contains(r.Description, "\uFFFD") {
		t.Errorf("bad row keeps %v", r)
	}

	// A lone lead byte at the end of a field is bad too; U+FFFD written
	// in GB18030 is not.
	for text, ok := range map[string]bool{"\xb5\xc6\x84": false, "\x84\x31\xa4\x37": true, "\x80": true} {
		csvText := "legacy_id,reported_at,source,kind,major,minor,grid_code,description,status\nA,t,s,k,01,02,g," + text + ",x\n"
		f, err := legacy.ParseWith(strings.NewReader(csvText), legacy.Options{Format: legacy.FormatCSV, Encoding: legacy.EncodingGB18030})
		if err != nil || (len(f.Rows) == 1) != ok {
			t.Errorf("%q: rows %v bad %v err %v", text, f.Rows, f.Bad, err)
		}
	}
}

func TestParseGBKJSONL(t *testing.T) {
	line, _ := simplifiedchinese.GBK.NewEncoder().String(`{"案件编号":"J1","问题描述":"路灯不亮","备注":"x","status":"filed"}` + "\n")
	f, err := legacy.ParseWith(strings.NewReader(line+"\xff\xfe{}\n"), legacy.Options{Format: legacy.FormatJSONL})
	if err != nil {
		t.Fatal(err)
	}
	if f.Encoding != legacy.EncodingGB18030 || len(f.Rows) != 1 || f.Rows[0].LegacyId != "J1" || f.Rows[0].Description != "路灯不亮" ||
		strings.Join(f.Ignored, ",") != "备注" || len(f.Bad) != 1 || f.Bad[0].Err.Line != 2 || !strings.Contains(f.Bad[0].Err.Reason, "GB18030") {
		t.Fatalf("%+v", f)
	}
}

func TestDetectEncoding(t *testing.T) {
	gbk, _ := simplifiedchinese.GBK.NewEncoder().String("上水井盖破损\n路灯不亮\n")
	for text, want := range map[string]legacy.Encoding{
		"":                                legacy.EncodingUTF8,
		"abc\n":                           legacy.EncodingUTF8,
		"上水井盖\n路灯\n":                      legacy.EncodingUTF8,
		"上水井盖\n路灯\n\xff\n":                legacy.EncodingUTF8, // mostly UTF-8: the bad line is quarantined
		gbk:                               legacy.EncodingGB18030,
		gbk + "上水井盖\n":                    legacy.EncodingGB18030, // a tie goes to GB18030
		"legacy_id\n" + gbk + "A,B,C\r\n": legacy.EncodingGB18030,
	} {
		if got := legacy.DetectEncoding([]byte(text)); got != want {
			t.Errorf("%q: %s, want %s", text, got, want)
		}
	}
	for s, want := range map[string]legacy.Encoding{"": legacy.EncodingAuto, "auto": legacy.EncodingAuto, "UTF8": legacy.EncodingUTF8,
		"utf-8": legacy.EncodingUTF8, "GB18030": legacy.EncodingGB18030, "gbk": legacy.EncodingGBK, "cp936": legacy.EncodingGBK} {
		if got, err := legacy.ParseEncoding(s); err != nil || got != want {
			t.Errorf("%q: %s %v", s, got, err)
		}
	}
	if _, err := legacy.ParseEncoding("latin1"); err == nil {
		t.Error("latin1 accepted")
	}
}

func TestMapping(t *testing.T) {
	m := legacy.Mapping{}
	if err := m.Parse(" 案件编号 = legacy_id ,上报时间=Reported_At,"); err != nil {
		t.Fatal(err)
	}
	if m["案件编号"] != "legacy_id" || m["上报时间"] != "reported_at" {
		t.Errorf("%v", m)
	}
	for s, want := range map[string]string{
		"案件编号=legacy":              `"legacy" is not a column`,
		"案件编号":                     "want OLD=column",
		"=legacy_id":               "no column name",
		"案件编号=status":              "given as legacy_id and as status",
		"a=legacy_id,b=descripton": `"descripton" is not a column`,
	} {
		if err := (legacy.Mapping{"案件编号": "legacy_id"}).Parse(s); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", s, err, want)
		}
	}

	y := legacy.Mapping{}
	if err := y.Read(strings.NewReader("任务号: legacy_id\n事发时间: reported_at\n"), true); err != nil || y["任务号"] != "legacy_id" || y["事发时间"] != "reported_at" {
		t.Errorf("yaml: %v %v", y, err)
	}
	if err := (legacy.Mapping{}).Read(strings.NewReader("任务号: legacyid\n"), true); err == nil || !strings.Contains(err.Error(), `"legacyid" is not a column`) {
		t.Errorf("yaml bad target: %v", err)
	}
	l := legacy.Mapping{}
	if err := l.Read(strings.NewReader("\ufeff# 老系统\n任务号=legacy_id\n\n问题详情 = description\n"), false); err != nil || l["任务号"] != "legacy_id" || l["问题详情"] != "description" {
		t.Errorf("lines: %v %v", l, err)
	}
	if err := (legacy.Mapping{}).Read(strings.NewReader("a=legacy_id\nb=c\n"), false); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("lines bad target: %v", err)
	}

	// A mapping wins over a column's own name and over an alias; an alias
	// to a column the header names itself is ignored; two names for one
	// column refuse the header.
	f, err := legacy.ParseWith(strings.NewReader("legacy_id,编号,reported_at,source,kind,major,minor,grid_code,description,状态,status\nX,A1,t,s,k,01,02,g,d,已派遣,filed\n"),
		legacy.Options{Format: legacy.FormatCSV, Mapping: legacy.Mapping{"legacy_id": "address", "编号": "legacy_id"}})
	if err != nil {
		t.Fatal(err)
	}
	if r := f.Rows[0]; r.LegacyId != "A1" || r.Address != "X" || r.Status != "filed" || strings.Join(f.Ignored, ",") != "状态" {
		t.Errorf("row %v ignored %q renamed %v", r, f.Ignored, f.Renamed)
	}
	_, err = legacy.ParseWith(strings.NewReader(header), legacy.Options{Format: legacy.FormatCSV, Mapping: legacy.Mapping{"address": "description"}})
	var he *legacy.HeaderError
	if !errors.As(err, &he) || he.Column != "description" || !strings.Contains(he.Reason, `"address" gives too`) {
		t.Errorf("two names for one column: %v", err)
	}
}
