package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"

	"github.com/dgraph-io/badger/v4"
	"google.golang.org/protobuf/proto"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// This file holds the records of ownership and reconciliation: the digest
// of every case (what anti-entropy compares), the legacy-id and review
// indexes, and reconciliation runs with their per-case records.

// Digest summarises the stored copy of a case: enough to compare two copies
// without reading them (anti-entropy), and to tell which nodes should have
// it (holder, reporting node).
type Digest struct {
	Epoch, Version uint64
	Hash           uint64 // FNV-64a of the deterministic encoding of the case
	Holder         string
	ReportedAt     string // jurisdiction code of the reporting node
}

func digestOf(c *pb.Case, encoded []byte) Digest {
	h := fnv.New64a()
	_, _ = h.Write(encoded)
	return Digest{Epoch: c.HolderEpoch, Version: c.Version, Hash: h.Sum64(), Holder: c.Holder, ReportedAt: c.ReportedAtNode}
}

func (d Digest) encode() []byte {
	b := make([]byte, 0, 24+len(d.Holder)+1+len(d.ReportedAt))
	b = binary.BigEndian.AppendUint64(b, d.Epoch)
	b = binary.BigEndian.AppendUint64(b, d.Version)
	b = binary.BigEndian.AppendUint64(b, d.Hash)
	b = append(b, d.Holder...)
	b = append(b, 0)
	return append(b, d.ReportedAt...)
}

// HashCase returns the hash a Digest of c carries.
func HashCase(c *pb.Case) (uint64, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(c)
	if err != nil {
		return 0, err
	}
	return digestOf(c, b).Hash, nil
}

// Digests calls fn for the digest of every stored case, in case id order,
// reading only the digest index (no case is decoded). fn returning an error
// stops the walk with that error.
func (s *Store) Digests(fn func(id string, d Digest) error) error {
	return s.View(func(tx *Tx) error { return tx.eachDigest(fn) })
}

// DeleteCase removes a case with its index entries, digest and state count
// (anti-entropy drops stray mirrors). Absent cases are not an error.
func (tx *Tx) DeleteCase(id string) error {
	c, err := tx.GetCase(id)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	keys := append(indexKeys(c), caseKey(id), digestKey(id))
	if c.LegacyId != "" {
		keys = append(keys, legacyKey(c.ReportedAtNode, c.LegacyId))
	}
	for _, e := range nearbyEntries(c) {
		keys = append(keys, e.key)
	}
	for _, k := range keys {
		if err := tx.del(k); err != nil {
			return err
		}
	}
	if err := tx.putDash(c, nil); err != nil {
		return err
	}
	if err := tx.appendChange(pb.ChangeKind_CHANGE_KIND_REMOVED, c, c); err != nil {
		return err
	}
	return tx.addCount(c.State, -1)
}

// CaseByLegacyID returns the id of the case node (a jurisdiction code: the
// case's reporting node) imported with legacyID; ErrNotFound when there is
// none. It is a point read (an import looks up every row inside one
// transaction).
func (tx *Tx) CaseByLegacyID(node, legacyID string) (string, error) {
	item, err := tx.get(legacyKey(node, legacyID))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return "", fmt.Errorf("legacy id %q: %w", legacyID, ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("read legacy id %q: %w", legacyID, err)
	}
	v, err := item.ValueCopy(nil)
	if err != nil {
		return "", fmt.Errorf("read legacy id %q: %w", legacyID, err)
	}
	return string(v), nil
}

// ReconcileRun reads a run; ErrNotFound when absent.
func (tx *Tx) ReconcileRun(id string) (*pb.ReconcileRun, error) {
	r := &pb.ReconcileRun{}
	if err := tx.getProto(runKey(id), r); err != nil {
		return nil, err
	}
	return r, nil
}

// PutReconcileRun writes a run.
func (tx *Tx) PutReconcileRun(r *pb.ReconcileRun) error { return tx.putProto(runKey(r.RunId), r) }

// ReconcileRuns returns every run, in run id order.
func (tx *Tx) ReconcileRuns() ([]*pb.ReconcileRun, error) {
	var out []*pb.ReconcileRun
	it := tx.iterator(badger.IteratorOptions{Prefix: []byte(pfxRun), PrefetchValues: true})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		r := &pb.ReconcileRun{}
		if err := it.Item().Value(func(v []byte) error { return proto.Unmarshal(v, r) }); err != nil {
			return nil, fmt.Errorf("decode run %q: %w", it.Item().Key(), err)
		}
		out = append(out, r)
	}
	return out, nil
}

// HasReconcileRecord reports whether run recorded case id.
func (tx *Tx) HasReconcileRecord(run, id string) (bool, error) {
	_, err := tx.get(runRecordKey(run, id))
	switch {
	case errors.Is(err, badger.ErrKeyNotFound):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("read run record: %w", err)
	}
	return true, nil
}

// PutReconcileRecord records what run did to a case (replacing an earlier
// record of the same run).
func (tx *Tx) PutReconcileRecord(run string, r *pb.ReconcileRecord) error {
	return tx.putProto(runRecordKey(run, r.CaseId), r)
}

// ReconcileRecords calls fn for every record of run, in case id order.
func (tx *Tx) ReconcileRecords(run string, fn func(*pb.ReconcileRecord) error) error {
	it := tx.iterator(badger.IteratorOptions{Prefix: runRecordPrefix(run), PrefetchValues: true, PrefetchSize: 256})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		r := &pb.ReconcileRecord{}
		if err := it.Item().Value(func(v []byte) error { return proto.Unmarshal(v, r) }); err != nil {
			return fmt.Errorf("decode run record %q: %w", it.Item().Key(), err)
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}
