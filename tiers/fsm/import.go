package fsm

import (
	"errors"
	"fmt"
	"strings"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/store"
)

// importCases creates the cases of validated legacy rows (the API built
// each case whole: state, stage times, owner, one history entry). In order,
// each entry whose legacy id a stored case carries is counted as already
// imported (the legacy id is the import's idempotency key); the others get
// an id as a report does (<id prefix>-<reported date>-<sequence>), this
// node as reporting node and holder, and travel on the federation's links
// like a report. Malformed entries are skipped and counted. The request is
// recorded, so a retry of the same request id is a replay.
// fp is the command's fingerprint, taken before the cases get their ids.
func importCases(tx *store.Tx, cmd *pb.Command, ic *pb.ImportCases, fv *fedView, index uint64, fp []byte) (*Result, error) {
	if !validIDPart(ic.GetIdPrefix()) {
		return &Result{Err: fmt.Errorf("%w: import needs an id prefix", ErrBadCommand)}, nil
	}
	res := &Result{CaseIDs: make([]string, len(ic.Cases))}
	first := ""
	for i, e := range ic.Cases {
		if !importable(e) {
			res.Skipped++
			continue
		}
		c := e.Case // decoded for this entry alone: no one else holds it
		id, err := tx.CaseByLegacyID(ic.IdPrefix, c.LegacyId)
		switch {
		case err == nil:
			res.Already++
		case !errors.Is(err, store.ErrNotFound):
			return nil, err
		default:
			seq, err := tx.NextSeq(ic.IdPrefix, e.IdDate)
			if err != nil {
				return nil, err
			}
			id = caseID(ic.IdPrefix, e.IdDate, seq)
			c.Id = id
			c.ReportedAtNode = ic.IdPrefix
			c.Holder, c.HolderEpoch = "", 0
			if fv != nil {
				c.Holder, c.HolderEpoch = fv.self, 1
			}
			c.AllowedActions = nil
			if err := putCase(tx, nil, c, cmd.LocalOffsetS); err != nil {
				return nil, err
			}
			if err := fv.emit(tx, "", fv.selfName(), c, cmd.StampedUnixMs); err != nil {
				return nil, err
			}
			res.Imported++
		}
		res.CaseIDs[i] = id
		if first == "" {
			first = id
		}
	}
	if cmd.RequestId != "" {
		// The record names the first case of the batch; a replay answers
		// with it (the API reads the others by legacy id).
		if err := tx.PutRequest(cmd.RequestId, &pb.RequestRecord{CaseId: first, Fingerprint: fp, LogIndex: index}); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// importable checks what the store and the federation rely on: a case in
// a known state at version 1, a legacy id that can be a key (no NUL, the
// index separator), an 8-digit id date, key fields of a bounded size.
func importable(e *pb.ImportedCase) bool {
	c := e.GetCase()
	if c == nil || c.Version != 1 || len(e.IdDate) != 8 || strings.Trim(e.IdDate, "0123456789") != "" {
		return false
	}
	if _, ok := pb.State_name[int32(c.State)]; !ok || c.State == pb.State_STATE_UNSPECIFIED {
		return false
	}
	for _, k := range []string{c.LegacyId, c.GridCode, c.OwnerUnit} {
		if len(k) > maxKeyField || strings.IndexByte(k, 0) >= 0 {
			return false
		}
	}
	return c.LegacyId != ""
}

// importReplayed completes the answer to a replayed import from the
// state: every entry whose legacy id a stored case carries counts as
// already imported, with its case id (in command order, "" for the
// others), so a retry answers as the first apply did, wherever it is
// decided (the leader's precheck or Apply).
func importReplayed(tx *store.Tx, cmd *pb.Command, res *Result) error {
	ic := cmd.GetImportCases()
	res.Case = nil // the record names the batch's first case: not the answer
	res.CaseIDs = make([]string, len(ic.GetCases()))
	for i, e := range ic.GetCases() {
		if !importable(e) {
			res.Skipped++
			continue
		}
		id, err := tx.CaseByLegacyID(ic.GetIdPrefix(), e.Case.LegacyId)
		switch {
		case errors.Is(err, store.ErrNotFound):
			continue
		case err != nil:
			return err
		}
		res.Already++
		res.CaseIDs[i] = id
	}
	return nil
}
