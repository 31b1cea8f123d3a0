package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// The change feed (tiers/feed/DESIGN.md): every PutCase and DeleteCase
// appends a CaseChange at the next revision of a counter kept in the store,
// in the same transaction, so every replica numbers the same changes alike
// and a restart or a snapshot carries the feed with the cases.
const (
	pfxFeedEntry = "F/e/" // F/e/<revision:8 BE> → CaseChange (no revision, no case)
	keyFeedMeta  = "F/m"  // head (newest revision), tail (oldest kept): 16 bytes BE
)

// FeedOptions bound the change log. Revisions are numbered the same on
// every replica whatever their options; the options only decide how far
// back a replica can still serve (replicas that keep less answer an older
// position with ErrCompacted).
type FeedOptions struct {
	// Window is how many changes are kept (0: DefaultFeedWindow).
	Window uint64
	// MaxAge drops changes older than this, measured against the time
	// stamped into the newest change (0: no age limit).
	MaxAge time.Duration
}

// DefaultFeedWindow is the number of changes kept when FeedOptions.Window
// is zero: about a week of a busy district (10,000 reports a day, some
// eight changes each).
const DefaultFeedWindow = 500_000

// trimPerChange bounds the old changes one new change deletes: one keeps
// the window in steady state, the rest catch up after the window shrank
// (a restart with a smaller feed.window) without a long transaction.
const trimPerChange = 4

// ErrCompacted is returned for a feed position older than the oldest
// change kept.
var ErrCompacted = errors.New("feed position compacted")

// CompactedError says which position was asked for and what the feed holds.
type CompactedError struct {
	After  uint64 // the position asked for: changes after it
	Oldest uint64 // the oldest revision kept
	Head   uint64 // the newest revision
}

func (e *CompactedError) Error() string {
	return fmt.Sprintf("%v: changes after revision %d are no longer kept (the oldest kept is %d, the newest %d)", ErrCompacted, e.After, e.Oldest, e.Head)
}

func (e *CompactedError) Unwrap() error { return ErrCompacted }

// feedState is what a write transaction knows of the feed: its bounds,
// loaded on the first change, written back once at commit, and the
// command being applied (raft index, stamped time).
type feedState struct {
	loaded     bool
	dirty      bool
	head, tail uint64
	logIndex   uint64
	atUnixMs   int64
	// added are the changes this transaction appended, with their
	// revisions: given to the store's change sink once it commits.
	added []*pb.CaseChange
}

func feedKey(rev uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte(pfxFeedEntry), rev)
}

func decodeFeedMeta(v []byte) (head, tail uint64, err error) {
	if len(v) != 16 {
		return 0, 0, fmt.Errorf("feed bounds value has %d bytes, want 16", len(v))
	}
	return binary.BigEndian.Uint64(v), binary.BigEndian.Uint64(v[8:]), nil
}

// readFeedMeta reads the feed's bounds: head 0 and tail 1 when nothing was
// ever written.
func readFeedMeta(txn *badger.Txn) (head, tail uint64, err error) {
	item, err := txn.Get([]byte(keyFeedMeta))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, 1, nil
	}
	if err != nil {
		return 0, 0, fmt.Errorf("read feed bounds: %w", err)
	}
	err = item.Value(func(v []byte) error {
		head, tail, err = decodeFeedMeta(v)
		return err
	})
	return head, tail, err
}

// SetChangeContext names the command whose changes follow in this
// transaction: its raft index and the time the leader stamped into it
// (the FSM calls it before each command).
func (tx *Tx) SetChangeContext(logIndex uint64, atUnixMs int64) {
	tx.feed.logIndex, tx.feed.atUnixMs = logIndex, atUnixMs
}

func (tx *Tx) loadFeed() error {
	if tx.feed.loaded {
		return nil
	}
	head, tail, err := readFeedMeta(tx.txn)
	if err != nil {
		return err
	}
	tx.feed.head, tx.feed.tail, tx.feed.loaded = head, tail, true
	return nil
}

// appendChange records that c changed (kind) at the next revision and
// trims the oldest changes past the window;
// before is the case as it was (nil for a new one).
func (tx *Tx) appendChange(kind pb.ChangeKind, before, c *pb.Case) error {
	if err := tx.loadFeed(); err != nil {
		return err
	}
	ch := &pb.CaseChange{
		CaseId: c.Id, Version: c.Version, Kind: kind, State: c.State,
		Holder: c.Holder, HolderEpoch: c.HolderEpoch, OwnerUnit: c.OwnerUnit, GridCode: c.GridCode,
		Overdue: c.Overdue, LogIndex: tx.feed.logIndex, ReportedBy: c.ReportedBy,
		InReview: c.GetOwnership().GetInReview(),
	}
	if before != nil {
		ch.Before = &pb.CaseBefore{State: before.State, Overdue: before.Overdue, InReview: before.GetOwnership().GetInReview(),
			OwnerUnit: before.OwnerUnit, GridCode: before.GridCode}
	}
	if kind != pb.ChangeKind_CHANGE_KIND_REMOVED {
		if h := c.GetHistory(); len(h) > 0 {
			ch.Action = h[len(h)-1].GetAction()
		}
	}
	if tx.feed.atUnixMs != 0 {
		ch.At = timestamppb.New(time.UnixMilli(tx.feed.atUnixMs))
	}
	rev := tx.feed.head + 1
	if err := tx.putProto(feedKey(rev), ch); err != nil {
		return err
	}
	ch.Revision = rev // as Changes returns it (the stored record has none)
	tx.feed.added = append(tx.feed.added, ch)
	tx.feed.head, tx.feed.dirty = rev, true
	return tx.trimFeed()
}

// trimFeed deletes up to trimPerChange of the oldest changes that are past
// the window or too old. It decides on stored data only (counts, stamped
// times), so every replica with the same options trims alike.
func (tx *Tx) trimFeed() error {
	window := tx.feedOpts.Window
	if window == 0 {
		window = DefaultFeedWindow
	}
	maxAgeMs := tx.feedOpts.MaxAge.Milliseconds()
	for n := 0; n < trimPerChange && tx.feed.tail < tx.feed.head; n++ {
		drop := tx.feed.head-tx.feed.tail+1 > window
		if !drop && maxAgeMs > 0 && tx.feed.atUnixMs > 0 {
			old := &pb.CaseChange{}
			if err := tx.getProto(feedKey(tx.feed.tail), old); err != nil && !errors.Is(err, ErrNotFound) {
				return err
			}
			drop = old.At != nil && old.At.AsTime().UnixMilli() < tx.feed.atUnixMs-maxAgeMs
		}
		if !drop {
			return nil
		}
		if err := tx.del(feedKey(tx.feed.tail)); err != nil {
			return err
		}
		tx.feed.tail++
		tx.feed.dirty = true
	}
	return nil
}

// flushFeed writes the feed's bounds once per transaction.
func (tx *Tx) flushFeed() error {
	if !tx.feed.dirty {
		return nil
	}
	v := binary.BigEndian.AppendUint64(make([]byte, 0, 16), tx.feed.head)
	return tx.set([]byte(keyFeedMeta), binary.BigEndian.AppendUint64(v, tx.feed.tail))
}

// OnChanges sets fn to be given the changes of every write transaction
// once it has committed, in revision order, on the state machine's
// goroutine (so fn must not block): the change feed's hub keeps its ring
// from them without reading them back (tiers/feed). The changes are
// shared with fn: no one may modify them. A restore gives fn nothing:
// FeedHead moves, and the hub reads the store.
func (s *Store) OnChanges(fn func([]*pb.CaseChange)) { s.changeSink.Store(&fn) }

// FeedHead is the newest revision committed (0: none yet), from memory.
func (s *Store) FeedHead() uint64 { return s.feedHead.Load() }

// committedChanges is what Update does with a committed transaction's
// changes.
func (s *Store) committedChanges(tx *Tx) {
	if !tx.feed.dirty {
		return
	}
	s.feedHead.Store(tx.feed.head)
	if sink := s.changeSink.Load(); sink != nil && *sink != nil && len(tx.feed.added) > 0 {
		(*sink)(tx.feed.added)
	}
}

// loadFeedHead reads the newest revision into FeedHead (at Open and
// after a restore).
func (s *Store) loadFeedHead() error {
	head, _, err := s.FeedBounds()
	if err == nil {
		s.feedHead.Store(head)
	}
	return err
}

// FeedBounds returns the newest revision (0: none yet) and the oldest kept.
func (s *Store) FeedBounds() (head, oldest uint64, err error) {
	err = s.db.View(func(txn *badger.Txn) error {
		head, oldest, err = readFeedMeta(txn)
		return err
	})
	return head, oldest, err
}

// Changes reads up to limit changes after revision after, in revision
// order, from one consistent view, with the feed's bounds in that view. A
// position before the oldest change kept is a *CompactedError (ErrCompacted);
// one at or past the newest returns no change.
func (s *Store) Changes(after uint64, limit int) (out []*pb.CaseChange, head, oldest uint64, err error) {
	if limit <= 0 {
		limit = 100
	}
	err = s.db.View(func(txn *badger.Txn) error {
		if head, oldest, err = readFeedMeta(txn); err != nil {
			return err
		}
		if after >= head {
			return nil
		}
		if after+1 < oldest {
			return &CompactedError{After: after, Oldest: oldest, Head: head}
		}
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(pfxFeedEntry), PrefetchValues: true, PrefetchSize: min(limit, 256)})
		defer it.Close()
		want := after + 1
		for it.Seek(feedKey(want)); it.Valid() && len(out) < limit; it.Next() {
			k := it.Item().Key()
			rev := binary.BigEndian.Uint64(k[len(pfxFeedEntry):])
			if rev != want {
				// The window moved past want between the bounds and the
				// read cannot happen in one view; a hole is damage.
				return fmt.Errorf("feed entry %d missing (found %d)", want, rev)
			}
			ch := &pb.CaseChange{}
			if err := it.Item().Value(func(v []byte) error { return proto.Unmarshal(v, ch) }); err != nil {
				return fmt.Errorf("decode feed entry %d: %w", rev, err)
			}
			ch.Revision = rev
			out = append(out, ch)
			want++
		}
		return nil
	})
	return out, head, oldest, err
}
