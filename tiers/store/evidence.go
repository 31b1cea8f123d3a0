package store

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
	"google.golang.org/protobuf/proto"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// Evidence families (photos and files of cases; tiers/evidence).
const (
	pfxEvidence      = "E/"       // E/<sha256 hex>                → EvidenceBlob
	keyEvidenceStats = "E/#stats" // blobs, bytes kept in B/, bytes in the object store, purged: 4 × int64 BE
	pfxBlobChunk     = "B/"       // B/<sha256 hex><index:4 BE>    → the chunk's bytes
)

func evidenceKey(sha string) []byte { return []byte(pfxEvidence + sha) }

func chunkPrefix(sha string) []byte { return []byte(pfxBlobChunk + sha) }

func chunkKey(sha string, index uint32) []byte {
	return binary.BigEndian.AppendUint32(chunkPrefix(sha), index)
}

// EvidenceStats count the evidence a group keeps.
type EvidenceStats struct {
	// Blobs is the number of distinct contents recorded (purged ones too).
	Blobs int64
	// RaftBytes are the bytes kept in the store (replicated through the
	// log); ObjectBytes those kept in the object store.
	RaftBytes, ObjectBytes int64
	// Purged counts the blobs whose bytes retention removed.
	Purged int64
}

// GetEvidenceBlob reads a blob's metadata; ErrNotFound when absent.
func (tx *Tx) GetEvidenceBlob(sha string) (*pb.EvidenceBlob, error) {
	b := &pb.EvidenceBlob{}
	if err := tx.getProto(evidenceKey(sha), b); err != nil {
		return nil, err
	}
	return b, nil
}

// PutEvidenceBlob writes a blob's metadata.
func (tx *Tx) PutEvidenceBlob(b *pb.EvidenceBlob) error {
	return tx.putProto(evidenceKey(b.Sha256), b)
}

// HasEvidenceChunk reports whether chunk index of blob sha is stored.
func (tx *Tx) HasEvidenceChunk(sha string, index uint32) (bool, error) {
	_, err := tx.txn.Get(chunkKey(sha, index))
	switch {
	case errors.Is(err, badger.ErrKeyNotFound):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("read chunk %s/%d: %w", sha, index, err)
	}
	return true, nil
}

// PutEvidenceChunk stores chunk index of blob sha.
func (tx *Tx) PutEvidenceChunk(sha string, index uint32, data []byte) error {
	return tx.set(chunkKey(sha, index), data)
}

// EvidenceChunk calls fn with chunk index of blob sha (valid only inside
// fn); ErrNotFound when absent.
func (tx *Tx) EvidenceChunk(sha string, index uint32, fn func([]byte) error) error {
	item, err := tx.txn.Get(chunkKey(sha, index))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return fmt.Errorf("chunk %s/%d: %w", sha, index, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("read chunk %s/%d: %w", sha, index, err)
	}
	return item.Value(fn)
}

// DeleteEvidenceChunks deletes every stored chunk of blob sha and returns
// how many bytes they held.
func (tx *Tx) DeleteEvidenceChunks(sha string) (int64, error) {
	var (
		keys  [][]byte
		bytes int64
	)
	it := tx.txn.NewIterator(badger.IteratorOptions{Prefix: chunkPrefix(sha)})
	for it.Rewind(); it.Valid(); it.Next() {
		item := it.Item()
		keys = append(keys, item.KeyCopy(nil))
		bytes += item.ValueSize()
	}
	it.Close()
	for _, k := range keys {
		if err := tx.del(k); err != nil {
			return 0, err
		}
	}
	return bytes, nil
}

// EvidenceStats reads the evidence counters.
func (tx *Tx) EvidenceStats() (EvidenceStats, error) {
	var st EvidenceStats
	item, err := tx.txn.Get([]byte(keyEvidenceStats))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("read evidence stats: %w", err)
	}
	err = item.Value(func(v []byte) error {
		if len(v) != 32 {
			return fmt.Errorf("evidence stats: %d bytes, want 32", len(v))
		}
		st.Blobs = int64(binary.BigEndian.Uint64(v[0:]))
		st.RaftBytes = int64(binary.BigEndian.Uint64(v[8:]))
		st.ObjectBytes = int64(binary.BigEndian.Uint64(v[16:]))
		st.Purged = int64(binary.BigEndian.Uint64(v[24:]))
		return nil
	})
	return st, err
}

// AddEvidenceStats adds d to the evidence counters.
func (tx *Tx) AddEvidenceStats(d EvidenceStats) error {
	st, err := tx.EvidenceStats()
	if err != nil {
		return err
	}
	st.Blobs += d.Blobs
	st.RaftBytes += d.RaftBytes
	st.ObjectBytes += d.ObjectBytes
	st.Purged += d.Purged
	v := make([]byte, 0, 32)
	for _, n := range []int64{st.Blobs, st.RaftBytes, st.ObjectBytes, st.Purged} {
		v = binary.BigEndian.AppendUint64(v, uint64(n))
	}
	return tx.set([]byte(keyEvidenceStats), v)
}

// EvidenceBlob reads a blob's metadata; ErrNotFound when absent.
func (s *Store) EvidenceBlob(sha string) (b *pb.EvidenceBlob, err error) {
	err = s.View(func(tx *Tx) error { b, err = tx.GetEvidenceBlob(sha); return err })
	return b, err
}

// EvidenceStats reads the evidence counters.
func (s *Store) EvidenceStats() (st EvidenceStats, err error) {
	err = s.View(func(tx *Tx) error { st, err = tx.EvidenceStats(); return err })
	return st, err
}

// ReadEvidenceChunk returns a copy of chunk index of blob sha; ErrNotFound
// when absent.
func (s *Store) ReadEvidenceChunk(sha string, index uint32) (out []byte, err error) {
	err = s.View(func(tx *Tx) error {
		return tx.EvidenceChunk(sha, index, func(v []byte) error {
			out = append([]byte(nil), v...)
			return nil
		})
	})
	return out, err
}

// EachEvidenceBlob calls fn with every blob's metadata, in content order.
func (s *Store) EachEvidenceBlob(fn func(*pb.EvidenceBlob) error) error {
	return s.View(func(tx *Tx) error {
		it := tx.txn.NewIterator(badger.IteratorOptions{Prefix: []byte(pfxEvidence), PrefetchValues: true, PrefetchSize: 64})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if string(it.Item().Key()) == keyEvidenceStats {
				continue
			}
			b := &pb.EvidenceBlob{}
			if err := it.Item().Value(func(v []byte) error { return proto.Unmarshal(v, b) }); err != nil {
				return fmt.Errorf("decode %q: %w", it.Item().Key(), err)
			}
			if err := fn(b); err != nil {
				return err
			}
		}
		return nil
	})
}
