package fsm

import (
	"errors"
	"fmt"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/store"
)

// kindReport is ReportCase's body number: a batch's items are reports.
const kindReport Kind = 10

// MaxBatchItems bounds the reports of one ReportBatch: the API takes at
// most 100 per call; the state machine refuses an entry with more (a log
// entry must stay small enough to replicate and apply without stalling
// the group).
const MaxBatchItems = 1000

// ErrBatchTooLarge refuses a ReportBatch with more than MaxBatchItems items.
var ErrBatchTooLarge = errors.New("report batch too large")

// BatchItem is the command one item of a ReportBatch stands for: a
// ReportCase with the item's request id and the batch's stamps. Apply,
// the precheck and the leader's stampers see each item through it, so an
// item is decided, fingerprinted and replayed exactly as the same report
// sent alone (a retry may come either way).
func BatchItem(batch *pb.Command, it *pb.ReportBatchItem) *pb.Command {
	return &pb.Command{
		RequestId:     it.GetRequestId(),
		StampedUnixMs: batch.StampedUnixMs,
		StampedBy:     batch.StampedBy,
		LocalOffsetS:  batch.LocalOffsetS,
		Fingerprint:   it.GetFingerprint(),
		Body:          &pb.Command_Report{Report: it.GetReport()},
	}
}

// reportBatch applies the items of b in order, each as the report it
// stands for; Result.Items holds one result per item. A refused item
// (invalid, or its request id reused for another report) refuses that
// item alone; a storage failure fails the entry.
func reportBatch(tx *store.Tx, cmd *pb.Command, b *pb.ReportBatch, fv *fedView, index uint64) (*Result, error) {
	if len(b.GetItems()) > MaxBatchItems {
		return &Result{Err: fmt.Errorf("%w: index %d: %d items, at most %d", ErrBatchTooLarge, index, len(b.Items), MaxBatchItems)}, nil
	}
	out := &Result{Items: make([]*Result, len(b.Items))}
	for i, it := range b.Items {
		res, err := reportItem(tx, BatchItem(cmd, it), fv, index, i)
		if err != nil {
			return nil, err
		}
		out.Items[i] = res
	}
	return out, nil
}

// reportItem applies one item of a batch (sub: BatchItem) as the report
// row of the registry applies a ReportCase.
func reportItem(tx *store.Tx, sub *pb.Command, fv *fedView, index uint64, item int) (*Result, error) {
	if sub.GetReport() == nil {
		return &Result{Err: fmt.Errorf("%w: index %d: a batch item without a report", ErrBadCommand, index)}, nil
	}
	t := byKind[kindReport]
	fp := t.fingerprintOf(sub)
	if res, err := recorded(tx, tx.GetCase, sub, t, fp); res != nil || err != nil {
		return res, err
	}
	return t.apply(&entry{tx: tx, cmd: sub, index: index, fv: fv, fp: fp, item: item})
}

// precheckBatch answers a batch whose every item was applied before (a
// retried batch) without the log: the items' first results. Otherwise it
// returns nil and Apply decides every item (a new item may still be
// refused there, on its own).
func precheckBatch(tx *store.Tx, cmd *pb.Command, b *pb.ReportBatch, getCase func(id string) (*pb.Case, error)) (*Result, error) {
	if len(b.GetItems()) == 0 || len(b.Items) > MaxBatchItems {
		return nil, nil
	}
	out := &Result{Replayed: true, Items: make([]*Result, len(b.Items))}
	for i, it := range b.Items {
		res, err := recorded(tx, getCase, BatchItem(cmd, it), byKind[kindReport], nil)
		if err != nil || res == nil || !res.Replayed {
			return nil, err
		}
		out.Items[i] = res
	}
	return out, nil
}
