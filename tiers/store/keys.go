package store

import (
	"encoding/binary"
	"strconv"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// Key prefixes. Every key starts with one byte naming its family, so a
// family is one contiguous range and a snapshot or scan never mixes them.
const (
	pfxCase    = "c/"        // c/<case id>                      → Case
	pfxByState = "s/"        // s/<state:2>/<case id>            → ""
	pfxByUnit  = "u/"        // u/<unit>\x00<case id>            → ""
	pfxByGrid  = "g/"        // g/<grid code:15>/<case id>       → ""
	pfxByDue   = "d/"        // d/<deadline ms:8 BE>/<case id>   → "" (open cases, not suspended nor marked overdue; stage deadline, else deadline)
	pfxOverdue = "w/"        // w/<case id>                      → "" (open cases marked overdue: the 督办 list)
	pfxRequest = "r/"        // r/<request id>                   → RequestRecord
	pfxNode    = "n/"        // n/<node id>                      → NodeInfo
	pfxSeq     = "q/"        // q/<id prefix>/<date>             → uint64 BE
	pfxCount   = "k/"        // k/<state:2>                      → int64 BE (cases per state)
	pfxEval    = "e/"        // e/<period:5><dim><key>\x00<ind> → int64 BE (evaluation counters, see tiers/evaluation; zero ones deleted)
	keyApplied = "m/applied" // index, term: 16 bytes BE
	keyRestore = "m/restore" // RestoreState: a group restored from a backup (tiers/backup)

	// Ownership and reconciliation (see federation/DESIGN.md).
	pfxLegacy    = "x/" // x/<reporting node>\x00<legacy id>   → case id (imported cases; a point key, read inside Apply)
	pfxReview    = "v/" // v/<case id>                         → "" (open cases in the joint review queue)
	pfxHandedUp  = "t/" // t/<case id>                         → "" (filed cases whose last step was a transfer up: waiting for the new holder)
	pfxDigest    = "h/" // h/<case id>                         → Digest (epoch, version, hash, holder, reporting node)
	pfxRun       = "y/" // y/<run id>                          → ReconcileRun
	pfxRunRecord = "z/" // z/<run id>\x00<case id>             → ReconcileRecord

	// Federation (see federation/DESIGN.md).
	pfxOutbox   = "o/"         // o/<peer>\x00<seq:8 BE>       → LinkEntry
	pfxOutLink  = "l/"         // l/<peer>                      → OutLink (last seq, acked)
	pfxInLink   = "i/"         // i/<peer>                      → uint64 BE: high-water mark received [, uint64 BE: the sender's incarnation]
	keyTopology = "f/topology" // FederationTopology the state machine routes by
	unitSep     = "\x00"

	// The change feed (F/e/, F/m) is in feed.go.
)

func caseKey(id string) []byte { return []byte(pfxCase + id) }

func stateKey(st pb.State, id string) []byte {
	k := make([]byte, 0, len(pfxByState)+3+len(id))
	k = append(appendPad2(append(k, pfxByState...), int32(st)), '/')
	return append(k, id...)
}

func statePrefix(st pb.State) []byte {
	return append(appendPad2([]byte(pfxByState), int32(st)), '/')
}

// appendPad2 appends n as fmt's %02d does (at least two digits, zero
// padded), without fmt: the state keys are built on every case write.
func appendPad2(b []byte, n int32) []byte {
	if n >= 0 && n < 10 {
		b = append(b, '0')
	}
	return strconv.AppendInt(b, int64(n), 10)
}

func unitKey(unit, id string) []byte { return []byte(pfxByUnit + unit + unitSep + id) }

func unitPrefix(unit string) []byte { return []byte(pfxByUnit + unit + unitSep) }

func gridKey(grid, id string) []byte { return []byte(pfxByGrid + grid + "/" + id) }

func dueKey(deadlineMs int64, id string) []byte {
	k := make([]byte, 0, len(pfxByDue)+9+len(id))
	k = append(k, pfxByDue...)
	k = binary.BigEndian.AppendUint64(k, uint64(deadlineMs))
	k = append(k, '/')
	return append(k, id...)
}

func overdueKey(id string) []byte { return []byte(pfxOverdue + id) }

func countKey(st pb.State) []byte { return appendPad2([]byte(pfxCount), int32(st)) }

func requestKey(id string) []byte { return []byte(pfxRequest + id) }

func nodeKey(id string) []byte { return []byte(pfxNode + id) }

func seqKey(prefix, date string) []byte { return []byte(pfxSeq + prefix + "/" + date) }

func outboxPrefix(peer string) []byte { return []byte(pfxOutbox + peer + unitSep) }

func outboxKey(peer string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(outboxPrefix(peer), seq)
}

// legacyKey scopes a legacy id by the jurisdiction of the node that
// imported the case: two districts' old systems may use the same numbers,
// and a node can hold or mirror cases another node imported.
func legacyKey(node, legacyID string) []byte { return []byte(pfxLegacy + node + unitSep + legacyID) }

func reviewKey(id string) []byte { return []byte(pfxReview + id) }

func handedUpKey(id string) []byte { return []byte(pfxHandedUp + id) }

func digestKey(id string) []byte { return []byte(pfxDigest + id) }

func runKey(run string) []byte { return []byte(pfxRun + run) }

func runRecordPrefix(run string) []byte { return []byte(pfxRunRecord + run + unitSep) }

func runRecordKey(run, id string) []byte { return append(runRecordPrefix(run), id...) }

func outLinkKey(peer string) []byte { return []byte(pfxOutLink + peer) }

func inLinkKey(peer string) []byte { return []byte(pfxInLink + peer) }

// idFromIndexKey returns the case id at the end of an index key.
func idFromIndexKey(prefix, key []byte) string {
	rest := key[len(prefix):]
	for i := len(rest) - 1; i >= 0; i-- {
		if rest[i] == '/' || rest[i] == 0 {
			return string(rest[i+1:])
		}
	}
	return string(rest)
}
