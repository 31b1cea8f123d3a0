package evidence

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// SniffBytes is how much of the content Sniff looks at.
const SniffBytes = 512

// DefaultTypes are the content types accepted when the configuration
// names none: photos, short videos and documents.
var DefaultTypes = []string{"image/jpeg", "image/png", "image/webp", "video/mp4", "application/pdf"}

// ErrType refuses content whose sniffed type is not allowed.
var ErrType = errors.New("content type not allowed")

// Sniff returns the content type of head (the first bytes of the content)
// as the content itself shows it, never what the client says, and refuses
// a type outside allowed.
func Sniff(head []byte, allowed []string) (string, error) {
	ct := http.DetectContentType(head[:min(len(head), SniffBytes)])
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	ct = strings.TrimSpace(ct)
	if !slices.Contains(allowed, ct) {
		return ct, fmt.Errorf("%w: the content is %s; allowed: %s", ErrType, ct, strings.Join(allowed, ", "))
	}
	return ct, nil
}
