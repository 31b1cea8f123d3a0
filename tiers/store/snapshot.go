package store

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"

	"github.com/dgraph-io/badger/v4"
)

// Snapshot format: the magic line, then (uvarint key length, key, uvarint
// value length, value) per record in key order, then a zero key length and
// the CRC-32C of everything before it (4 bytes BE). Written and read as a
// stream: neither side holds the whole state in memory.
const snapshotMagic = "cityhub-state-v1\n"

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// ErrBadSnapshot is returned when a snapshot stream is not one of ours or
// is damaged.
var ErrBadSnapshot = errors.New("bad snapshot")

// ErrStateLost is returned when a restore failed after the old state was
// dropped: the store is empty or partial and must not serve.
var ErrStateLost = errors.New("state lost: restore failed after the old state was dropped")

// Snapshot is a consistent, point-in-time view of the whole store.
type Snapshot struct {
	txn *badger.Txn
	mem *memVersion // the in-memory families of the same moment
	// dash: the dashboard's counters of the same moment (dashcounters.go)
	dash *objTree
}

// Snapshot pins a read view of the current state. Writes that commit after
// it returns are not part of it. Call Release when done.
func (s *Store) Snapshot() (*Snapshot, error) {
	// The view may cover writes that are not yet on disk; the caller
	// (raft) will compact its log up to this point, so make them durable.
	if err := s.db.Sync(); err != nil {
		return nil, fmt.Errorf("sync before snapshot: %w", err)
	}
	txn, tree, dash := s.mem.exactView(s.db)
	return &Snapshot{txn: txn, mem: tree, dash: dash}, nil
}

// WriteTo streams the snapshot to w.
func (sn *Snapshot) WriteTo(w io.Writer) (int64, error) {
	crc := crc32.New(crcTable)
	bw := bufio.NewWriterSize(io.MultiWriter(w, crc), 256<<10)
	var n int64
	write := func(b []byte) error {
		m, err := bw.Write(b)
		n += int64(m)
		return err
	}
	var lenBuf [binary.MaxVarintLen64]byte
	writeChunk := func(b []byte) error {
		if err := write(lenBuf[:binary.PutUvarint(lenBuf[:], uint64(len(b)))]); err != nil {
			return err
		}
		return write(b)
	}
	if err := write([]byte(snapshotMagic)); err != nil {
		return n, err
	}
	// The in-memory families (memindex.go) are written too, merged in key
	// order: a replica of an earlier release that keeps them in badger
	// restores a whole state from this stream, and a restore here skips
	// them and rebuilds them from the cases.
	writeRecord := func(key []byte, value func(func([]byte) error) error) error {
		if err := writeChunk(key); err != nil {
			return fmt.Errorf("write snapshot: %w", err)
		}
		if err := value(writeChunk); err != nil {
			return fmt.Errorf("write snapshot: %w", err)
		}
		return nil
	}
	mi := memAll(sn.mem, sn.dash)
	defer mi.Close()
	mi.Rewind()
	it := sn.txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, PrefetchSize: 256})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		item := it.Item()
		for ; mi.Valid() && bytes.Compare(mi.Item().Key(), item.Key()) < 0; mi.Next() {
			if err := writeRecord(mi.Item().Key(), mi.Item().Value); err != nil {
				return n, err
			}
		}
		if err := writeRecord(item.Key(), item.Value); err != nil {
			return n, err
		}
	}
	for ; mi.Valid(); mi.Next() {
		if err := writeRecord(mi.Item().Key(), mi.Item().Value); err != nil {
			return n, err
		}
	}
	if err := write([]byte{0}); err != nil {
		return n, err
	}
	if err := bw.Flush(); err != nil {
		return n, fmt.Errorf("write snapshot: %w", err)
	}
	m, err := w.Write(binary.BigEndian.AppendUint32(nil, crc.Sum32()))
	return n + int64(m), err
}

// Applied is the raft index and term the snapshot's state holds (its
// m/applied record: 0, 0 for a store that never applied an entry).
func (sn *Snapshot) Applied() (index, term uint64, err error) {
	return (&Tx{txn: sn.txn}).Applied()
}

// Release frees the snapshot's read view.
func (sn *Snapshot) Release() { sn.txn.Discard() }

// Restore replaces the whole store with the snapshot read from r.
func (s *Store) Restore(r io.Reader) error {
	sr, err := newSnapshotReader(r)
	if err != nil {
		return err
	}
	// No value-log collection while the state is dropped and written.
	s.gcMu.Lock()
	defer s.gcMu.Unlock()
	defer s.nodesGen.Add(1) // the snapshot's replicas, or none
	s.counters.reset()      // the counters' values are the snapshot's from here
	s.mem.replace(newMemTree(), newDigTree(), newObjTree(), nil)
	s.near.reset()
	if err := s.db.DropAll(); err != nil {
		return fmt.Errorf("%w: clear state before restore: %w", ErrStateLost, err)
	}
	// Until the last record is in, the store is partial: the mark says
	// so to Verify should the process stop half way.
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set([]byte(keyRestoring), nil) }); err != nil {
		return fmt.Errorf("%w: mark restore: %w", ErrStateLost, err)
	}
	if err := s.db.Sync(); err != nil {
		return fmt.Errorf("%w: mark restore: %w", ErrStateLost, err)
	}
	if err := s.restoreRecords(sr); err != nil {
		return fmt.Errorf("%w: %w", ErrStateLost, err)
	}
	return nil
}

func (s *Store) restoreRecords(sr *snapshotReader) error {
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	var requests uint64
	var ledger []byte
	records, err := sr.each(func(key, val []byte) error {
		switch {
		case string(key) == keyRestoring:
			return nil // not ours to copy: this restore sets and clears it
		case storedBefore(key):
			return nil // rebuilt from the cases below (memindex.go)
		case string(key) == keyRequests:
			ledger = append([]byte(nil), val...)
		case len(key) > len(pfxRequest) && string(key[:len(pfxRequest)]) == pfxRequest:
			requests++
		}
		return wb.Set(key, val)
	})
	if err != nil {
		return err
	}
	if ledger != nil && (len(ledger) != 8 || binary.BigEndian.Uint64(ledger) != requests) {
		return fmt.Errorf("%w: it holds %d request records but counted %x", ErrBadSnapshot, requests, ledger)
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	// The count of request records (a snapshot of a store that did not
	// keep one yet gets it here), and the restore is complete.
	if err := s.db.Update(func(txn *badger.Txn) error {
		if requests > 0 && ledger == nil {
			if err := txn.Set([]byte(keyRequests), binary.BigEndian.AppendUint64(nil, requests)); err != nil {
				return err
			}
		}
		return txn.Delete([]byte(keyRestoring))
	}); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	s.log.Info("state restored from snapshot", "records", records)
	if err := s.loadFlowFloor(); err != nil {
		return err
	}
	if err := s.buildMemIndex(); err != nil {
		return err
	}
	if err := s.buildRequestFilter(); err != nil {
		return err
	}
	if err := s.loadFeedHead(); err != nil {
		return err
	}
	return s.db.Sync()
}

// ReadSnapshot reads a snapshot stream written by WriteTo, hands each
// record to fn in order and checks the stream's CRC-32C at the end: an
// error wrapping ErrBadSnapshot when the stream is not one of ours or is
// damaged (fn may have seen records by then). It returns the number of
// records. fn must not keep key or val.
func ReadSnapshot(r io.Reader, fn func(key, val []byte) error) (int, error) {
	sr, err := newSnapshotReader(r)
	if err != nil {
		return 0, err
	}
	return sr.each(fn)
}

// snapshotReader reads a snapshot stream after its magic line.
type snapshotReader struct {
	tr  *teeByteReader
	br  *bufio.Reader
	crc hash.Hash32
}

func newSnapshotReader(r io.Reader) (*snapshotReader, error) {
	crc := crc32.New(crcTable)
	br := bufio.NewReaderSize(r, 256<<10)
	tr := &teeByteReader{r: br, h: crc}
	magic := make([]byte, len(snapshotMagic))
	if _, err := io.ReadFull(tr, magic); err != nil || string(magic) != snapshotMagic {
		return nil, fmt.Errorf("%w: missing header", ErrBadSnapshot)
	}
	return &snapshotReader{tr: tr, br: br, crc: crc}, nil
}

// each hands every record to fn, then checks the checksum. It may read
// ahead of the stream's end: a container that puts anything after a
// snapshot stream must hand over the stream alone.
func (sr *snapshotReader) each(fn func(key, val []byte) error) (int, error) {
	records := 0
	for {
		key, err := readChunk(sr.tr)
		if err != nil {
			return records, fmt.Errorf("%w: record %d key: %v", ErrBadSnapshot, records, err)
		}
		if len(key) == 0 {
			break
		}
		val, err := readChunk(sr.tr)
		if err != nil {
			return records, fmt.Errorf("%w: record %d value: %v", ErrBadSnapshot, records, err)
		}
		if err := fn(key, val); err != nil {
			return records, fmt.Errorf("record %d: %w", records, err)
		}
		records++
	}
	want := sr.crc.Sum32()
	var sum [4]byte
	if _, err := io.ReadFull(sr.br, sum[:]); err != nil {
		return records, fmt.Errorf("%w: missing checksum", ErrBadSnapshot)
	}
	if got := binary.BigEndian.Uint32(sum[:]); got != want {
		return records, fmt.Errorf("%w: checksum %08x, computed %08x", ErrBadSnapshot, got, want)
	}
	return records, nil
}

// maxChunk bounds one key or value in a snapshot, so a damaged length
// cannot make Restore allocate without limit.
const maxChunk = 64 << 20

func readChunk(r *teeByteReader) ([]byte, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, err
	}
	if n > maxChunk {
		return nil, fmt.Errorf("chunk of %d bytes", n)
	}
	b := make([]byte, n)
	_, err = io.ReadFull(r, b)
	return b, err
}

// teeByteReader feeds everything read to a hash.
type teeByteReader struct {
	r *bufio.Reader
	h io.Writer
}

func (t *teeByteReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	t.h.Write(p[:n])
	return n, err
}

func (t *teeByteReader) ReadByte() (byte, error) {
	b, err := t.r.ReadByte()
	if err == nil {
		t.h.Write([]byte{b})
	}
	return b, err
}
