package store

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"

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
//   - each index family (s/ u/ g/ d/ w/ t/ v/), the digests (h/) and the
//     legacy ids (x/) hold exactly the entries the cases need (compared as
//     a count and an order-free sum of 64-bit hashes per family, so the
//     scan keeps no set in memory);
//   - every day's case sequence (q/) is at least the highest case number
//     of that day (else a new case would reuse an id), and exists for
//     cases of this node's own prefix;
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
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, PrefetchSize: 256})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			if err := item.Value(func(val []byte) error { return v.record(item.Key(), val) }); err != nil {
				return fmt.Errorf("%w: read %q: %v", ErrDamaged, item.Key(), err)
			}
		}
		return nil
	})
	if err != nil {
		return v.rep, err
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
	opts       VerifyOptions
	rep        VerifyReport
	c          pb.Case
	states     map[pb.State]int64
	counters   map[pb.State]int64
	want, have map[string]*famSum
	maxSeq     map[string]uint64 // "<prefix>/<date>" -> highest case number seen
	seqs       map[string]uint64 // q/ values
	ledger     uint64
	hasLedger  bool
	restoring  bool
	data       bool // any record besides m/
	problems   []string
	nProblems  int
	h          *xxhash.Digest
}

// checkedFamilies are compared entry for entry with what the cases need.
var checkedFamilies = []string{pfxByState, pfxByUnit, pfxByGrid, pfxByDue, pfxOverdue, pfxHandedUp, pfxReview, pfxDigest, pfxLegacy}

func newVerifier(opts VerifyOptions) *verifier {
	v := &verifier{opts: opts, states: map[pb.State]int64{}, counters: map[pb.State]int64{},
		want: map[string]*famSum{}, have: map[string]*famSum{}, maxSeq: map[string]uint64{}, seqs: map[string]uint64{}, h: xxhash.New()}
	for _, f := range checkedFamilies {
		v.want[f], v.have[f] = &famSum{}, &famSum{}
	}
	return v
}

func (v *verifier) problem(format string, a ...any) {
	v.nProblems++
	if len(v.problems) < maxProblems {
		v.problems = append(v.problems, fmt.Sprintf(format, a...))
	}
}

func (v *verifier) hash(key, val []byte) uint64 {
	v.h.Reset()
	_, _ = v.h.Write(key)
	if val != nil {
		_, _ = v.h.Write([]byte{0})
		_, _ = v.h.Write(val)
	}
	return v.h.Sum64()
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
	case pfxCase:
		v.caseRecord(key, val)
	case pfxByState, pfxByUnit, pfxByGrid, pfxByDue, pfxOverdue, pfxHandedUp, pfxReview:
		v.have[fam].add(v.hash(key, nil))
	case pfxDigest, pfxLegacy:
		v.have[fam].add(v.hash(key, val))
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
		}
	}
	return nil
}

func (v *verifier) caseRecord(key, val []byte) {
	v.rep.Cases++
	id := string(key[len(pfxCase):])
	c := &v.c
	if err := proto.Unmarshal(val, c); err != nil {
		v.problem("case %s does not decode: %v", id, err)
		return
	}
	if c.Id != id {
		v.problem("the record of case %s holds case %q", id, c.Id)
		return
	}
	v.states[c.State]++
	for _, k := range indexKeys(c) {
		v.want[string(k[:2])].add(v.hash(k, nil))
	}
	v.want[pfxDigest].add(v.hash(digestKey(id), digestOf(c, val).encode()))
	if c.LegacyId != "" {
		v.want[pfxLegacy].add(v.hash(legacyKey(c.ReportedAtNode, c.LegacyId), []byte(id)))
	}
	// <prefix>-<YYYYMMDD>-<number>: the prefix may hold dashes.
	if i := strings.LastIndexByte(id, '-'); i > 9 && id[i-9] == '-' {
		if n, err := strconv.ParseUint(id[i+1:], 10, 64); err == nil {
			day := id[:i-9] + "/" + id[i-8:i]
			v.maxSeq[day] = max(v.maxSeq[day], n)
		}
	}
}

func (v *verifier) finish() {
	for st, n := range v.states {
		if v.counters[st] != n {
			v.problem("%d cases are in %s but its counter says %d", n, st, v.counters[st])
		}
	}
	for st, n := range v.counters {
		if _, seen := v.states[st]; !seen && n != 0 {
			v.problem("no case is in %s but its counter says %d", st, n)
		}
	}
	for _, f := range checkedFamilies {
		w, h := v.want[f], v.have[f]
		switch {
		case w.n != h.n:
			v.problem("%s holds %d entries, the cases need %d", f, h.n, w.n)
		case w.sum != h.sum:
			v.problem("%s holds %d entries that differ from the ones the cases need", f, h.n)
		}
	}
	for day, n := range v.maxSeq {
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
