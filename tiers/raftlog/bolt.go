package raftlog

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"os"
)

// checkBolt reads the two meta pages of raft-wal's bolt metadata file and
// checks that the file holds every page the newest valid one says is in
// use. bbolt maps the file and reads those pages directly: a truncated
// file would stop the process with SIGBUS, which no recover catches.
// (bbolt v1.3 file format: a 16-byte page header, then magic, version,
// page size, flags, root bucket, freelist page, high-water page, txid and
// an FNV-64a checksum of the fields before it, in the machine's byte
// order.)
func checkBolt(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrDamaged, path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrDamaged, path, err)
	}
	size := st.Size()
	best := boltMeta{}
	for i, off := 0, int64(0); i < 2; i++ {
		buf := make([]byte, 16+72)
		if _, err := f.ReadAt(buf, off); err != nil {
			break
		}
		m, ok := parseBoltMeta(buf[16:])
		if ok && m.txid >= best.txid {
			best = m
		}
		if i == 0 {
			off = 4096
			if ok {
				off = int64(m.pageSize)
			}
		}
	}
	if best.pageSize == 0 {
		return fmt.Errorf("%w: %s (%d bytes) has no valid meta page", ErrDamaged, path, size)
	}
	if need := int64(best.pgid) * int64(best.pageSize); size < need || best.freelist >= best.pgid {
		return fmt.Errorf("%w: %s is truncated: %d bytes, its meta page needs %d", ErrDamaged, path, size, need)
	}
	return nil
}

type boltMeta struct {
	pageSize             uint32
	freelist, pgid, txid uint64
}

func parseBoltMeta(b []byte) (boltMeta, bool) {
	const magic, version = 0xED0CDAED, 2
	e := binary.NativeEndian
	if e.Uint32(b[0:]) != magic || e.Uint32(b[4:]) != version {
		return boltMeta{}, false
	}
	h := fnv.New64a()
	_, _ = h.Write(b[:56])
	if sum := e.Uint64(b[56:]); sum != 0 && sum != h.Sum64() {
		return boltMeta{}, false
	}
	m := boltMeta{pageSize: e.Uint32(b[8:]), freelist: e.Uint64(b[32:]), pgid: e.Uint64(b[40:]), txid: e.Uint64(b[48:])}
	return m, m.pageSize >= 512
}
