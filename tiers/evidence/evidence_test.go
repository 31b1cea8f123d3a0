package evidence_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cityhub/cityhub/tiers/evidence"
)

// The fixture was made with exiftool (README of testdata: a 16×12 JPEG,
// Huawei Mate 60, 2026-11-22 09:30:15 +08:00, 31.2987 N 120.5853 E).
func TestReadExifFromARealPhoto(t *testing.T) {
	data, err := os.ReadFile("testdata/exif.jpg")
	if err != nil {
		t.Fatal(err)
	}
	info, err := evidence.ReadExif(data, time.UTC)
	if err != nil || info == nil {
		t.Fatalf("ReadExif: %v %v", info, err)
	}
	want := time.Date(2026, 11, 22, 9, 30, 15, 0, time.FixedZone("CST", 8*3600))
	if !info.TakenAt.AsTime().Equal(want) {
		t.Errorf("taken at %v, want %v", info.TakenAt.AsTime(), want)
	}
	if !info.HasPosition || math.Abs(info.Lat-31.2987) > 1e-4 || math.Abs(info.Lng-120.5853) > 1e-4 {
		t.Errorf("position %v %v,%v, want 31.2987,120.5853", info.HasPosition, info.Lat, info.Lng)
	}
	if info.Camera != "Huawei Mate 60" {
		t.Errorf("camera %q", info.Camera)
	}
}

func TestReadExifWithoutExifOrBroken(t *testing.T) {
	plain := jpegBytes(t, 8)
	if info, err := evidence.ReadExif(plain, time.UTC); info != nil || err != nil {
		t.Errorf("a JPEG without EXIF: %v %v", info, err)
	}
	// A truncated EXIF block is metadata lost, never a panic.
	data, _ := os.ReadFile("testdata/exif.jpg")
	for cut := 20; cut < len(data); cut += 37 {
		_, _ = evidence.ReadExif(data[:cut], time.UTC)
	}
	garbage := append([]byte("Exif\x00\x00MM\x00\x2a\x00\x00\x00\x08"), bytes.Repeat([]byte{0xff}, 64)...)
	_, _ = evidence.ReadExif(garbage, time.UTC)
}

func TestSniffAllowList(t *testing.T) {
	var pngBuf bytes.Buffer
	_ = png.Encode(&pngBuf, image.NewGray(image.Rect(0, 0, 2, 2)))
	tests := []struct {
		name string
		data []byte
		want string
		ok   bool
	}{
		{"jpeg", jpegBytes(t, 4), "image/jpeg", true},
		{"png", pngBuf.Bytes(), "image/png", true},
		{"pdf", []byte("%PDF-1.7\n1 0 obj"), "application/pdf", true},
		{"html named .jpg", []byte("<html><script>alert(1)</script>"), "text/html", false},
		{"text", []byte("just words"), "text/plain", false},
		{"zip", []byte("PK\x03\x04rest"), "application/zip", false},
	}
	for _, tt := range tests {
		got, err := evidence.Sniff(tt.data, evidence.DefaultTypes)
		if got != tt.want || (err == nil) != tt.ok {
			t.Errorf("%s: %q %v, want %q ok=%v", tt.name, got, err, tt.want, tt.ok)
		}
		if err != nil && !errors.Is(err, evidence.ErrType) {
			t.Errorf("%s: %v is not ErrType", tt.name, err)
		}
	}
	if _, err := evidence.Sniff(pngBuf.Bytes(), []string{"image/jpeg"}); !errors.Is(err, evidence.ErrType) {
		t.Errorf("png with only jpeg allowed: %v", err)
	}
}

func TestSpoolHashesAndBounds(t *testing.T) {
	dir := t.TempDir()
	data := bytes.Repeat([]byte("0123456789"), 100_000)
	sp, err := evidence.Spool(bytes.NewReader(data), dir, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	if sp.SHA256 != hex.EncodeToString(sum[:]) || sp.Size != int64(len(data)) || len(sp.Head) != evidence.ExifBytes {
		t.Fatalf("spooled %s %d head %d", sp.SHA256, sp.Size, len(sp.Head))
	}
	got, _ := os.ReadFile(sp.Path)
	if !bytes.Equal(got, data) {
		t.Fatal("spooled content differs")
	}
	sp.Remove()
	if _, err := os.Stat(sp.Path); !os.IsNotExist(err) {
		t.Errorf("spool file left: %v", err)
	}
	if _, err := evidence.Spool(bytes.NewReader(data), dir, int64(len(data))-1); !errors.Is(err, evidence.ErrTooLarge) {
		t.Errorf("one byte over: %v", err)
	}
	if _, err := evidence.Spool(strings.NewReader(""), dir, 10); !errors.Is(err, evidence.ErrEmpty) {
		t.Errorf("empty: %v", err)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("refused uploads left %d files", len(left))
	}
}

func jpegBytes(t testing.TB, n int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, n, n))
	for i := 0; i < n*n; i++ {
		img.Set(i%n, i/n, color.RGBA{uint8(i), uint8(i * 3), uint8(i * 7), 255})
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, nil); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}
