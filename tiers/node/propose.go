package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/client"
	"github.com/cityhub/cityhub/tiers/deadline"
	"github.com/cityhub/cityhub/tiers/fsm"
	"github.com/cityhub/cityhub/tiers/store"
)

// proposeRetry is how Propose waits between attempts while the leadership
// moves: the one retry policy of cityhub's callers (tiers/client), short
// at first, since an election takes a second or two. Which errors are
// worth another attempt is the node's own typed errors (Retryable), read
// before any gRPC status: the Forwarder turns an unreachable or deposed
// leader into ErrNoLeader by the same policy's classification.
var proposeRetry = client.Policy{Initial: 10 * time.Millisecond, Max: 500 * time.Millisecond}

// Propose commits cmd, a client's write, through raft and returns the
// state machine's result (a refusal is the error). On a follower the
// command goes to the leader through the Forwarder, and the result comes
// back from there. When leadership is moving, Propose retries until ctx
// ends: every command carries a request id, so a retry of a command that
// did commit returns the first result. Only a command of a type a client
// may cause is proposed this way (fsm.ClientMayCause; a leader's own jobs
// use ApplyLocal): anything else is ErrNotClientCommand.
func (n *Node) Propose(ctx context.Context, cmd *pb.Command) (*fsm.Result, error) {
	if !fsm.ClientMayCause(cmd) {
		return nil, fmt.Errorf("%w: %s", ErrNotClientCommand, fsm.KindOf(cmd))
	}
	if _, ok := ctx.Deadline(); !ok {
		// A caller without a deadline (a REST client, say) still gets an
		// answer when the group has no leader for long.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, n.cfg.ApplyTimeout)
		defer cancel()
	}
	return n.retry(ctx, cmd, n.proposeOnce)
}

// retry makes attempts (once) until one is done or fails for good, or ctx
// ends.
func (n *Node) retry(ctx context.Context, cmd *pb.Command, once func(context.Context, *pb.Command) (*fsm.Result, error)) (*fsm.Result, error) {
	backoff := proposeRetry.Backoff()
	// A report is stamped in place (stampsInPlace): an attempt that failed
	// here as leader leaves its stamps in cmd. The next attempt may go to
	// another leader, which refuses a forwarded command that carries
	// stamps (tiers/api validateCommand), so they are put back first.
	unstamped := saveReportStamps(cmd)
	for {
		res, err := once(ctx, cmd)
		if err == nil || !Retryable(err) {
			return res, err
		}
		unstamped.restore(cmd)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w (last attempt: %w)", ctx.Err(), err)
		case <-n.done:
			return nil, ErrShutdown
		case <-time.After(backoff.Next()):
		}
	}
}

func (n *Node) proposeOnce(ctx context.Context, cmd *pb.Command) (*fsm.Result, error) {
	if n.IsLeader() {
		return n.ApplyLocal(ctx, cmd)
	}
	addr := n.leaderInternalAddr()
	if addr == "" {
		return nil, ErrNoLeader
	}
	if n.cfg.Forwarder == nil {
		return nil, ErrNotLeader
	}
	return n.cfg.Forwarder.Propose(ctx, addr, cmd)
}

// Retryable reports whether an error means "leadership is moving: try
// again, maybe elsewhere" (the command may have committed: retry it with
// the same request id).
// A Forwarder reports an unreachable leader as ErrNoLeader.
func Retryable(err error) bool {
	return errors.Is(err, ErrNoLeader) || errors.Is(err, ErrNotLeader) ||
		errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) ||
		errors.Is(err, raft.ErrLeadershipTransferInProgress) || errors.Is(err, raft.ErrAbortedByRestore)
}

// ApplyLocal stamps cmd, commits it through raft on this node, which must
// lead, and returns the state machine's result. A command the state machine
// refused is returned as the error. The leader's own jobs propose through
// it, and the API's forward handler, so a forwarded command is never
// forwarded again.
func (n *Node) ApplyLocal(ctx context.Context, cmd *pb.Command) (*fsm.Result, error) {
	for attempt := 0; ; attempt++ {
		res, err := n.applyLocal(ctx, cmd)
		// A deadline stamped from a copy of the case that an entry still
		// in flight has changed: stamp again once it is applied.
		if !errors.Is(err, deadline.ErrStale) || attempt == 5 {
			return res, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Duration(attempt+1) * 5 * time.Millisecond):
		}
	}
}

func (n *Node) applyLocal(ctx context.Context, cmd *pb.Command) (*fsm.Result, error) {
	select {
	case <-n.done:
		return nil, ErrShutdown
	default:
	}
	if !n.IsLeader() {
		return nil, ErrNotLeader
	}
	if !stampsInPlace(cmd) {
		cmd = proto.Clone(cmd).(*pb.Command)
	}
	// An entry of this term applied (a command, or the barrier of
	// settle.go) means every entry committed before it is applied too:
	// the store then holds every acknowledged write.
	term := n.raft.CurrentTerm()
	// And nothing in the leader's log is waiting to be applied: an entry
	// committed but not yet applied here (a delivery, another client's
	// write) may already be visible on a follower, so a refusal decided
	// without it could contradict what a caller has seen. The applied
	// position is what the state machine has written (or the barrier of
	// settle.go), not raft's, which runs ahead of the writes. Read before
	// the view, so the view holds at least what was applied then.
	settled := n.appliedTerm() == term && n.AppliedIndex() >= n.raft.LastIndex()
	var (
		pre     *fsm.Result
		stamped bool
	)
	// One read-only view for the stamper's reads and the precheck's: the
	// case an action names is read and decoded once for both. A report's
	// stamping and precheck read no index (the recurrence look-up reads
	// the store's nearby lists itself): its view takes no copy of the
	// in-memory indexes, so the commit after it changes them in place
	// (store.ViewRecords).
	view := n.store.View
	switch cmd.Body.(type) {
	case *pb.Command_Report, *pb.Command_ReportBatch:
		view = n.store.ViewRecords
	}
	err := view(func(tx *store.Tx) error {
		read := caseOnce(tx)
		n.stamp(cmd, read)
		stamped = true
		var err error
		pre, err = n.fsm.Precheck(tx, cmd, read)
		return err
	})
	if !stamped {
		n.stamp(cmd, n.store.GetCase)
	}
	// A store that cannot be read here leaves the decision to Apply.
	if err == nil && pre != nil {
		if res, done, err := n.answerPrecheck(pre, settled, term); done {
			return res, err
		}
	}
	if err := n.versionGate(cmd); err != nil {
		return nil, err
	}
	// Past the precheck (a replay or a refusal it decided still answers),
	// nothing goes into the log while the disk is below the reserve.
	if err := n.admitWrite(cmd); err != nil {
		return nil, err
	}
	timeout := n.cfg.ApplyTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(dl))
	}
	if timeout <= 0 {
		return nil, context.DeadlineExceeded
	}
	if _, report := cmd.Body.(*pb.Command_Report); report && n.joiner != nil {
		return n.joiner.join(ctx, cmd)
	}
	return n.commit(cmd, timeout)
}

// commit puts cmd into the log and returns the state machine's result; a
// command the state machine refused is returned as the error.
func (n *Node) commit(cmd *pb.Command, timeout time.Duration) (*fsm.Result, error) {
	data, err := proto.Marshal(cmd)
	if err != nil {
		return nil, fmt.Errorf("encode command: %w", err)
	}
	f := n.raft.Apply(data, timeout)
	if err := f.Error(); err != nil {
		if errors.Is(err, raft.ErrEnqueueTimeout) {
			return nil, fmt.Errorf("%w: raft queue full: %w", context.DeadlineExceeded, err)
		}
		return nil, fmt.Errorf("raft apply: %w", err)
	}
	res, ok := f.Response().(*fsm.Result)
	if !ok || res == nil {
		return nil, fmt.Errorf("raft apply: unexpected response %T", f.Response())
	}
	if res.Err != nil {
		return nil, res.Err
	}
	return res, nil
}

// answerPrecheck answers a command the precheck decided, without the
// log, when that is safe (done), or lets it go through the log:
//
//   - a replay or a reused request id is decided by a request record, and
//     what the leader has applied is committed: always answered;
//   - a deadline stamped from a copy that has changed since: ApplyLocal
//     stamps again;
//   - any other refusal reflects every acknowledged write when the store
//     has applied an entry of this leader's term (settled: every entry
//     an earlier leader committed is applied, and nothing in the leader's
//     log waits to be applied) and a quorum still follows
//     this leader in the same term after the read (a deposed leader's
//     state may be stale). Otherwise the log decides.
func (n *Node) answerPrecheck(pre *fsm.Result, settled bool, term uint64) (res *fsm.Result, done bool, err error) {
	switch {
	case pre.Replayed:
		return pre, true, nil
	case errors.Is(pre.Err, fsm.ErrRequestReused), errors.Is(pre.Err, deadline.ErrStale):
		return nil, true, pre.Err
	case pre.Err == nil || !settled:
		return nil, false, nil
	}
	if err := n.raft.VerifyLeader().Error(); err != nil {
		return nil, true, fmt.Errorf("%w: verify leadership: %w", ErrNotLeader, err)
	}
	if n.raft.CurrentTerm() != term {
		return nil, false, nil
	}
	return nil, true, pre.Err
}

// caseOnce reads cases through tx and remembers the last one read, so the
// stampers and the precheck share one read and decode of the case an
// action names. Readers must not change the case.
func caseOnce(tx *store.Tx) func(id string) (*pb.Case, error) {
	var (
		lastID string
		last   *pb.Case
		lastOK bool
		err    error
	)
	return func(id string) (*pb.Case, error) {
		if !lastOK || id != lastID {
			lastID, lastOK = id, true
			last, err = tx.GetCase(id)
		}
		return last, err
	}
}

// DefaultTimeLimit is the wall-clock handling time of a dispatch that names
// neither a deadline nor a time limit, on a node without a deadline policy.
const DefaultTimeLimit = 8 * time.Hour

// stamp writes the leader's clock and identity into cmd, so Apply never
// reads them itself.
func (n *Node) stamp(cmd *pb.Command, read func(id string) (*pb.Case, error)) {
	now := n.cfg.Clock.Now()
	cmd.StampedUnixMs = now.UnixMilli()
	cmd.StampedBy = n.cfg.ID
	_, off := now.In(n.cfg.Location).Zone()
	cmd.LocalOffsetS = int32(off)
	if n.cfg.Stamper != nil {
		n.cfg.Stamper.Stamp(now, cmd, read)
	}
	switch b := cmd.Body.(type) {
	case *pb.Command_Report:
		b.Report.IdPrefix = n.cfg.Jurisdiction
		b.Report.IdDate = now.In(n.cfg.Location).Format("20060102")
	case *pb.Command_ReportBatch:
		// Every item as the report it stands for, at the batch's time.
		for _, it := range b.ReportBatch.Items {
			if it.GetReport() == nil {
				continue // Apply refuses the item
			}
			if n.cfg.Stamper != nil {
				n.cfg.Stamper.Stamp(now, fsm.BatchItem(cmd, it), read)
			}
			it.Report.IdPrefix = n.cfg.Jurisdiction
			it.Report.IdDate = now.In(n.cfg.Location).Format("20060102")
		}
	case *pb.Command_ImportCases:
		b.ImportCases.IdPrefix = n.cfg.Jurisdiction
	case *pb.Command_Act:
		if n.cfg.Stamper != nil {
			break
		}
		limit := b.Act.TimeLimitMinutes
		if limit == 0 && b.Act.DeadlineUnixMs == 0 && dispatches(b.Act.Action) {
			limit = int64(DefaultTimeLimit / time.Minute)
		}
		if limit > 0 {
			b.Act.DeadlineUnixMs = now.Add(time.Duration(limit) * time.Minute).UnixMilli()
		}
	}
	// Last: a report's fingerprint, which every replica's request record
	// keeps, computed here once.
	fsm.StampFingerprint(cmd)
}

// stampsInPlace reports whether cmd may be stamped as it is, not on a
// copy. Stamping writes into the command. A report's stamps (and each
// report's of a batch) all overwrite fields that the fingerprint leaves
// out, and none reads another's: stamping the caller's command again (a
// retry through Propose here) gives what stamping a fresh copy would
// (TestReportStampedTwiceIsStampedOnce); Propose puts a report's stamps
// back before a retry, which may be forwarded to another leader
// (saveReportStamps). The deep copy
// was a twentieth of a leader's CPU under reports. Other commands'
// stamps are not all like that (an action's deadline is stamped only
// when unset, and ApplyLocal stamps again after deadline.ErrStale), so
// they are stamped on a copy.
func stampsInPlace(cmd *pb.Command) bool {
	switch cmd.Body.(type) {
	case *pb.Command_Report, *pb.Command_ReportBatch:
		return true
	}
	return false
}

// reportStamps are the fields of a report command that stamping writes:
// the node's own (time, stamper, offset, id prefix and date, fingerprint)
// and its stampers' (stage deadline, owner, recurrence). They are the
// fields the fingerprint leaves out (fsm.reportFingerprint), which is why
// a report may be stamped in place; TestReportStampsPutBack checks, with
// the real stampers, that stamping changes nothing else.
type reportStamps struct {
	ok         bool
	at         int64
	by         string
	offset     int32
	fp         []byte
	prefix     string
	date       string
	stage      int64
	owner      *pb.Ownership
	recurrence string
}

// saveReportStamps saves the stamped fields of cmd as they are, if cmd is
// a report (a batch is never forwarded: ReportCases forwards its request).
func saveReportStamps(cmd *pb.Command) reportStamps {
	r := cmd.GetReport()
	if r == nil {
		return reportStamps{}
	}
	return reportStamps{ok: true, at: cmd.StampedUnixMs, by: cmd.StampedBy, offset: cmd.LocalOffsetS, fp: cmd.Fingerprint,
		prefix: r.IdPrefix, date: r.IdDate, stage: r.StageDeadlineUnixMs, owner: r.Ownership, recurrence: r.GetCase().GetRecurrenceOf()}
}

// restore puts the saved fields back into cmd, the command they were
// saved from.
func (s reportStamps) restore(cmd *pb.Command) {
	if !s.ok {
		return
	}
	r := cmd.GetReport()
	cmd.StampedUnixMs, cmd.StampedBy, cmd.LocalOffsetS, cmd.Fingerprint = s.at, s.by, s.offset, s.fp
	r.IdPrefix, r.IdDate, r.StageDeadlineUnixMs, r.Ownership = s.prefix, s.date, s.stage, s.owner
	if r.Case != nil {
		r.Case.RecurrenceOf = s.recurrence
	}
}

// dispatches reports whether action a sends the case to a unit with a
// handling deadline.
func dispatches(a pb.Action) bool {
	switch a {
	case pb.Action_ACTION_DISPATCH, pb.Action_ACTION_REASSIGN, pb.Action_ACTION_DECIDE_OWNER:
		return true
	}
	return false
}
