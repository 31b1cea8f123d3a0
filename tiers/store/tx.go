package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/dgraph-io/badger/v4"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// Tx is one badger transaction seen through the state machine's records.
type Tx struct {
	txn *badger.Txn
	// mem and dig (the digests) hold the in-memory families
	// (memindex.go) as of txn's view. memWrite: mem is the committed
	// tree, which this write transaction reads but changes only through
	// memOver (applied to it once it commits), and dig its own copy;
	// memOwn, once it iterated a family it changed, its own copy of
	// mem with its changes on it, which its reads read from then on
	// (memIterTree).
	mem      *memTree
	dig      *digTree
	memWrite bool
	memOver  *memOverlay // the writer's (memIndex.over)
	memOwn   *memTree
	memIdx   *memIndex // whose tree mem is (a write transaction's)
	// memLazy: a ViewRecords transaction, which takes its trees at its
	// first read of them, if no commit was applied since it began
	// (memGen); memErr, else.
	memLazy  *memIndex
	memGen   uint64
	memErr   error
	memHints *memHints // the writer's (memIndex.hints)
	memSlab  *memSlab  // the writer's (memIndex.slab)
	// memDeltas: the writer's changes of its blocks' live entries by the
	// digests (the tree's are counted when they are applied: memOverlay);
	// memPin: a reader's pin of its tree's blocks (memarena.go).
	memDeltas []blockDelta
	memPin    *memPin
	// newRequests counts the request records this transaction created
	// (the ledger, ledger.go); absentRequest is the last request id
	// GetRequest found missing, which PutRequest then knows is new.
	newRequests   int64
	absentRequest string
	// nodesWritten: it wrote a registered replica (NodesGeneration).
	nodesWritten bool
	// nearChanges are the nearby entries it changed, for the cache
	// (nearcache.go).
	nearChanges []nearChange
	// flow is the dashboard flow's floor in this transaction
	// (flowfloor.go).
	flow flowState
	// feed is the change log's state in this transaction (feed.go).
	feed     feedState
	feedOpts FeedOptions
	// dash holds the dashboard counters' changes until the commit
	// (dashboard.go); dashSrc has the committed counters, dashView is
	// the copy of them this transaction reads (dashcounters.go).
	dash     map[string]int64
	dashSrc  *dashCounters
	dashView *objTree
	// counterCache has the counters' committed values (set in write
	// transactions only; nil: read them all through badger);
	// counterWrites the values this transaction gives them, read back by
	// its next reads and given to the cache once it commits.
	counterCache  *counterCache
	counterWrites map[string]uint64
	stats         *Stats         // nil: not counting
	requests      *requestFilter // nil: look every request id up
	// audit is the command's audit events not written yet (auth.go);
	// pages encodes the feed's and the audit trail's pages.
	audit auditPage
	pages pageWriter
}

func (tx *Tx) getProto(key []byte, m proto.Message) error {
	item, err := tx.get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("read %q: %w", key, err)
	}
	return item.Value(func(v []byte) error {
		if err := proto.Unmarshal(v, m); err != nil {
			return fmt.Errorf("decode %q: %w", key, err)
		}
		return nil
	})
}

func (tx *Tx) putProto(key []byte, m proto.Message) error {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode %q: %w", key, err)
	}
	return tx.set(key, b)
}

func (tx *Tx) set(key, val []byte) error {
	if tx.stats != nil {
		tx.stats.Writes.Add(1)
	}
	if isDashCounter(key) {
		return tx.dashSet(key, val)
	}
	if isMemKey(key) {
		return tx.memSet(key, val)
	}
	if err := tx.txn.Set(key, val); err != nil {
		return fmt.Errorf("write %q: %w", key, err)
	}
	return nil
}

func (tx *Tx) del(key []byte) error {
	if tx.stats != nil {
		tx.stats.Writes.Add(1)
	}
	if isDashCounter(key) {
		return tx.dashSet(key, nil)
	}
	if isMemKey(key) {
		return tx.memDel(key)
	}
	if err := tx.txn.Delete(key); err != nil {
		return fmt.Errorf("delete %q: %w", key, err)
	}
	return nil
}

// GetCase reads a case; ErrNotFound when absent.
func (tx *Tx) GetCase(id string) (*pb.Case, error) {
	c := &pb.Case{}
	if err := tx.getProto(caseKey(id), c); err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil, fmt.Errorf("case %s: %w", id, ErrNotFound)
		}
		return nil, err
	}
	tx.decoded()
	return c, nil
}

// PutCase writes c and moves its index entries from old (nil for a new case).
func (tx *Tx) PutCase(old, c *pb.Case) error {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(c)
	if err != nil {
		return fmt.Errorf("encode case %s: %w", c.Id, err)
	}
	if err := tx.set(caseKey(c.Id), b); err != nil {
		return err
	}
	if err := tx.set(digestKey(c.Id), digestOf(c, b).encode()); err != nil {
		return err
	}
	// Only the index entries that change are written: an entry the write
	// leaves in place (the grid's, most often the state's or the unit's)
	// would cost a memtable insert for nothing.
	was, is := indexKeys(old), indexKeys(c)
	for _, k := range was {
		if !slices.ContainsFunc(is, func(n []byte) bool { return bytes.Equal(n, k) }) {
			if err := tx.del(k); err != nil {
				return err
			}
		}
	}
	for _, k := range is {
		if !slices.ContainsFunc(was, func(o []byte) bool { return bytes.Equal(o, k) }) {
			if err := tx.set(k, nil); err != nil {
				return err
			}
		}
	}
	if err := tx.putNearby(old, c); err != nil {
		return err
	}
	if err := tx.putDash(old, c); err != nil {
		return err
	}
	if old.GetLegacyId() != "" && (old.GetLegacyId() != c.LegacyId || old.GetReportedAtNode() != c.ReportedAtNode) {
		if err := tx.del(legacyKey(old.ReportedAtNode, old.LegacyId)); err != nil {
			return err
		}
	}
	if c.LegacyId != "" && (old.GetLegacyId() != c.LegacyId || old.GetReportedAtNode() != c.ReportedAtNode) {
		if err := tx.set(legacyKey(c.ReportedAtNode, c.LegacyId), []byte(c.Id)); err != nil {
			return err
		}
	}
	kind := pb.ChangeKind_CHANGE_KIND_UPDATED
	if old == nil {
		kind = pb.ChangeKind_CHANGE_KIND_CREATED
	}
	if err := tx.appendChange(kind, old, c); err != nil {
		return err
	}
	if old == nil || old.State != c.State {
		if old != nil {
			if err := tx.addCount(old.State, -1); err != nil {
				return err
			}
		}
		return tx.addCount(c.State, 1)
	}
	return nil
}

// indexKeys lists the secondary index entries a case should have.
func indexKeys(c *pb.Case) [][]byte {
	if c == nil {
		return nil
	}
	keys := [][]byte{stateKey(c.State, c.Id)}
	if c.OwnerUnit != "" {
		keys = append(keys, unitKey(c.OwnerUnit, c.Id))
	}
	if c.GridCode != "" {
		keys = append(keys, gridKey(c.GridCode, c.Id))
	}
	if d := dueTime(c); d != nil && isOpen(c.State) && c.State != pb.State_STATE_SUSPENDED && !c.Overdue {
		keys = append(keys, dueKey(d.AsTime().UnixMilli(), c.Id))
	}
	if c.Overdue && isOpen(c.State) {
		keys = append(keys, overdueKey(c.Id))
	}
	if c.State == pb.State_STATE_FILED && LastStep(c).GetAction() == pb.Action_ACTION_TRANSFER_UP {
		keys = append(keys, handedUpKey(c.Id))
	}
	if c.GetOwnership().GetInReview() && isOpen(c.State) {
		keys = append(keys, reviewKey(c.Id))
	}
	return keys
}

// dueTime is the deadline a case is swept by: the stage deadline, or the
// handling deadline for cases written before stage deadlines existed.
func dueTime(c *pb.Case) *timestamppb.Timestamp {
	if c.StageDeadline != nil {
		return c.StageDeadline
	}
	return c.Deadline
}

func isOpen(st pb.State) bool {
	switch st {
	case pb.State_STATE_CLOSED, pb.State_STATE_NOT_FILED, pb.State_STATE_VOIDED:
		return false
	}
	return true
}

func (tx *Tx) addCount(st pb.State, d int64) error {
	k := countKey(st)
	n, err := tx.counter(k)
	if err != nil {
		return err
	}
	return tx.setCounter(k, uint64(int64(n)+d))
}

// counter reads the uint64 counter at k (0 when absent) in a write
// transaction: the value this transaction gave it, else the committed
// value the counter cache holds (countercache.go), else badger's.
func (tx *Tx) counter(k []byte) (uint64, error) {
	if v, ok := tx.counterWrites[string(k)]; ok {
		return v, nil
	}
	if tx.counterCache != nil {
		if v, ok := tx.counterCache.get(string(k)); ok {
			return v, nil
		}
	}
	return tx.getUint64(k)
}

// setCounter writes the uint64 counter at k and records the value for the
// transaction's next reads and the cache. Every write of a counter family
// goes through it. An evaluation counter (e/) at zero is deleted, so that
// family holds only non-zero counters; the counts by state and the days'
// sequences are kept at zero.
//
// In a write transaction the value goes to badger once, when the
// transaction is prepared (flushCounters): a counter moved by every case
// of a transaction (its state's count, its day's sequence) was one badger
// write a case, each overwriting the one before.
func (tx *Tx) setCounter(k []byte, v uint64) error {
	if tx.counterCache == nil {
		return tx.writeCounter(k, v)
	}
	if tx.counterWrites == nil {
		tx.counterWrites = make(map[string]uint64)
	}
	tx.counterWrites[string(k)] = v
	return nil
}

func (tx *Tx) writeCounter(k []byte, v uint64) error {
	if v == 0 && isCounterKey(k) {
		return tx.del(k)
	}
	return tx.set(k, binary.BigEndian.AppendUint64(make([]byte, 0, 8), v))
}

// flushCounters writes the counters this transaction moved to badger,
// each once, with its last value (Store.prepare).
func (tx *Tx) flushCounters() error {
	for k, v := range tx.counterWrites {
		if err := tx.writeCounter([]byte(k), v); err != nil {
			return err
		}
	}
	return nil
}

func (tx *Tx) getUint64(k []byte) (uint64, error) {
	item, err := tx.get(k)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read %q: %w", k, err)
	}
	var n uint64
	err = item.Value(func(v []byte) error {
		if len(v) != 8 {
			return fmt.Errorf("value of %q has %d bytes, want 8", k, len(v))
		}
		n = binary.BigEndian.Uint64(v)
		return nil
	})
	return n, err
}

// NextSeq allocates the next case sequence number for an id prefix and date.
func (tx *Tx) NextSeq(prefix, date string) (uint64, error) {
	k := seqKey(prefix, date)
	n, err := tx.counter(k)
	if err != nil {
		return 0, err
	}
	n++
	return n, tx.setCounter(k, n)
}

// GetRequest returns the record of an applied request id, or ErrNotFound.
func (tx *Tx) GetRequest(id string) (*pb.RequestRecord, error) {
	if !tx.requests.mayHave(id) {
		tx.absentRequest = id // the filter has every stored id
		return nil, ErrNotFound
	}
	r := &pb.RequestRecord{}
	if err := tx.getProto(requestKey(id), r); err != nil {
		if errors.Is(err, ErrNotFound) {
			tx.absentRequest = id
		}
		return nil, err
	}
	return r, nil
}

// PutRequest records an applied request id.
func (tx *Tx) PutRequest(id string, r *pb.RequestRecord) error {
	isNew := id == tx.absentRequest
	if !isNew {
		_, err := tx.txn.Get(requestKey(id))
		switch {
		case errors.Is(err, badger.ErrKeyNotFound):
			isNew = true
		case err != nil:
			return fmt.Errorf("read %q: %w", requestKey(id), err)
		}
	}
	tx.requests.add(id)
	if err := tx.putProto(requestKey(id), r); err != nil {
		return err
	}
	tx.absentRequest = ""
	if isNew {
		tx.newRequests++
	}
	return nil
}

// PutNode registers (or updates) a replica's addresses.
func (tx *Tx) PutNode(n *pb.NodeInfo) error {
	tx.nodesWritten = true
	return tx.putProto(nodeKey(n.NodeId), n)
}

// Applied returns the last applied Raft index and term.
func (tx *Tx) Applied() (index, term uint64, err error) {
	item, err := tx.get([]byte(keyApplied))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, fmt.Errorf("read applied index: %w", err)
	}
	err = item.Value(func(v []byte) error {
		if len(v) != 16 {
			return fmt.Errorf("applied index value has %d bytes, want 16", len(v))
		}
		index, term = binary.BigEndian.Uint64(v), binary.BigEndian.Uint64(v[8:])
		return nil
	})
	return index, term, err
}

// SetApplied records the last applied Raft index and term in this
// transaction, so data and applied index are committed together.
func (tx *Tx) SetApplied(index, term uint64) error {
	v := binary.BigEndian.AppendUint64(make([]byte, 0, 16), index)
	return tx.set([]byte(keyApplied), binary.BigEndian.AppendUint64(v, term))
}

// LastStep is the last entry of c's history that moved it, passing over
// supervision entries (督办: a supervisor's or the overdue sweeper's), which
// leave the case where it is; nil for a case without one.
func LastStep(c *pb.Case) *pb.HistoryEntry {
	h := c.GetHistory()
	for i := len(h) - 1; i >= 0; i-- {
		if h[i].GetAction() != pb.Action_ACTION_SUPERVISE {
			return h[i]
		}
	}
	return nil
}
