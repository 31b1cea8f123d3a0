package store

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
	"google.golang.org/protobuf/proto"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// This file holds the federation's records: the topology the state machine
// routes by, the outbox of each link (entries with dense sequence numbers,
// written in the same transaction as the case change that caused them), the
// sending side's acknowledged mark and the receiving side's high-water mark.

// Topology returns the stored federation topology; ErrNotFound when the node
// is not part of a federation.
func (tx *Tx) Topology() (*pb.FederationTopology, error) {
	t := &pb.FederationTopology{}
	if err := tx.getProto([]byte(keyTopology), t); err != nil {
		return nil, err
	}
	return t, nil
}

// PutTopology replaces the federation topology.
func (tx *Tx) PutTopology(t *pb.FederationTopology) error {
	return tx.putProto([]byte(keyTopology), t)
}

// OutLink returns the sending state of the link to peer (zero when new).
func (tx *Tx) OutLink(peer string) (*pb.OutLink, error) {
	l := &pb.OutLink{}
	if err := tx.getProto(outLinkKey(peer), l); err != nil && !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	return l, nil
}

// Enqueue appends e to the outbox of the link to peer with the link's next
// sequence number, which it returns.
func (tx *Tx) Enqueue(peer string, e *pb.LinkEntry) (uint64, error) {
	l, err := tx.OutLink(peer)
	if err != nil {
		return 0, err
	}
	l.LastSeq++
	e.Seq = l.LastSeq
	if err := tx.putProto(outboxKey(peer, e.Seq), e); err != nil {
		return 0, err
	}
	return e.Seq, tx.putProto(outLinkKey(peer), l)
}

// Trim records that peer has applied every entry up to upto and deletes
// them from the outbox. A mark at or below the current one, or beyond the
// last entry written, changes nothing; it reports whether anything changed.
func (tx *Tx) Trim(peer string, upto uint64) (bool, error) {
	l, err := tx.OutLink(peer)
	if err != nil {
		return false, err
	}
	if upto <= l.Acked || upto > l.LastSeq {
		return false, nil
	}
	for seq := l.Acked + 1; seq <= upto; seq++ {
		if err := tx.del(outboxKey(peer, seq)); err != nil {
			return false, err
		}
	}
	l.Acked = upto
	return true, tx.putProto(outLinkKey(peer), l)
}

// InHighWater is the last sequence number applied from the link of peer.
func (tx *Tx) InHighWater(peer string) (uint64, error) {
	hw, _, err := tx.InLink(peer)
	return hw, err
}

// SetInHighWater records the high-water mark of the link from peer,
// keeping the sender's incarnation.
func (tx *Tx) SetInHighWater(peer string, seq uint64) error {
	_, inc, err := tx.InLink(peer)
	if err != nil {
		return err
	}
	return tx.SetInLink(peer, seq, inc)
}

// Topology reads the stored federation topology (ErrNotFound outside a
// federation).
func (s *Store) Topology() (*pb.FederationTopology, error) {
	var t *pb.FederationTopology
	err := s.View(func(tx *Tx) (err error) {
		t, err = tx.Topology()
		return err
	})
	return t, err
}

// LinkState is what the store knows of one link.
type LinkState struct {
	Out         *pb.OutLink
	InHighWater uint64
	// InIncarnation is the incarnation of the neighbour that numbered the
	// entries received (0: never restored).
	InIncarnation uint64
	// OldestUnacked is the enqueue time (unix ms) of the first entry not
	// yet acknowledged; 0 when none is waiting.
	OldestUnacked int64
}

// Link reads the state of the link with peer.
func (s *Store) Link(peer string) (LinkState, error) {
	var ls LinkState
	err := s.View(func(tx *Tx) (err error) {
		if ls.Out, err = tx.OutLink(peer); err != nil {
			return err
		}
		if ls.InHighWater, ls.InIncarnation, err = tx.InLink(peer); err != nil {
			return err
		}
		if ls.Out.LastSeq > ls.Out.Acked {
			e := &pb.LinkEntry{}
			if err := tx.getProto(outboxKey(peer, ls.Out.Acked+1), e); err != nil {
				return err
			}
			ls.OldestUnacked = e.EnqueuedUnixMs
		}
		return nil
	})
	return ls, err
}

// OutboxBatch is what the relay sends next on a link, read in one view:
// the entries, and the sender's incarnation and acknowledged mark as they
// were when those entries were read.
type OutboxBatch struct {
	Entries     []*pb.LinkEntry
	Incarnation uint64
	Acked       uint64
	LastSeq     uint64
}

// NextBatch reads up to max entries (and at most maxBytes, but always at
// least one) of the link to peer from sequence from, with this node's
// incarnation and the link's marks in the same view.
func (s *Store) NextBatch(peer string, from uint64, max, maxBytes int) (OutboxBatch, error) {
	var b OutboxBatch
	err := s.View(func(tx *Tx) error {
		rs, err := tx.RestoreState()
		if err != nil {
			return err
		}
		b.Incarnation = rs.GetIncarnation()
		l, err := tx.OutLink(peer)
		if err != nil {
			return err
		}
		b.Acked, b.LastSeq = l.Acked, l.LastSeq
		b.Entries, err = tx.outbox(peer, from, max, maxBytes)
		return err
	})
	return b, err
}

// Outbox reads up to max entries (and at most maxBytes of encoded entries,
// but always at least one) of the link to peer, starting at sequence from.
func (s *Store) Outbox(peer string, from uint64, max, maxBytes int) ([]*pb.LinkEntry, error) {
	var out []*pb.LinkEntry
	err := s.View(func(tx *Tx) (err error) {
		out, err = tx.outbox(peer, from, max, maxBytes)
		return err
	})
	return out, err
}

func (tx *Tx) outbox(peer string, from uint64, max, maxBytes int) ([]*pb.LinkEntry, error) {
	var out []*pb.LinkEntry
	err := func() error {
		pfx := outboxPrefix(peer)
		it := tx.iterator(badger.IteratorOptions{Prefix: pfx, PrefetchValues: true, PrefetchSize: min(max, 100)})
		defer it.Close()
		size := 0
		for it.Seek(outboxKey(peer, from)); it.Valid() && len(out) < max; it.Next() {
			item := it.Item()
			if !bytes.HasPrefix(item.Key(), pfx) {
				break
			}
			if size > 0 && size+int(item.ValueSize()) > maxBytes {
				break
			}
			e := &pb.LinkEntry{}
			if err := item.Value(func(v []byte) error { return proto.Unmarshal(v, e) }); err != nil {
				return fmt.Errorf("decode outbox entry %q: %w", item.Key(), err)
			}
			size += int(item.ValueSize())
			out = append(out, e)
		}
		return nil
	}()
	return out, err
}
