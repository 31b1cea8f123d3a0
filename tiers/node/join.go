package node

import (
	"context"
	"fmt"
	"sync/atomic"

	"google.golang.org/protobuf/proto"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/fsm"
)

// Joining reports (group commit). Under load, many clients report at once,
// each with a ReportCase of its own. The leader joins the reports that
// wait at the same moment into one ReportBatch entry: one log entry, one
// replication round, one state transaction on every replica for all of
// them, where each would otherwise have paid for its own. A report alone
// (one client, a quiet hour) goes into the log as the ReportCase it is, as
// soon as it comes: joining never waits for company when the log is idle.
//
// How many wait is decided by the log, not by a timer: at most
// joinInFlight entries of joined reports are in raft at a time, and the
// reports that come while they are all in flight are joined into the next
// entry. So the entries grow with the load and with the log's latency.
//
// Behind an entry in flight, a group waits for company: it goes when it
// holds as many reports as the newest entry sent, or when nothing is in
// flight any more. Without that rule, under steady load the entries
// alternated between most clients' reports and one or two (the slot the
// big entry freed went to whichever report came first), and each small
// one cost an entry's fixed work: a log write and fsync on every
// replica, a replication round, a transaction and its copy of the
// in-memory tree's paths. With it the clients split evenly between the
// two entries in flight. A lone report waits for nothing (nothing is in
// flight), and two clients still overlap (one is as many as one).
//
// A report that comes when nothing is in flight, nobody waits and the
// newest entry held one report (the log is quiet: one client) is
// committed from its caller's goroutine, not handed to the joiner's and
// from there to a committing one: those two wake-ups were on every
// report's path. It takes a slot like a group. Under load the newest
// entry held many, and a report that finds the log empty for a moment
// (the clients of the entry just answered) is joined with the others
// that come, as before.
//
// A batch item is decided, fingerprinted and replayed exactly as the same
// report sent alone (fsm.BatchItem), so a report's answer, its request
// record and a retry's replay do not depend on whether it was joined. Only
// the time stamp is shared: the entry carries the earliest of its
// reports' stamps, and reports are joined only with reports stamped for
// the same day (the day is part of a case id).

// joinInFlight bounds the entries of joined reports in raft at a time.
const joinInFlight = 2

// joinMaxBytes bounds the encoded reports of one joined entry.
const joinMaxBytes = 1 << 20

// joined is one report waiting to be joined, and where its answer goes.
type joined struct {
	cmd    *pb.Command // stamped and prechecked
	answer chan joinAnswer
}

type joinAnswer struct {
	res *fsm.Result
	err error
}

// joiner joins waiting reports into entries (see above).
type joiner struct {
	max   int
	in    chan *joined
	slots chan struct{}
	// freed wakes a group waiting for company when an entry's slot frees.
	freed chan struct{}
	// busy counts the entries of reports committing (groups and reports
	// committed alone from their caller's goroutine); newest is the
	// reports of the newest entry sent.
	busy, newest atomic.Int32
	// waiting, when set (a test), is told each group that begins to wait
	// for company, with its reports.
	waiting func(reports int)
	done    <-chan struct{}
	// commit puts one command into the log and returns the state
	// machine's result (Node.commit); batchAllowed reports whether every
	// replica applies a ReportBatch (the version gate).
	commit       func(cmd *pb.Command) (*fsm.Result, error)
	batchAllowed func(cmd *pb.Command) bool
}

func newJoiner(max int, done <-chan struct{}, commit func(*pb.Command) (*fsm.Result, error), allowed func(*pb.Command) bool) *joiner {
	return &joiner{max: max, in: make(chan *joined, 4*max), slots: make(chan struct{}, joinInFlight),
		freed: make(chan struct{}, 1), done: done,
		commit: commit, batchAllowed: allowed}
}

// join hands cmd, a stamped and prechecked ReportCase, to the joiner and
// returns its result as if it had been committed alone.
func (j *joiner) join(ctx context.Context, cmd *pb.Command) (*fsm.Result, error) {
	if res, alone, err := j.alone(cmd); alone {
		return res, err
	}
	w := &joined{cmd: cmd, answer: make(chan joinAnswer, 1)}
	select {
	case j.in <- w:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-j.done:
		return nil, ErrShutdown
	}
	select {
	case a := <-w.answer:
		return a.res, a.err
	case <-ctx.Done():
		// The entry may still commit: a retry with the request id is safe.
		return nil, ctx.Err()
	case <-j.done:
		return nil, ErrShutdown
	}
}

// alone commits cmd from the caller's goroutine when the log is quiet:
// nothing in flight, no report waiting and the newest entry one report
// (false: join it).
func (j *joiner) alone(cmd *pb.Command) (res *fsm.Result, ok bool, err error) {
	if j.busy.Load() != 0 || len(j.in) != 0 || j.newest.Load() > 1 {
		return nil, false, nil
	}
	select {
	case j.slots <- struct{}{}:
	default:
		return nil, false, nil
	}
	j.busy.Add(1)
	j.newest.Store(1)
	res, err = j.commit(cmd)
	j.busy.Add(-1)
	j.release()
	return res, true, err
}

// release gives back an entry's slot and wakes a group waiting for
// company.
func (j *joiner) release() {
	<-j.slots
	select {
	case j.freed <- struct{}{}:
	default: // a wake-up is pending already
	}
}

// run takes a slot, then every report waiting (at least one, at most
// max), waits for company behind an entry in flight (above), and commits
// the group in the background.
func (j *joiner) run() {
	last := 0 // the reports of the newest entry sent
	for {
		select {
		case j.slots <- struct{}{}:
		case <-j.done:
			return
		}
		var group []*joined
		size := 0
		take := func(w *joined) {
			group = append(group, w)
			size += proto.Size(w.cmd)
		}
		select {
		case w := <-j.in:
			take(w)
		case <-j.done:
			return
		}
	gather:
		for len(group) < j.max && size < joinMaxBytes {
			select {
			case w := <-j.in:
				take(w)
			default:
				break gather
			}
		}
		// len(j.slots) counts this group's slot too.
		company := func() bool {
			return len(group) < last && len(group) < j.max && size < joinMaxBytes && len(j.slots) > 1
		}
		if j.waiting != nil && company() {
			j.waiting(len(group))
		}
		for company() {
			select {
			case w := <-j.in:
				take(w)
			case <-j.freed:
			case <-j.done:
				return
			}
		}
		last = len(group)
		j.newest.Store(int32(last))
		j.busy.Add(1)
		go func() {
			j.commitGroup(group)
			j.busy.Add(-1)
			j.release()
		}()
	}
}

// commitGroup commits the reports of group, joined by the day they were
// stamped for, and answers each.
func (j *joiner) commitGroup(group []*joined) {
	for len(group) > 0 {
		n := 1
		for n < len(group) && sameDay(group[0].cmd, group[n].cmd) {
			n++
		}
		j.commitDay(group[:n])
		group = group[n:]
	}
}

func (j *joiner) commitDay(group []*joined) {
	if len(group) == 1 {
		res, err := j.commit(group[0].cmd)
		group[0].answer <- joinAnswer{res, err}
		return
	}
	batch := joinReports(group)
	if !j.batchAllowed(batch) {
		// A replica of an older release does not know the batch: the
		// reports go in one by one (raft still carries them together).
		for _, w := range group {
			go func() {
				res, err := j.commit(w.cmd)
				w.answer <- joinAnswer{res, err}
			}()
		}
		return
	}
	res, err := j.commit(batch)
	if err == nil && len(res.Items) != len(group) {
		err = fmt.Errorf("joined reports: the state machine answered %d of %d", len(res.Items), len(group))
	}
	for i, w := range group {
		switch {
		case err != nil:
			w.answer <- joinAnswer{nil, err}
		case res.Items[i].Err != nil:
			w.answer <- joinAnswer{nil, res.Items[i].Err}
		default:
			w.answer <- joinAnswer{res.Items[i], nil}
		}
	}
}

// sameDay reports whether two reports were stamped for the same day in
// the same zone: they may share an entry's stamp.
func sameDay(a, b *pb.Command) bool {
	return a.GetReport().GetIdDate() == b.GetReport().GetIdDate() && a.LocalOffsetS == b.LocalOffsetS && a.StampedBy == b.StampedBy
}

// joinReports is the ReportBatch of group's reports, in order, stamped
// with the earliest of their stamps.
func joinReports(group []*joined) *pb.Command {
	first := group[0].cmd
	b := &pb.ReportBatch{Items: make([]*pb.ReportBatchItem, len(group))}
	cmd := &pb.Command{StampedUnixMs: first.StampedUnixMs, StampedBy: first.StampedBy, LocalOffsetS: first.LocalOffsetS,
		Body: &pb.Command_ReportBatch{ReportBatch: b}}
	for i, w := range group {
		b.Items[i] = &pb.ReportBatchItem{RequestId: w.cmd.RequestId, Report: w.cmd.GetReport(), Fingerprint: w.cmd.Fingerprint}
		cmd.StampedUnixMs = min(cmd.StampedUnixMs, w.cmd.StampedUnixMs)
	}
	return cmd
}
