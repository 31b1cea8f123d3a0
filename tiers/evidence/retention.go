package evidence

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/fsm"
	"github.com/cityhub/cityhub/tiers/store"
)

// RetentionNode is what retention needs of the node (node.Node).
type RetentionNode interface {
	IsLeader() bool
	Store() *store.Store
	ApplyLocal(ctx context.Context, cmd *pb.Command) (*fsm.Result, error)
}

// Retention removes, on the leader, the bytes of evidence whose every case
// ended (closed, not filed, voided) longer ago than Keep: an EvidencePurge
// through the log (every replica drops the chunks at the same entry), then
// the object in the bucket (S3 mode). The references and the metadata stay,
// marked purged.
type Retention struct {
	n     RetentionNode
	svc   *Service
	keep  time.Duration
	every time.Duration
	now   func() time.Time
	log   *slog.Logger

	stop chan struct{}
	wg   sync.WaitGroup
}

// NewRetention returns the retention of node n (keep > 0), looking every
// `every`; now is the clock (nil: the system's).
func NewRetention(n RetentionNode, svc *Service, keep, every time.Duration, now func() time.Time, logger *slog.Logger) *Retention {
	if now == nil {
		now = time.Now
	}
	if logger == nil {
		logger = slog.Default()
	}
	return &Retention{n: n, svc: svc, keep: keep, every: every, now: now, log: logger.With("component", "evidence-retention"), stop: make(chan struct{})}
}

// Start runs Sweep every interval until Stop.
func (r *Retention) Start() {
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		t := time.NewTicker(r.every)
		defer t.Stop()
		for {
			select {
			case <-r.stop:
				return
			case <-t.C:
				ctx, cancel := context.WithTimeout(context.Background(), r.every)
				if n, err := r.Sweep(ctx); err != nil {
					r.log.Warn("retention sweep", "error", err, "purged", n)
				} else if n > 0 {
					r.log.Info("evidence past retention removed", "purged", n)
				}
				cancel()
			}
		}
	}()
}

// Stop ends the loop.
func (r *Retention) Stop() {
	if r == nil {
		return
	}
	close(r.stop)
	r.wg.Wait()
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
