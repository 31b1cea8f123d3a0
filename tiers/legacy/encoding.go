package legacy

import (
	"bytes"
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding/simplifiedchinese"
)

// Encoding is the character encoding of an export.
type Encoding string

// The encodings Parse reads. EncodingAuto detects UTF-8 or GB18030.
const (
	EncodingAuto    Encoding = ""
	EncodingUTF8    Encoding = "utf-8"
	EncodingGB18030 Encoding = "gb18030"
	// EncodingGBK is read as GB18030, its superset (what Excel on Chinese
	// Windows writes as "CSV": code page 936).
	EncodingGBK Encoding = "gbk"
)

// ParseEncoding reads an encoding name: utf-8 (utf8), gb18030, gbk (cp936,
// gb2312), or auto / "" to detect it.
func ParseEncoding(s string) (Encoding, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "auto":
		return EncodingAuto, nil
	case "utf-8", "utf8":
		return EncodingUTF8, nil
	case "gb18030":
		return EncodingGB18030, nil
	case "gbk", "cp936", "gb2312":
		return EncodingGBK, nil
	}
	return "", fmt.Errorf("unknown encoding %q: want utf-8, gb18030 or gbk", s)
}

// name is how a reason names the encoding.
func (e Encoding) name() string {
	switch e {
	case EncodingGB18030:
		return "GB18030"
	case EncodingGBK:
		return "GBK (GB18030)"
	}
	return "UTF-8"
}

// utf8BOM starts many UTF-8 exports (Excel's "CSV UTF-8").
var utf8BOM = []byte("\xef\xbb\xbf")

// DetectEncoding tells UTF-8 from GB18030 (GBK): text that is all valid
// UTF-8 is UTF-8; otherwise the lines with non-ASCII bytes vote, so a UTF-8
// export with a few broken lines stays UTF-8 (and those lines are
// quarantined) while a GBK export, whose Chinese text is almost never
// valid UTF-8, is GB18030. data must not start with a byte order mark.
func DetectEncoding(data []byte) Encoding {
	if utf8.Valid(data) {
		return EncodingUTF8
	}
	good, bad := 0, 0
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		if ascii(line) {
			continue
		}
		if utf8.Valid(line) {
			good++
		} else {
			bad++
		}
	}
	if good > bad {
		return EncodingUTF8
	}
	return EncodingGB18030
}

func ascii(b []byte) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// gbReplacement is U+FFFD encoded in GB18030: the only input the decoder
// turns into U+FFFD without it being an error.
const gbReplacement = "\x84\x31\xa4\x37"

// decode turns s, in encoding e, into UTF-8; ok is false when s is not
// valid text in e (the result then has U+FFFD for what could not be read).
func (e Encoding) decode(s string) (out string, ok bool) {
	if e == EncodingUTF8 || e == EncodingAuto || ascii([]byte(s)) {
		if utf8.ValidString(s) {
			return s, true
		}
		return strings.ToValidUTF8(s, "\uFFFD"), false
	}
	// x/text's decoder writes U+FFFD for bytes it cannot read and goes on:
	// count them.
	b, err := simplifiedchinese.GB18030.NewDecoder().Bytes([]byte(s))
	if err != nil {
		return strings.ToValidUTF8(s, "\uFFFD"), false
	}
	out = string(b)
	return out, strings.Count(out, "\uFFFD") == strings.Count(s, gbReplacement)
}

// notValid is the reason for a row that cannot be decoded.
func (e Encoding) notValid(detected bool) string {
	if detected {
		return fmt.Sprintf("not valid %s text (the encoding detected for the file)", e.name())
	}
	return fmt.Sprintf("not valid %s text (the encoding given)", e.name())
}
