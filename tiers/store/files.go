package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/table"
)

// ErrDamaged is returned when the store's files or content are not a state
// the store can vouch for: a file is missing, truncated or fails its
// checksum, or the records contradict each other (Verify). The message
// names the file or the records.
var ErrDamaged = errors.New("state store damaged")

// manifestFile is badger's list of table files.
const manifestFile = "MANIFEST"

// Files is what CheckFiles found in a store directory.
type Files struct {
	// Exists is false when the directory is missing or empty: a new store.
	Exists bool
	// Orphans are table files the MANIFEST does not name. Badger deletes
	// them when it opens the store: leftovers of a compaction a crash
	// interrupted (harmless), or tables a damaged MANIFEST lost (the
	// store's content then fails Verify). Keep them before Open if the
	// content may have to be examined.
	Orphans []string
	// TornManifest is set when the MANIFEST ends in a partial record
	// (a crash while it was appended, or a truncation).
	TornManifest bool
}

// CheckFiles examines a store directory before badger opens it, reading
// only: the MANIFEST must parse, every table it names must exist and pass
// its checksums. Badger itself would delete the tables a damaged MANIFEST
// no longer names, and panics (on a goroutine of its own, which no caller
// can recover) on a truncated table; both are found here first. A damage
// is reported as an error wrapping ErrDamaged that names the file.
func CheckFiles(dir string) (Files, error) {
	var out Files
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return out, fmt.Errorf("read state store directory %s: %w", dir, err)
	}
	var names []string
	for _, e := range entries {
		if !e.IsDir() {
			names = append(names, e.Name())
		}
	}
	if len(names) == 0 {
		return out, nil
	}
	out.Exists = true
	manifest := filepath.Join(dir, manifestFile)
	if !slices.Contains(names, manifestFile) {
		return out, fmt.Errorf("%w: %s is missing (the directory holds %d other files): the store cannot know its tables", ErrDamaged, manifest, len(names))
	}
	m, torn, err := readManifest(manifest)
	if err != nil {
		return out, err
	}
	out.TornManifest = torn
	bo := badgerOptions(dir)
	for id, tm := range m.Tables {
		if err := checkTable(table.NewFilename(id, dir), id, tm, bo); err != nil {
			return out, err
		}
	}
	for _, n := range names {
		if id, ok := table.ParseFileID(n); ok && strings.HasSuffix(n, ".sst") {
			if _, named := m.Tables[id]; !named {
				out.Orphans = append(out.Orphans, filepath.Join(dir, n))
			}
		}
	}
	slices.Sort(out.Orphans)
	return out, nil
}

func readManifest(path string) (m badger.Manifest, torn bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		return m, false, fmt.Errorf("%w: %s: %v", ErrDamaged, path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return m, false, fmt.Errorf("%w: %s: %v", ErrDamaged, path, err)
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %s cannot be read: %v", ErrDamaged, path, r)
		}
	}()
	m, end, err := badger.ReplayManifestFile(f, 0, badger.DefaultOptions(""))
	if err != nil {
		return m, false, fmt.Errorf("%w: %s: %v", ErrDamaged, path, err)
	}
	return m, end < st.Size(), nil
}

// checkTable reads a table file whole and verifies its index and every
// block's checksum, as badger would on open with OnTableRead, but in this
// goroutine, where a panic on a truncated file can be recovered.
func checkTable(path string, id uint64, tm badger.TableManifest, bo badger.Options) (err error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %s is missing (the MANIFEST names table %d)", ErrDamaged, path, id)
	}
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrDamaged, path, err)
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %s (%d bytes) is truncated or corrupt: %s", ErrDamaged, path, len(data), firstLine(fmt.Sprint(r)))
		}
	}()
	if len(data) < 8 {
		return fmt.Errorf("%w: %s is truncated (%d bytes)", ErrDamaged, path, len(data))
	}
	if tm.KeyID != 0 {
		return nil // encrypted tables are not used here; leave them to badger
	}
	t, err := table.OpenInMemoryTable(data, id, &table.Options{
		BlockSize: bo.BlockSize, Compression: tm.Compression, BloomFalsePositive: bo.BloomFalsePositive,
	})
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrDamaged, path, err)
	}
	if err := t.VerifyChecksum(); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrDamaged, path, err)
	}
	return nil
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}
