package store

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"github.com/cespare/xxhash/v2"
	"github.com/dgraph-io/badger/v4"
	"google.golang.org/protobuf/proto"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// VerifyOptions tune Verify.
type VerifyOptions struct {
	// IDPrefix is this node's case id prefix (its jurisdiction): every
	// case with it needs its day's sequence, or a new case would take an
	// id that exists.
	IDPrefix string
}

// VerifyReport says what Verify read.
type VerifyReport struct {
	Keys, Cases, Requests int64
	Applied               uint64
	// LedgerStarted is set when the store had no request count yet (it
	// was written before the count existed) and Verify recorded it.
	LedgerStarted bool
}

// maxProblems bounds the problems one Verify lists.
const maxProblems = 8

// Verify reads the whole store once and checks that its records agree
// with each other, so that a store that lost part of its files, or holds
// older records than its applied index says, is found before it serves:
//
//   - every case decodes and is stored under its own id;
//   - the per-state counters (k/) count the cases in each state;
//   - each index family (s/ u/ g/ d/ w/ t/ v/), the nearby index (N/),
//     the digests (h/) and the legacy ids (x/) hold exactly the entries
//     the cases need (compared as a count and an order-free sum of 64-bit
//     hashes per family, so the scan keeps no set in memory);
//   - every day's case sequence (q/) is at least the highest case number
//     of that day (else a new case would reuse an id), and exists for
//     cases of this node's own prefix;
//   - the dashboard's counters (D/c/, D/f/) hold exactly the counts the
//     cases make (summed per key from the cases, then compared like a
//     family), and its overdue lists (D/o/, D/p/) exactly the entries;
//   - the request records (r/) number what the store counted as it wrote
//     them (else an acknowledged request id would run again as new);
//   - the applied index exists when anything else does, and no snapshot
//     restore was left half way.
//
// It returns an error wrapping ErrDamaged that lists the first problems.
// A store with request records but no count of them (written before the
// count existed) gets it recorded, when nothing else is wrong.
func (s *Store) Verify(opts VerifyOptions) (VerifyReport, error) {
	v := newVerifier(opts)
	// Decoding the cases is most of the work: workers decode batches of
	// them while this goroutine reads the store and checks the rest.
	workers := max(1, runtime.GOMAXPROCS(0))
	batches := make(chan []caseRec, workers)
	accs := make([]*caseAcc, workers)
	var wg sync.WaitGroup
	for w := range accs {
		accs[w] = newCaseAcc()
		wg.Add(1)
		go func(acc *caseAcc) {
			defer wg.Done()
			for batch := range batches {
				for _, r := range batch {
					acc.add(r.id, r.val)
				}
			}
		}(accs[w])
	}
	var batch []caseRec
	txn, tree, dash := s.mem.exactView(s.db)
	defer txn.Discard()
	err := func() error {
		// No value prefetching: badger starts a goroutine per item for it,
		// and the values are in the tables, read where they lie.
		it := txn.NewIterator(badger.IteratorOptions{})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			key := item.Key()
			if len(key) > len(pfxCase) && string(key[:len(pfxCase)]) == pfxCase {
				v.rep.Keys++
				v.rep.Cases++
				v.data = true
				val, err := item.ValueCopy(nil)
				if err != nil {
					return fmt.Errorf("%w: read %q: %v", ErrDamaged, key, err)
				}
				batch = append(batch, caseRec{id: string(key[len(pfxCase):]), val: val})
				if len(batch) == caseBatch {
					batches <- batch
					batch = make([]caseRec, 0, caseBatch)
				}
				continue
			}
			if err := item.Value(func(val []byte) error { return v.record(key, val) }); err != nil {
				return fmt.Errorf("%w: read %q: %v", ErrDamaged, key, err)
			}
		}
		// The in-memory families (memindex.go): rebuilt from the cases at
		// Open and kept by every write since, checked like the others.
		return eachMem(tree, dash, v.record)
	}()
	if len(batch) > 0 {
		batches <- batch
	}
	close(batches)
	wg.Wait()
	if err != nil {
		return v.rep, err
	}
	for _, acc := range accs {
		v.merge(acc)
	}
	v.finish()
	if len(v.problems) > 0 {
		more := ""
		if v.nProblems > len(v.problems) {
			more = fmt.Sprintf(" (and %d more)", v.nProblems-len(v.problems))
		}
		return v.rep, fmt.Errorf("%w: %s%s", ErrDamaged, strings.Join(v.problems, "; "), more)
	}
	if !v.hasLedger && v.rep.Requests > 0 {
		if err := s.db.Update(func(txn *badger.Txn) error {
			return txn.Set([]byte(keyRequests), binary.BigEndian.AppendUint64(nil, uint64(v.rep.Requests)))
		}); err != nil {
			return v.rep, fmt.Errorf("record the request count: %w", err)
		}
		v.rep.LedgerStarted = true
	}
	return v.rep, nil
}

// famSum is a family's entry count and the sum of their hashes.
type famSum struct {
	n   int64
	sum uint64
}

func (f *famSum) add(h uint64) { f.n++; f.sum += h }

type verifier struct {
	opts      VerifyOptions
	rep       VerifyReport
	cases     *caseAcc // merged from the workers
	counters  map[pb.State]int64
	have      map[string]*famSum
	seqs      map[string]uint64 // q/ values
	ledger    uint64
	hasLedger bool
	restoring bool
	flowFloor int64 // m/flowfloor (noFloor: none recorded)
	data      bool  // any record besides m/
	problems  []string
	nProblems int
	h         *xxhash.Digest
}

// caseRec is a case record handed to a worker.
type caseRec struct {
	id  string
	val []byte
}

// caseBatch is how many case records a worker takes at a time.
const caseBatch = 256

// caseAcc is what one worker gathers from the cases it decodes: what they
// need of the other families, their states, the highest case number of
// each day, and the problems.
type caseAcc struct {
	c         pb.Case
	states    map[pb.State]int64
	want      map[string]*famSum
	maxSeq    map[string]uint64   // "<prefix>/<date>" -> highest case number seen
	shapes    map[dashShape]int64 // what the D/ counters depend on, per case
	steps     map[dashStep]int64  // the flow steps of the cases
	problems  []string
	nProblems int
	h         *xxhash.Digest
}

func newCaseAcc() *caseAcc {
	a := &caseAcc{states: map[pb.State]int64{}, want: map[string]*famSum{}, maxSeq: map[string]uint64{}, shapes: map[dashShape]int64{}, steps: map[dashStep]int64{}, h: xxhash.New()}
	for _, f := range checkedFamilies {
		a.want[f] = &famSum{}
	}
	return a
}

func (a *caseAcc) problem(format string, args ...any) {
	a.nProblems++
	if len(a.problems) < maxProblems {
		a.problems = append(a.problems, fmt.Sprintf(format, args...))
	}
}

// checkedFamilies are compared entry for entry with what the cases need.
var checkedFamilies = []string{pfxByState, pfxByUnit, pfxByGrid, pfxByDue, pfxOverdue, pfxHandedUp, pfxReview, pfxDigest, pfxNear, pfxLegacy, famDashCount, famDashIndex}

// The dashboard's records are checked as two families: its counters
// (D/c/, D/f/: key and value) and its overdue lists (D/o/, D/p/: keys).
const (
	famDashCount = "D/ counters"
	famDashIndex = "D/ overdue lists"
)

func newVerifier(opts VerifyOptions) *verifier {
	v := &verifier{opts: opts, cases: newCaseAcc(), counters: map[pb.State]int64{}, flowFloor: noFloor,
		have: map[string]*famSum{}, seqs: map[string]uint64{}, h: xxhash.New()}
	for _, f := range checkedFamilies {
		v.have[f] = &famSum{}
	}
	return v
}

// merge adds a worker's findings.
func (v *verifier) merge(a *caseAcc) {
	m := v.cases
	for st, n := range a.states {
		m.states[st] += n
	}
	for f, s := range a.want {
		m.want[f].n += s.n
		m.want[f].sum += s.sum
	}
	for day, n := range a.maxSeq {
		m.maxSeq[day] = max(m.maxSeq[day], n)
	}
	for k, n := range a.shapes {
		m.shapes[k] += n
	}
	for k, n := range a.steps {
		m.steps[k] += n
	}
	for _, p := range a.problems {
		v.problem("%s", p)
	}
	v.nProblems += a.nProblems - len(a.problems)
}

func (v *verifier) problem(format string, a ...any) {
	v.nProblems++
	if len(v.problems) < maxProblems {
		v.problems = append(v.problems, fmt.Sprintf(format, a...))
	}
}

func (v *verifier) hash(key, val []byte) uint64 { return hashKV(v.h, key, val) }

func hashKV(h *xxhash.Digest, key, val []byte) uint64 {
	h.Reset()
	_, _ = h.Write(key)
	if val != nil {
		_, _ = h.Write([]byte{0})
		_, _ = h.Write(val)
	}
	return h.Sum64()
}

func (v *verifier) record(key, val []byte) error {
	v.rep.Keys++
	fam := ""
	if len(key) >= 2 {
		fam = string(key[:2])
	}
	if fam != "m/" {
		v.data = true
	}
	switch fam {
	case pfxByState, pfxByUnit, pfxByGrid, pfxByDue, pfxOverdue, pfxHandedUp, pfxReview:
		v.have[fam].add(v.hash(key, nil))
	case pfxDigest, pfxLegacy, pfxNear:
		v.have[fam].add(v.hash(key, val))
	case pfxDash:
		switch {
		case len(key) > 4 && (string(key[:4]) == pfxDashCount || string(key[:4]) == pfxDashFlow):
			v.have[famDashCount].add(v.hash(key, val))
		case len(key) > 4 && (string(key[:4]) == pfxDashOver || string(key[:4]) == pfxDashUnitO):
			v.have[famDashIndex].add(v.hash(key, nil))
		default:
			v.problem("dashboard record %q is malformed", key)
		}
	case pfxCount:
		st, err := strconv.Atoi(string(key[len(pfxCount):]))
		if err != nil || len(val) != 8 {
			v.problem("counter %q is malformed", key)
			return nil
		}
		v.counters[pb.State(st)] = int64(binary.BigEndian.Uint64(val))
	case pfxSeq:
		if len(val) != 8 {
			v.problem("sequence %q is malformed", key)
			return nil
		}
		v.seqs[string(key[len(pfxSeq):])] = binary.BigEndian.Uint64(val)
	case pfxRequest:
		v.rep.Requests++
	case "m/":
		switch string(key) {
		case keyApplied:
			if len(val) != 16 {
				v.problem("the applied index is malformed")
				return nil
			}
			v.rep.Applied = binary.BigEndian.Uint64(val)
		case keyRequests:
			if len(val) != 8 {
				v.problem("the request count is malformed")
				return nil
			}
			v.ledger, v.hasLedger = binary.BigEndian.Uint64(val), true
		case keyRestoring:
			v.restoring = true
		case keyFlowFloor:
			if len(val) != 8 {
				v.problem("the dashboard flow's floor is malformed")
				return nil
			}
			v.flowFloor = int64(binary.BigEndian.Uint64(val))
		}
	}
	return nil
}

// add decodes one case and adds what it needs of the other families.
func (a *caseAcc) add(id string, val []byte) {
	c := &a.c
	if err := proto.Unmarshal(val, c); err != nil {
		a.problem("case %s does not decode: %v", id, err)
		return
	}
	if c.Id != id {
		a.problem("the record of case %s holds case %q", id, c.Id)
		return
	}
	a.states[c.State]++
	for _, k := range indexKeys(c) {
		if f, ok := a.want[string(k[:2])]; ok { // a family added since is not checked
			f.add(hashKV(a.h, k, nil))
		}
	}
	a.want[pfxDigest].add(hashKV(a.h, digestKey(id), digestOf(c, val).encode()))
	for _, e := range nearbyEntries(c) {
		a.want[pfxNear].add(hashKV(a.h, e.key, e.val))
	}
	// The D/ counters are summed by shape and step here and spelled out
	// once at the end: a key per case would cost more than the decoding.
	sh := shapeOf(c)
	a.shapes[sh]++
	stepsOf(c, 0, noFloor, func(st dashStep) { a.steps[st]++ })
	for _, k := range dashIndex(c, sh) {
		a.want[famDashIndex].add(hashKV(a.h, []byte(k), nil))
	}
	if c.LegacyId != "" {
		a.want[pfxLegacy].add(hashKV(a.h, legacyKey(c.ReportedAtNode, c.LegacyId), []byte(id)))
	}
	// <prefix>-<YYYYMMDD>-<number>: the prefix may hold dashes.
	if i := strings.LastIndexByte(id, '-'); i > 9 && id[i-9] == '-' {
		if n, err := strconv.ParseUint(id[i+1:], 10, 64); err == nil {
			day := id[:i-9] + "/" + id[i-8:i]
			a.maxSeq[day] = max(a.maxSeq[day], n)
		}
	}
}

func (v *verifier) finish() {
	cs := v.cases
	for st, n := range cs.states {
		if v.counters[st] != n {
			v.problem("%d cases are in %s but its counter says %d", n, st, v.counters[st])
		}
	}
	for st, n := range v.counters {
		if _, seen := cs.states[st]; !seen && n != 0 {
			v.problem("no case is in %s but its counter says %d", st, n)
		}
	}
	dash := map[string]int64{}
	for sh, n := range cs.shapes {
		sh.counters(func(k string) { dash[k] += n })
	}
	for st, n := range cs.steps {
		if st.hour >= v.flowFloor {
			st.counters(func(k string) { dash[k] += n })
		}
	}
	for k, n := range dash {
		cs.want[famDashCount].add(v.hash([]byte(k), binary.BigEndian.AppendUint64(nil, uint64(n))))
	}
	for _, f := range checkedFamilies {
		w, h := cs.want[f], v.have[f]
		switch {
		case w.n != h.n:
			v.problem("%s holds %d entries, the cases need %d", f, h.n, w.n)
		case w.sum != h.sum:
			v.problem("%s holds %d entries that differ from the ones the cases need", f, h.n)
		}
	}
	for day, n := range cs.maxSeq {
		seq, ok := v.seqs[day]
		prefix, date, _ := strings.Cut(day, "/")
		switch {
		case ok && seq < n:
			v.problem("case %s-%s-%06d exists but the sequence of that day is at %d: a new case would reuse an id", prefix, date, n, seq)
		case !ok && prefix == v.opts.IDPrefix && v.opts.IDPrefix != "":
			v.problem("case %s-%s-%06d exists but the sequence of that day is missing: a new case would reuse an id", prefix, date, n)
		}
	}
	if v.hasLedger && v.ledger != uint64(v.rep.Requests) {
		v.problem("%d request records, the store wrote %d: an acknowledged request id would run again", v.rep.Requests, v.ledger)
	}
	if v.data && v.rep.Applied == 0 {
		v.problem("records exist but the applied index is missing")
	}
	if v.restoring {
		v.problem("a snapshot restore did not finish")
	}
}
