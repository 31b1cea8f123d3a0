// Package overdue runs the deadline sweeper: on the leader of the group that
// holds a case, it marks the case overdue once its stage deadline passes
// (see tiers/deadline for how deadlines are computed).
package overdue

import (
	"context"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/diskspace"
	"github.com/cityhub/cityhub/tiers/node"
	"github.com/cityhub/cityhub/tiers/store"
)

// Sweeper marks the cases whose stage deadline passed, on the leader of the
// group that holds them. Deadlines are state (the store's deadline index),
// not timers, so a new leader finds every case that fell due, however long
// the group was without one. Each mark is one command with the request id
// overdue/<case>/<deadline>, so a mark retried across a leadership change
// applies once; the state machine also refuses a second mark of the same
// deadline.
type Sweeper struct {
	local    node.Leader
	self     string // the federation node name ("" standalone): only held cases are swept
	interval time.Duration
	batch    int
	log      *slog.Logger

	marked atomic.Int64
}

// NewSweeper returns a sweeper that runs every interval.
func NewSweeper(local node.Leader, self string, interval time.Duration, logger *slog.Logger) *Sweeper {
	if interval <= 0 {
		interval = time.Second
	}
	if logger == nil {
		logger = slog.Default()
	}
	return &Sweeper{local: local, self: self, interval: interval, batch: 1024, log: logger.With("component", "deadline-sweeper")}
}

// Lead sweeps every interval until ctx ends. It is a leader job
// (node.AddLeaderJob): it runs on the leader of a settled term only, and
// its context ends with the term.
func (s *Sweeper) Lead(ctx context.Context) {
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		switch _, err := s.Sweep(ctx); {
		case err == nil || ctx.Err() != nil:
		case diskspace.IsRefusal(err):
			// Paused below the disk reserve (the monitor logs the
			// crossing); deadlines are state: the first sweep after
			// space returns marks what fell due.
			s.log.Debug("sweep paused: disk space below the reserve", "error", err)
		default:
			s.log.Warn("sweep", "error", err)
		}
	}
}

// Marked counts the cases this replica marked overdue.
func (s *Sweeper) Marked() int64 { return s.marked.Load() }

// Sweep marks every held case due before now and returns how many it
// marked. The marks go in batches of up to markBatch cases per command (an
// imported backlog falls due all at once); each mark is checked by Apply
// like a single one, so a batch retried after a leader change marks nothing
// twice.
func (s *Sweeper) Sweep(ctx context.Context) (int, error) {
	now := s.local.Now()
	n := 0
	var after *store.DueCase // entries left in the index (mirrors) are paged past
	for {
		due, err := s.local.Store().DueAfter(now, after, s.batch)
		if err != nil {
			return n, err
		}
		var marks []*pb.MarkOverdue
		for _, d := range due {
			c, err := s.local.Store().GetCase(d.ID)
			if err != nil {
				continue
			}
			if (c.Holder != "" && c.Holder != s.self) || c.State == pb.State_STATE_SUSPENDED {
				continue // a mirror: its holder marks it, and the mark comes up the links
			}
			marks = append(marks, &pb.MarkOverdue{CaseId: d.ID, DeadlineUnixMs: d.DeadlineMs})
		}
		for lo := 0; lo < len(marks); lo += markBatch {
			if err := ctx.Err(); err != nil {
				return n, err
			}
			batch := marks[lo:min(lo+markBatch, len(marks))]
			marked, err := s.mark(ctx, batch)
			n += marked
			if err != nil {
				if !s.local.IsLeader() {
					return n, nil
				}
				if diskspace.IsRefusal(err) {
					return n, err // every later batch would be refused too
				}
				s.log.Debug("mark overdue refused", "cases", len(batch), "error", err)
			}
		}
		if len(due) < s.batch {
			return n, nil
		}
		last := due[len(due)-1]
		after = &last
	}
}

// markBatch is the number of overdue marks per command.
const markBatch = 256

// mark proposes one batch of marks and logs the cases it supervised.
func (s *Sweeper) mark(ctx context.Context, marks []*pb.MarkOverdue) (int, error) {
	first := marks[0]
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	res, err := s.local.ApplyLocal(cctx, &pb.Command{
		RequestId: "overdue/" + first.CaseId + "/" + strconv.FormatInt(first.DeadlineUnixMs, 10) + "/" + strconv.Itoa(len(marks)),
		Body:      &pb.Command_MarkOverdueBatch{MarkOverdueBatch: &pb.MarkOverdueBatch{Marks: marks}},
	})
	if err != nil {
		return 0, err
	}
	s.marked.Add(int64(res.Applied))
	if res.Applied > 0 {
		ids := make([]string, 0, min(len(marks), 5))
		for _, m := range marks[:min(len(marks), 5)] {
			ids = append(ids, m.CaseId)
		}
		s.log.Info("cases overdue: supervised (督办) and escalated", "marked", res.Applied, "skipped", res.Skipped, "first", ids,
			"deadline", time.UnixMilli(first.DeadlineUnixMs).Format(time.RFC3339))
	}
	return res.Applied, nil
}
