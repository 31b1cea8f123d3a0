package backup

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"google.golang.org/protobuf/proto"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/store"
)

// Magic starts every backup file.
const Magic = "cityhub-backup-v1\n"

// maxInfo bounds the header, so a damaged length cannot allocate much.
const maxInfo = 1 << 20

// ErrBadBackup is returned for a file that is not a backup or is damaged.
var ErrBadBackup = errors.New("bad backup file")

// Saved describes a backup written by SaveFile.
type Saved struct {
	Path   string
	Info   *pb.SnapshotInfo
	Bytes  int64
	SHA256 string // of the whole file (FILE.sha256)
	Cases  int
}

// Save streams a snapshot of the group behind cl into w in the backup
// format and returns the snapshot's info and the bytes written.
func Save(ctx context.Context, cl pb.ClusterServiceClient, req *pb.SaveSnapshotRequest, w io.Writer) (*pb.SnapshotInfo, int64, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rs, err := cl.SaveSnapshot(ctx, req)
	if err != nil {
		return nil, 0, err
	}
	first, err := rs.Recv()
	if err != nil {
		return nil, 0, err
	}
	info := first.GetInfo()
	if info == nil {
		return nil, 0, fmt.Errorf("%w: the node sent data before the snapshot's info", ErrBadBackup)
	}
	sum := sha256.New()
	cw := &countWriter{w: io.MultiWriter(w, sum)}
	if err := writeHeader(cw, info); err != nil {
		return nil, cw.n, err
	}
	for {
		m, err := rs.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, cw.n, err
		}
		if _, err := cw.Write(m.GetData()); err != nil {
			return nil, cw.n, fmt.Errorf("write backup: %w", err)
		}
	}
	if _, err := cw.Write(sum.Sum(nil)); err != nil {
		return nil, cw.n, fmt.Errorf("write backup: %w", err)
	}
	return info, cw.n, nil
}

func writeHeader(w io.Writer, info *pb.SnapshotInfo) error {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(info)
	if err != nil {
		return err
	}
	var hdr bytes.Buffer
	hdr.WriteString(Magic)
	hdr.Write(binary.AppendUvarint(nil, uint64(len(b))))
	hdr.Write(b)
	_, err = w.Write(hdr.Bytes())
	return err
}

// SaveFile saves a snapshot to path: written to path.part, checked (read
// back in full), synced and renamed, then path.sha256 beside it. A failed
// save leaves no file at path.
func SaveFile(ctx context.Context, cl pb.ClusterServiceClient, req *pb.SaveSnapshotRequest, path string) (*Saved, error) {
	part := path + ".part"
	f, err := os.OpenFile(part, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	defer os.Remove(part) // after a successful rename there is nothing to remove
	bw := bufio.NewWriterSize(f, 1<<20)
	info, n, err := Save(ctx, cl, req, bw)
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	st, err := InspectFile(part)
	if err != nil {
		return nil, err
	}
	if !st.ChecksumOK {
		return nil, fmt.Errorf("%w: the file written does not check: %s", ErrBadBackup, st.Problem)
	}
	if err := os.Rename(part, path); err != nil {
		return nil, err
	}
	if err := writeSideFile(path, st.SHA256); err != nil {
		return nil, err
	}
	syncDir(filepath.Dir(path))
	return &Saved{Path: path, Info: info, Bytes: n, SHA256: st.SHA256, Cases: st.Cases}, nil
}

// SideFile is where the SHA-256 of a backup file is kept.
func SideFile(path string) string { return path + ".sha256" }

func writeSideFile(path, sum string) error {
	line := fmt.Sprintf("%s  %s\n", sum, filepath.Base(path))
	return os.WriteFile(SideFile(path), []byte(line), 0o600)
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}

// Status is what Inspect finds in a backup.
type Status struct {
	Info    *pb.SnapshotInfo
	Bytes   int64
	Records int
	Cases   int
	// SHA256 is the SHA-256 of the whole file (what FILE.sha256 holds).
	SHA256 string
	// ChecksumOK: the trailing SHA-256 and the state's CRC-32C match.
	ChecksumOK bool
	// SideFile is "ok", "differs" or "missing" (InspectFile only).
	SideFile string
	// Problem says what is wrong when ChecksumOK is false.
	Problem string
}

// Inspect reads a whole backup, counts its records and cases and checks
// its checksums. A file that is damaged gives a Status with ChecksumOK
// false and the problem; an error is returned only when nothing could be
// read (not a backup at all, or r failed).
func Inspect(r io.Reader) (*Status, error) {
	whole := sha256.New()
	hb := &holdback{r: io.TeeReader(r, whole), keep: sha256.Size}
	prefix := sha256.New()
	cr := &countReader{r: io.TeeReader(hb, prefix)}
	br := bufio.NewReaderSize(cr, 256<<10)
	info, err := readHeader(br)
	if err != nil {
		return nil, err
	}
	st := &Status{Info: info}
	st.Records, err = store.ReadSnapshot(br, func(key, _ []byte) error {
		if bytes.HasPrefix(key, []byte("c/")) {
			st.Cases++
		}
		return nil
	})
	extra, cerr := io.Copy(io.Discard, br)
	if cerr != nil {
		return nil, cerr
	}
	st.Bytes = cr.n + int64(len(hb.tail()))
	st.SHA256 = hex.EncodeToString(whole.Sum(nil))
	switch {
	case err != nil:
		st.Problem = err.Error()
	case extra > 0:
		st.Problem = fmt.Sprintf("%d bytes after the state", extra)
	case len(hb.tail()) != sha256.Size:
		st.Problem = "no trailing checksum"
	case !bytes.Equal(hb.tail(), prefix.Sum(nil)):
		st.Problem = "the trailing SHA-256 does not match the file"
	default:
		st.ChecksumOK = true
	}
	return st, nil
}

// InspectFile is Inspect of the file at path, and compares its SHA-256
// with path.sha256 when there is one.
func InspectFile(path string) (*Status, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := Inspect(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	side, err := os.ReadFile(SideFile(path))
	switch {
	case errors.Is(err, os.ErrNotExist):
		st.SideFile = "missing"
	case err != nil:
		return nil, err
	default:
		fields := strings.Fields(string(side))
		st.SideFile = "differs"
		if len(fields) > 0 && strings.EqualFold(fields[0], st.SHA256) {
			st.SideFile = "ok"
		}
	}
	return st, nil
}

func readHeader(br *bufio.Reader) (*pb.SnapshotInfo, error) {
	magic := make([]byte, len(Magic))
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != Magic {
		return nil, fmt.Errorf("%w: not a cityhub backup (no %q at the start)", ErrBadBackup, strings.TrimSpace(Magic))
	}
	n, err := binary.ReadUvarint(br)
	if err != nil || n == 0 || n > maxInfo {
		return nil, fmt.Errorf("%w: header length", ErrBadBackup)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(br, b); err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrBadBackup, err)
	}
	info := &pb.SnapshotInfo{}
	if err := proto.Unmarshal(b, info); err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrBadBackup, err)
	}
	return info, nil
}

// openState opens a backup for its state stream: the header is read and
// returned, and the reader yields the state store's snapshot stream alone
// (without the trailing checksum).
func openState(path string) (*pb.SnapshotInfo, io.Reader, io.Closer, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, nil, err
	}
	br := bufio.NewReaderSize(&holdback{r: f, keep: sha256.Size}, 256<<10)
	info, err := readHeader(br)
	if err != nil {
		f.Close()
		return nil, nil, nil, err
	}
	return info, br, f, nil
}

// holdback passes r on but the last keep bytes, which tail returns once r
// is exhausted.
type holdback struct {
	r    io.Reader
	keep int
	buf  []byte
	eof  bool
}

func (h *holdback) Read(p []byte) (int, error) {
	for !h.eof && len(h.buf) < len(p)+h.keep {
		chunk := make([]byte, max(len(p)+h.keep-len(h.buf), 32<<10))
		n, err := h.r.Read(chunk)
		h.buf = append(h.buf, chunk[:n]...)
		if err == io.EOF {
			h.eof = true
		} else if err != nil {
			return 0, err
		}
		if n == 0 && err == nil {
			break
		}
	}
	avail := len(h.buf) - h.keep
	if avail <= 0 {
		if h.eof {
			return 0, io.EOF
		}
		return 0, nil
	}
	n := copy(p, h.buf[:avail])
	h.buf = h.buf[n:]
	return n, nil
}

func (h *holdback) tail() []byte {
	if !h.eof || len(h.buf) > h.keep {
		return nil
	}
	return h.buf
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
