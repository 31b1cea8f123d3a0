package evidence

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/node"
)

// Retention removes, on the leader, the bytes of evidence whose every case
// ended (closed, not filed, voided) longer ago than Keep: an EvidencePurge
// through the log (every replica drops the chunks at the same entry), then
// the object in the bucket (S3 mode). The references and the metadata stay,
// marked purged.
type Retention struct {
	n     node.Leader
	svc   *Service
	keep  time.Duration
	every time.Duration
	now   func() time.Time
	log   *slog.Logger
}

// NewRetention returns the retention of node n (keep > 0), looking every
// `every`; now is the clock (nil: the system's).
func NewRetention(n node.Leader, svc *Service, keep, every time.Duration, now func() time.Time, logger *slog.Logger) *Retention {
	if now == nil {
		now = time.Now
	}
	if logger == nil {
		logger = slog.Default()
	}
	return &Retention{n: n, svc: svc, keep: keep, every: every, now: now, log: logger.With("component", "evidence-retention")}
}

// Lead runs Sweep every interval until ctx ends. It is a leader job
// (node.AddLeaderJob): it runs on the leader of a settled term only, and
// its context ends with the term.
func (r *Retention) Lead(ctx context.Context) {
	t := time.NewTicker(r.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		sctx, cancel := context.WithTimeout(ctx, r.every)
		if n, err := r.Sweep(sctx); err != nil && ctx.Err() == nil {
			r.log.Warn("retention sweep", "error", err, "purged", n)
		} else if n > 0 {
			r.log.Info("evidence past retention removed", "purged", n)
		}
		cancel()
	}
}

// ended reports whether c ended before cutoff.
func ended(c *pb.Case, cutoff time.Time) bool {
	switch c.GetState() {
	case pb.State_STATE_CLOSED, pb.State_STATE_NOT_FILED, pb.State_STATE_VOIDED:
	default:
		return false
	}
	at := c.GetClosedAt()
	if at == nil {
		at = c.GetUpdatedAt()
	}
	return at != nil && at.AsTime().Before(cutoff)
}

// Sweep purges what is past retention now and returns how many blobs it
// purged. It does nothing on a follower.
func (r *Retention) Sweep(ctx context.Context) (int, error) {
	if !r.n.IsLeader() {
		return 0, nil
	}
	st := r.n.Store()
	cutoff := r.now().Add(-r.keep)
	var due []*pb.EvidenceBlob
	err := st.EachEvidenceBlob(func(b *pb.EvidenceBlob) error {
		if b.Purged || len(b.CaseIds) == 0 {
			return nil
		}
		for _, id := range b.CaseIds {
			c, err := st.GetCase(id)
			if err != nil || !ended(c, cutoff) {
				return nil // a case still open, or not here: keep
			}
		}
		due = append(due, b)
		return nil
	})
	if err != nil {
		return 0, err
	}
	purged := 0
	for _, b := range due {
		if _, err := r.n.ApplyLocal(ctx, &pb.Command{Body: &pb.Command_AttachEvidence{AttachEvidence: &pb.AttachEvidence{
			Op: &pb.AttachEvidence_Purge{Purge: &pb.EvidencePurge{Sha256: b.Sha256}}}}}); err != nil {
			return purged, fmt.Errorf("purge %s: %w", b.Sha256, err)
		}
		purged++
		if r.svc != nil {
			if err := r.svc.DeleteObject(ctx, b); err != nil {
				r.log.Warn("purged evidence's object not deleted (delete it by hand)", "sha256", b.Sha256, "key", b.ObjectKey, "error", err)
			}
		}
	}
	return purged, nil
}
