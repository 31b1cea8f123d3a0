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
//
// The changes of one command are one record, a page (pages.go), under the
// revision of its first change, each change with its revision. Commands
// are the same on every replica, so the pages are too. Releases before
// 2026-12-05 wrote one record a change, the CaseChange without its
// revision; it reads as a page of one.
const (
	pfxFeedEntry = "F/e/" // F/e/<first revision:8 BE> → a page of CaseChange
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

// trimPerChange bounds the old pages a page of n changes deletes to
// trimPerChange*n: one a change keeps the window in steady state, the rest
// catch up after the window shrank (a restart with a smaller feed.window)
// without a long transaction.
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
	// page holds the changes of the command being applied until the
	// next command begins (SetChangeContext) or the transaction commits
	// (flushFeed), which write them as one record and trim the feed: at
	// a command's bounds, where no iterator of the transaction is open
	// (badger allows one in a write transaction), and the same on every
	// replica whatever entries a transaction holds. err is what writing
	// it returned, for the next appendChange or the commit.
	page []*pb.CaseChange
	err  error
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
// It ends the previous command's pages (pages.go).
func (tx *Tx) SetChangeContext(logIndex uint64, atUnixMs int64) {
	if tx.feed.err == nil {
		tx.feed.err = tx.flushPages()
	}
	tx.feed.logIndex, tx.feed.atUnixMs = logIndex, atUnixMs
	tx.flowTarget(atUnixMs)
}

// flushPages writes the command's pages: its changes and its audit events.
func (tx *Tx) flushPages() error {
	if err := tx.flushPage(); err != nil {
		return err
	}
	return tx.flushAudit()
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

// appendChange records that c changed (kind) at the next revision, in
// the command's page (flushPage writes it); before is the case as it was
// (nil for a new one).
func (tx *Tx) appendChange(kind pb.ChangeKind, before, c *pb.Case) error {
	if tx.feed.err != nil {
		return tx.feed.err // the last command's pages were not written
	}
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
	ch.Revision = rev
	tx.feed.page = append(tx.feed.page, ch)
	tx.feed.added = append(tx.feed.added, ch)
	tx.feed.head, tx.feed.dirty = rev, true
	return nil
}

// flushPage writes the pending changes as one page and trims the feed.
func (tx *Tx) flushPage() error {
	page := tx.feed.page
	if len(page) == 0 {
		return nil
	}
	tx.feed.page = nil
	v, err := tx.pages.encode(len(page), func(i int) proto.Message { return page[i] })
	if err != nil {
		return fmt.Errorf("encode feed page %d: %w", page[0].Revision, err)
	}
	if err := tx.set(feedKey(page[0].Revision), v); err != nil {
		return err
	}
	return tx.trimFeed(trimPerChange * len(page))
}

// decodeFeedRecord decodes the record under first: a page, or one change
// of a release that wrote one record a change. Each change gets its
// revision; a page whose revisions do not follow from first is damage.
func decodeFeedRecord(first uint64, v []byte) ([]*pb.CaseChange, error) {
	var out []*pb.CaseChange
	err := decodePage(v, func(i int, raw []byte) error {
		ch := &pb.CaseChange{}
		if err := proto.Unmarshal(raw, ch); err != nil {
			return err
		}
		want := first + uint64(i)
		if !isPage(v) {
			ch.Revision = want // a record of one change, before pages
		}
		if ch.Revision != want {
			return fmt.Errorf("change %d has revision %d", want, ch.Revision)
		}
		out = append(out, ch)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("decode feed page %d: %w", first, err)
	}
	return out, nil
}

// trimFeed deletes the oldest pages while the changes after them are still
// at least the window, or while they are too old (every change of the page
// older than MaxAge before the newest change's stamped time), up to budget
// pages. It decides on stored data only (the pages, the stamped times), so
// every replica with the same options trims alike.
func (tx *Tx) trimFeed(budget int) error {
	window := tx.feedOpts.Window
	if window == 0 {
		window = DefaultFeedWindow
	}
	maxAgeMs := tx.feedOpts.MaxAge.Milliseconds()
	if tx.feed.tail >= tx.feed.head || tx.feed.head-tx.feed.tail+1 <= window && (maxAgeMs <= 0 || tx.feed.atUnixMs <= 0) {
		return nil // the usual case: nothing to read
	}
	it := tx.iterator(badger.IteratorOptions{Prefix: []byte(pfxFeedEntry), PrefetchValues: maxAgeMs > 0})
	defer it.Close()
	it.Seek(feedKey(tx.feed.tail))
	for n := 0; n < budget && it.Valid(); n++ {
		item := it.Item()
		key := item.KeyCopy(nil)
		tooOld := false
		if maxAgeMs > 0 && tx.feed.atUnixMs > 0 {
			var changes []*pb.CaseChange
			first := binary.BigEndian.Uint64(key[len(pfxFeedEntry):])
			if err := item.Value(func(v []byte) (err error) { changes, err = decodeFeedRecord(first, v); return err }); err != nil {
				return err
			}
			last := changes[len(changes)-1]
			tooOld = last.At != nil && last.At.AsTime().UnixMilli() < tx.feed.atUnixMs-maxAgeMs
		}
		// The page ends where the next begins.
		it.Next()
		if !it.Valid() {
			return nil // the newest page stays
		}
		next := binary.BigEndian.Uint64(it.Item().Key()[len(pfxFeedEntry):])
		if next > tx.feed.head {
			return nil
		}
		if drop := tooOld || tx.feed.head-next+1 >= window; !drop {
			return nil
		}
		if err := tx.del(key); err != nil {
			return err
		}
		tx.feed.tail = next
		tx.feed.dirty = true
	}
	return nil
}

// flushFeed writes the last command's pages and the feed's bounds once
// per transaction.
func (tx *Tx) flushFeed() error {
	if tx.feed.err != nil {
		return tx.feed.err
	}
	if err := tx.flushPages(); err != nil {
		return err
	}
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

// feedPageOf is the first revision of the page holding rev: the last
// page that begins at or before it (rev itself when none does: Changes
// then finds the hole).
func feedPageOf(txn *badger.Txn, rev uint64) (uint64, error) {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(pfxFeedEntry), Reverse: true})
	defer it.Close()
	it.Seek(feedKey(rev))
	if !it.Valid() {
		return rev, nil
	}
	return binary.BigEndian.Uint64(it.Item().Key()[len(pfxFeedEntry):]), nil
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
		want := after + 1
		// The page holding want begins at or before it.
		start, err := feedPageOf(txn, want)
		if err != nil {
			return err
		}
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(pfxFeedEntry), PrefetchValues: true, PrefetchSize: min(limit, 64)})
		defer it.Close()
		for it.Seek(feedKey(start)); it.Valid() && len(out) < limit; it.Next() {
			first := binary.BigEndian.Uint64(it.Item().Key()[len(pfxFeedEntry):])
			if first > want {
				// The window moved past want between the bounds and the
				// read cannot happen in one view; a hole is damage.
				return fmt.Errorf("feed entry %d missing (found %d)", want, first)
			}
			var changes []*pb.CaseChange
			if err := it.Item().Value(func(v []byte) (err error) { changes, err = decodeFeedRecord(first, v); return err }); err != nil {
				return err
			}
			for _, ch := range changes {
				if ch.Revision < want || len(out) == limit {
					continue
				}
				out = append(out, ch)
				want++
			}
		}
		if len(out) == 0 && want <= head {
			return fmt.Errorf("feed entry %d missing", want)
		}
		return nil
	})
	return out, head, oldest, err
}
