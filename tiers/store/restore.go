package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/dgraph-io/badger/v4"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// This file holds what a group restored from a backup keeps (m/restore,
// see federation/DESIGN.md "After a restore"), the links' incarnations and
// the case sequence counters moved past ids that come back from the
// federation.

// RestoreState returns the record of a restore from a backup; nil when the
// group was never restored.
func (tx *Tx) RestoreState() (*pb.RestoreState, error) {
	rs := &pb.RestoreState{}
	err := tx.getProto([]byte(keyRestore), rs)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return rs, nil
}

// PutRestoreState replaces the record of a restore.
func (tx *Tx) PutRestoreState(rs *pb.RestoreState) error {
	return tx.putProto([]byte(keyRestore), rs)
}

// RestoreState reads the record of a restore (nil: never restored).
func (s *Store) RestoreState() (*pb.RestoreState, error) {
	var rs *pb.RestoreState
	err := s.View(func(tx *Tx) (err error) {
		rs, err = tx.RestoreState()
		return err
	})
	return rs, err
}

// InLink is the receiving side of the link from peer: the last sequence
// number applied and the incarnation of the sender that numbered it (0:
// a sender never restored).
func (tx *Tx) InLink(peer string) (highWater, incarnation uint64, err error) {
	item, err := tx.txn.Get(inLinkKey(peer))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, fmt.Errorf("read %q: %w", inLinkKey(peer), err)
	}
	err = item.Value(func(v []byte) error {
		switch len(v) {
		case 8: // written before incarnations
			highWater = binary.BigEndian.Uint64(v)
		case 16:
			highWater, incarnation = binary.BigEndian.Uint64(v), binary.BigEndian.Uint64(v[8:])
		default:
			return fmt.Errorf("value of %q has %d bytes, want 8 or 16", inLinkKey(peer), len(v))
		}
		return nil
	})
	return highWater, incarnation, err
}

// SetInLink records the receiving side of the link from peer. A link whose
// sender was never restored keeps the 8-byte form.
func (tx *Tx) SetInLink(peer string, highWater, incarnation uint64) error {
	v := binary.BigEndian.AppendUint64(nil, highWater)
	if incarnation != 0 {
		v = binary.BigEndian.AppendUint64(v, incarnation)
	}
	return tx.set(inLinkKey(peer), v)
}

// BumpSeq moves the case sequence counter of prefix and date up to seq
// when it is below: a case this node numbered comes back from the
// federation (a restored node learning the ids it gave out after its
// backup), and the next report must not take its number again. It reports
// whether the counter moved.
func (tx *Tx) BumpSeq(prefix, date string, seq uint64) (bool, error) {
	k := seqKey(prefix, date)
	n, err := tx.counter(k)
	if err != nil {
		return false, err
	}
	if n >= seq {
		return false, nil
	}
	return true, tx.setCounter(k, seq)
}

// SplitCaseID splits a case id <prefix>-<YYYYMMDD>-<sequence> into its
// parts; ok is false for anything else.
func SplitCaseID(id string) (prefix, date string, seq uint64, ok bool) {
	i := strings.IndexByte(id, '-')
	j := strings.LastIndexByte(id, '-')
	if i <= 0 || j <= i || j-i != 9 {
		return "", "", 0, false
	}
	n, err := strconv.ParseUint(id[j+1:], 10, 64)
	if err != nil {
		return "", "", 0, false
	}
	return id[:i], id[i+1 : j], n, true
}
