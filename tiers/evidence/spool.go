package evidence

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
)

// ErrTooLarge refuses content over the size limit (evidence.max_bytes).
var ErrTooLarge = errors.New("content larger than allowed")

// ErrEmpty refuses an upload without content.
var ErrEmpty = errors.New("no content")

// Spooled is an upload written to a temporary file while it was hashed.
type Spooled struct {
	Path   string
	Size   int64
	SHA256 string // lower-case hex
	// Head is the first ExifBytes of the content (sniffing and EXIF).
	Head []byte
}

// Spool copies r into a temporary file in dir ("" is the system's),
// hashing it on the way, and refuses it once it passes max bytes. The
// caller removes the file (Remove).
func Spool(r io.Reader, dir string, max int64) (*Spooled, error) {
	f, err := os.CreateTemp(dir, "evidence-*.part")
	if err != nil {
		return nil, fmt.Errorf("spool upload: %w", err)
	}
	sp := &Spooled{Path: f.Name()}
	h := sha256.New()
	head := &headWriter{max: ExifBytes}
	n, err := io.Copy(io.MultiWriter(f, h, head), io.LimitReader(r, max+1))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && n > max {
		err = fmt.Errorf("%w: more than %d bytes (evidence.max_bytes)", ErrTooLarge, max)
	}
	if err == nil && n == 0 {
		err = ErrEmpty
	}
	if err != nil {
		sp.Remove()
		return nil, err
	}
	sp.Size, sp.SHA256, sp.Head = n, hex.EncodeToString(h.Sum(nil)), head.buf
	return sp, nil
}

// Open reads the spooled content from the start.
func (s *Spooled) Open() (*os.File, error) { return os.Open(s.Path) }

// Remove deletes the temporary file.
func (s *Spooled) Remove() { _ = os.Remove(s.Path) }

type headWriter struct {
	buf []byte
	max int
}

func (w *headWriter) Write(p []byte) (int, error) {
	if room := w.max - len(w.buf); room > 0 {
		w.buf = append(w.buf, p[:min(room, len(p))]...)
	}
	return len(p), nil
}
