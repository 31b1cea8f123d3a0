package workflow

import (
	"fmt"
	"slices"
	"strings"
	"time"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// MaxExtensionMinutes bounds one extension request (one year of wall
// minutes); it also keeps deadline arithmetic far from overflow.
const MaxExtensionMinutes = 366 * 24 * 60

// Step is one validated, leader-stamped action.
type Step struct {
	Action           pb.Action
	Actor            string
	Role             pb.Role
	Note             string
	Attachments      []string
	Evidence         []string // SHA-256 of evidence the case carries (checked by the caller)
	Unit             string   // DISPATCH, REASSIGN, DECIDE_OWNER: target unit (required)
	UnitTier         pb.Tier  // DISPATCH, REASSIGN, DECIDE_OWNER: optional
	DeadlineUnixMs   int64    // DISPATCH, REASSIGN, DECIDE_OWNER: required (>0) handling deadline stamped by leader; CHECK_FAIL: optional new deadline for the rework
	ExtensionMinutes int64    // REQUEST_EXTENSION: required > 0
	AtUnixMs         int64    // leader-stamped time of the step (required)
	RequestID        string
	ExpectedVersion  uint64 // if non-zero must equal case version, else ErrVersionMismatch
	// StageDeadlineUnixMs is the leader-stamped deadline of the first stage
	// (NewCase only); later stages are kept by tiers/deadline.
	StageDeadlineUnixMs int64
	// Principal and ActorUnit are the authenticated caller and its unit,
	// kept in the history entry (留痕).
	Principal string
	ActorUnit string
}

// Apply applies step s to c in place (the caller passes a clone), appends one
// HistoryEntry (action, actor, role, at, note, attachments, from/to state,
// version after, unit, request id), increments c.Version by 1 and sets
// c.UpdatedAt. On error c is left unchanged: everything is validated before
// anything is mutated.
//
// Checks run in this order: the step's own fields (action, actor, role, at),
// the role, the expected version, the case's state (and pending request and
// source), then the action's required fields (and, for REASSIGN, that the
// unit is not the one the case already has).
func Apply(c *pb.Case, s Step) error {
	if c == nil {
		return fmt.Errorf("%w: no case", ErrInvalidArgument)
	}
	t, err := checkStep(s)
	if err != nil {
		return err
	}
	if err := checkRole(t, s.Role); err != nil {
		return err
	}
	if err := checkVersion(c, s.ExpectedVersion); err != nil {
		return err
	}
	if !t.allows(c) {
		return forbidden(c, t)
	}
	if err := checkFields(t, s); err != nil {
		return err
	}
	if t.Action == pb.Action_ACTION_REASSIGN && s.Unit == c.GetOwnerUnit() {
		return fieldErr("unit", fmt.Sprintf("%s is already with unit %q; %s needs another unit",
			caseLabel(c), s.Unit, t.Action))
	}
	from := c.GetState()
	to, err := destination(c, t)
	if err != nil {
		return err
	}

	// Everything is valid: mutate.
	at := tsFromMs(s.AtUnixMs)
	unit := ""
	switch s.Action {
	case pb.Action_ACTION_FILE:
		c.FiledAt = at
	case pb.Action_ACTION_SELF_HANDLE, pb.Action_ACTION_CLOSE:
		c.ClosedAt = at
	case pb.Action_ACTION_DISPATCH, pb.Action_ACTION_DECIDE_OWNER:
		unit = s.Unit
		c.OwnerUnit = s.Unit
		if s.UnitTier != pb.Tier_TIER_UNSPECIFIED {
			c.OwnerTier = s.UnitTier
		}
		c.DispatchedAt = at
		c.Deadline = tsFromMs(s.DeadlineUnixMs)
	case pb.Action_ACTION_REASSIGN:
		// As DISPATCH from FILED (where no tier is set): the tier is the new
		// unit's, never the old one's. A pending request was made by the old
		// unit and lapses with it.
		unit = s.Unit
		c.OwnerUnit = s.Unit
		c.OwnerTier = s.UnitTier
		c.DispatchedAt = at
		c.Deadline = tsFromMs(s.DeadlineUnixMs)
		c.Pending = nil
	case pb.Action_ACTION_REQUEST_RETURN, pb.Action_ACTION_REQUEST_EXTENSION, pb.Action_ACTION_REQUEST_SUSPEND:
		p := &pb.Pending{
			Action:    s.Action,
			Actor:     s.Actor,
			Reason:    s.Note,
			FromState: from,
			At:        at,
		}
		if s.Action == pb.Action_ACTION_REQUEST_EXTENSION {
			p.ExtensionMinutes = s.ExtensionMinutes
		}
		c.Pending = p
	case pb.Action_ACTION_APPROVE_RETURN, pb.Action_ACTION_TRANSFER_UP, pb.Action_ACTION_REFER_REVIEW:
		// The case goes back to FILED with no unit, deadline or request.
		c.OwnerUnit = ""
		c.OwnerTier = pb.Tier_TIER_UNSPECIFIED
		c.Deadline = nil
		c.Pending = nil
	case pb.Action_ACTION_DENY_RETURN,
		pb.Action_ACTION_DENY_EXTENSION,
		pb.Action_ACTION_DENY_SUSPEND,
		pb.Action_ACTION_HANDLE: // a pending extension or suspension lapses: the work is done
		c.Pending = nil
	case pb.Action_ACTION_VOID:
		// Nothing is pending or suspended any more; the history keeps both.
		c.Pending = nil
		c.SuspendedFrom = pb.State_STATE_UNSPECIFIED
		c.SuspendedAt = nil
	case pb.Action_ACTION_CHECK_FAIL:
		c.ReworkCount++
		unit = c.GetOwnerUnit()
		if s.DeadlineUnixMs > 0 {
			c.Deadline = tsFromMs(s.DeadlineUnixMs)
		}
	case pb.Action_ACTION_APPROVE_EXTENSION:
		if c.Deadline != nil {
			c.Deadline = tsFromMs(msFromTs(c.Deadline) + c.GetPending().GetExtensionMinutes()*int64(time.Minute/time.Millisecond))
		}
		c.ExtensionCount++
		c.Pending = nil
	case pb.Action_ACTION_APPROVE_SUSPEND:
		c.SuspendedFrom = from
		c.SuspendedAt = at
		c.Pending = nil
	case pb.Action_ACTION_RESUME:
		if c.Deadline != nil && c.SuspendedAt != nil {
			// Suspended time does not count: the deadline moves later by the
			// time spent suspended. A leader clock that went backwards across a
			// failover never moves it earlier.
			if spent := s.AtUnixMs - msFromTs(c.SuspendedAt); spent > 0 {
				c.Deadline = tsFromMs(msFromTs(c.Deadline) + spent)
			}
		}
		c.SuspendedFrom = pb.State_STATE_UNSPECIFIED
		c.SuspendedAt = nil
	case pb.Action_ACTION_SUPERVISE:
		c.SuperviseCount++
	case pb.Action_ACTION_HAND_DOWN:
		// Nothing changes but the holder (the processor's): the history
		// names the unit it goes down to.
		unit = c.GetOwnerUnit()
	}
	c.State = to
	record(c, s, from, to, unit, at)
	return nil
}

// OverdueNote starts the note of the history entry MarkOverdue records, so
// reports can tell an overdue supervision from one a person gave.
const OverdueNote = "overdue:"

// MarkOverdue flags an open case whose stage deadline deadlineMs passed at
// atMs (leader-stamped) and records the supervision (督办) by the system:
// overdue, overdue_count and supervise_count, one history entry, version+1.
// It refuses (ErrForbidden) when the case is not in a stage with that
// deadline any more, is already marked, or the time has not come; the case
// is then unchanged.
func MarkOverdue(c *pb.Case, deadlineMs, atMs int64, requestID string) error {
	switch {
	case c == nil:
		return fmt.Errorf("%w: no case", ErrInvalidArgument)
	case !IsOpen(c.GetState()) || c.GetState() == pb.State_STATE_SUSPENDED:
		return fmt.Errorf("%w: %s is %s: no deadline runs", ErrForbidden, caseLabel(c), c.GetState())
	case c.GetStageDeadline() == nil || msFromTs(c.GetStageDeadline()) != deadlineMs:
		return fmt.Errorf("%w: %s: the stage deadline is not %d any more", ErrForbidden, caseLabel(c), deadlineMs)
	case c.GetOverdue():
		return fmt.Errorf("%w: %s is already marked overdue for this deadline", ErrForbidden, caseLabel(c))
	case atMs < deadlineMs:
		return fmt.Errorf("%w: %s: the deadline has not passed", ErrForbidden, caseLabel(c))
	}
	c.Overdue = true
	c.OverdueCount++
	c.SuperviseCount++
	st := c.GetState()
	s := Step{Action: pb.Action_ACTION_SUPERVISE, Actor: "system", Role: pb.Role_ROLE_SYSTEM, AtUnixMs: atMs, RequestID: requestID,
		Note: fmt.Sprintf("%s %s stage deadline %s passed", OverdueNote, stageName(st), time.UnixMilli(deadlineMs).UTC().Format(time.RFC3339))}
	record(c, s, st, st, "", tsFromMs(atMs))
	return nil
}

func stageName(st pb.State) string {
	switch st {
	case pb.State_STATE_REPORTED:
		return "verify"
	case pb.State_STATE_VERIFIED:
		return "file"
	case pb.State_STATE_FILED:
		return "dispatch"
	case pb.State_STATE_DISPATCHED, pb.State_STATE_ACCEPTED, pb.State_STATE_RETURN_REQUESTED:
		return "handle"
	case pb.State_STATE_HANDLED:
		return "check"
	case pb.State_STATE_CHECKED:
		return "close"
	}
	return strings.ToLower(strings.TrimPrefix(st.String(), "STATE_"))
}

// NewCase initialises a freshly reported case (ACTION_REPORT): state
// REPORTED, version 1, reported_at/updated_at = at, one history entry. The
// role must be allowed to report. c carries the reported fields (id, source,
// codes, description...); the workflow-owned fields (owner, pending, stage
// times, counters, allowed_actions) are reset. c must not have been reported
// already (state UNSPECIFIED, version 0, no history). On error c is left
// unchanged.
func NewCase(c *pb.Case, s Step) error {
	if err := CheckNewCase(c, s); err != nil {
		return err
	}
	at := tsFromMs(s.AtUnixMs)
	c.OwnerUnit = ""
	c.OwnerTier = pb.Tier_TIER_UNSPECIFIED
	c.SuspendedFrom = pb.State_STATE_UNSPECIFIED
	c.Pending = nil
	c.FiledAt = nil
	c.DispatchedAt = nil
	c.Deadline = nil
	c.SuspendedAt = nil
	c.ClosedAt = nil
	c.ReworkCount = 0
	c.ExtensionCount = 0
	c.SuperviseCount = 0
	c.AllowedActions = nil
	c.ReportedAt = at
	c.State = sReported
	c.StageDeadline, c.Overdue, c.OverdueCount, c.HandledAt = nil, false, 0, nil
	if s.StageDeadlineUnixMs > 0 {
		c.StageDeadline = tsFromMs(s.StageDeadlineUnixMs)
	}
	record(c, s, pb.State_STATE_UNSPECIFIED, sReported, "", at)
	return nil
}

// CheckNewCase returns the error NewCase(c, s) would return, without
// changing c: every refusal of NewCase comes from these checks, made
// before it changes anything. The leader's precheck of a report uses it
// on the client's case instead of NewCase on a copy.
func CheckNewCase(c *pb.Case, s Step) error {
	if c == nil {
		return fmt.Errorf("%w: no case", ErrInvalidArgument)
	}
	t, err := checkStep(s)
	if err != nil {
		return err
	}
	if t.Action != pb.Action_ACTION_REPORT {
		return &FieldError{Field: "action", Reason: fmt.Sprintf(
			"a new case starts with %s, not %s", pb.Action_ACTION_REPORT, s.Action)}
	}
	if err := checkRole(t, s.Role); err != nil {
		return err
	}
	if c.GetState() != pb.State_STATE_UNSPECIFIED || c.GetVersion() != 0 || len(c.GetHistory()) != 0 {
		return fmt.Errorf("%w: %s already exists (%s, version %d); %s only creates a new case; allowed now: %s",
			ErrForbidden, caseLabel(c), c.GetState(), c.GetVersion(), pb.Action_ACTION_REPORT, allowedNow(c))
	}
	return checkVersion(c, s.ExpectedVersion)
}

// record appends the history entry and bumps version and updated_at.
func record(c *pb.Case, s Step, from, to pb.State, unit string, at *timestamppb.Timestamp) {
	c.Version++
	c.UpdatedAt = at
	c.History = append(c.History, &pb.HistoryEntry{
		Action:      s.Action,
		Actor:       s.Actor,
		Role:        s.Role,
		At:          tsFromMs(s.AtUnixMs), // own copy: no aliasing with case fields
		Note:        s.Note,
		Attachments: slices.Clone(s.Attachments),
		Evidence:    slices.Clone(s.Evidence),
		FromState:   from,
		ToState:     to,
		Version:     c.Version,
		Unit:        unit,
		RequestId:   s.RequestID,
		Principal:   s.Principal,
		ActorUnit:   s.ActorUnit,
	})
}

// checkStep validates the fields every step needs and returns its transition.
func checkStep(s Step) (*Transition, error) {
	if s.Action == pb.Action_ACTION_UNSPECIFIED {
		return nil, fieldErr("action", "required")
	}
	t, ok := byAction[s.Action]
	if !ok {
		return nil, fieldErr("action", fmt.Sprintf("unknown action %d", int32(s.Action)))
	}
	if strings.TrimSpace(s.Actor) == "" {
		return nil, fieldErr("actor", "required: who takes the action")
	}
	if s.Role == pb.Role_ROLE_UNSPECIFIED {
		return nil, fieldErr("role", fmt.Sprintf("required; %s may be taken by %s", s.Action, joinRoles(Roles(s.Action))))
	}
	if _, known := pb.Role_name[int32(s.Role)]; !known {
		return nil, fieldErr("role", fmt.Sprintf("unknown role %d", int32(s.Role)))
	}
	if s.AtUnixMs <= 0 {
		return nil, fieldErr("at", "the leader must stamp the step time")
	}
	return t, nil
}

func checkRole(t *Transition, r pb.Role) error {
	if slices.Contains(t.Roles, r) {
		return nil
	}
	return fmt.Errorf("%w: %s may not take %s; allowed roles: %s",
		ErrRoleNotAllowed, r, t.Action, joinRoles(Roles(t.Action)))
}

func checkVersion(c *pb.Case, want uint64) error {
	if want == 0 || want == c.GetVersion() {
		return nil
	}
	return fmt.Errorf("%w: %s is at version %d, the request expected version %d; reload the case and retry",
		ErrVersionMismatch, caseLabel(c), c.GetVersion(), want)
}

// checkFields validates the action's own fields.
func checkFields(t *Transition, s Step) error {
	for _, f := range t.Requires {
		switch f {
		case reqUnit:
			if strings.TrimSpace(s.Unit) == "" {
				return fieldErr("unit", fmt.Sprintf("required: the unit %s sends the case to", t.Action))
			}
		case reqDeadline:
			if s.DeadlineUnixMs <= 0 {
				return fieldErr("deadline", fmt.Sprintf("required: the handling deadline for %s", t.Action))
			}
		case reqExtensionMinutes:
			if s.ExtensionMinutes <= 0 || s.ExtensionMinutes > MaxExtensionMinutes {
				return fieldErr("extension_minutes", fmt.Sprintf("required: minutes to add to the deadline, 1 to %d", MaxExtensionMinutes))
			}
		case reqNote:
			if strings.TrimSpace(s.Note) == "" {
				return fieldErr("note", fmt.Sprintf("required: the reason for %s", t.Action))
			}
		}
	}
	sendsToUnit := slices.Contains(t.Requires, reqUnit) // DISPATCH, REASSIGN, DECIDE_OWNER
	if sendsToUnit {
		if _, known := pb.Tier_name[int32(s.UnitTier)]; !known {
			return fieldErr("unit_tier", fmt.Sprintf("unknown tier %d", int32(s.UnitTier)))
		}
	}
	if sendsToUnit || (t.Action == pb.Action_ACTION_CHECK_FAIL && s.DeadlineUnixMs != 0) {
		if s.DeadlineUnixMs <= s.AtUnixMs {
			return fieldErr("deadline", "must be later than the time of the step")
		}
	}
	return nil
}

// destination resolves where t leads from c. It fails only when the stored
// case breaks an invariant the destination depends on.
func destination(c *pb.Case, t *Transition) (pb.State, error) {
	switch t.Dest {
	case DestStay:
		return c.GetState(), nil
	case DestPendingFrom:
		p := c.GetPending()
		if p.GetAction() != pb.Action_ACTION_REQUEST_RETURN || !slices.Contains(inWork, p.GetFromState()) {
			return 0, fmt.Errorf("%w: %s is %s but its pending request (%s from %s) does not say which state to return to; %s can still be taken",
				ErrInconsistent, caseLabel(c), c.GetState(), p.GetAction(), p.GetFromState(), pb.Action_ACTION_APPROVE_RETURN)
		}
		return p.GetFromState(), nil
	case DestSuspendedFrom:
		if !slices.Contains(inWork, c.GetSuspendedFrom()) {
			return 0, fmt.Errorf("%w: %s is %s but suspended_from is %s; %s can still be taken",
				ErrInconsistent, caseLabel(c), c.GetState(), c.GetSuspendedFrom(), pb.Action_ACTION_VOID)
		}
		return c.GetSuspendedFrom(), nil
	}
	return t.To, nil
}

// forbidden builds the ErrForbidden error: it names the current state, where
// the action may start from, why not here, and what is allowed now.
func forbidden(c *pb.Case, t *Transition) error {
	msg := fmt.Sprintf("%s is %s; %s is allowed only from %s", caseLabel(c), c.GetState(), t.Action, t.describeFrom())
	if why := whyNot(c, t); why != "" {
		msg += " (" + why + ")"
	}
	return fmt.Errorf("%w: %s; allowed now: %s", ErrForbidden, msg, allowedNow(c))
}

// whyNot explains a failed condition when the state itself would do.
func whyNot(c *pb.Case, t *Transition) string {
	st := c.GetState()
	p := c.GetPending()
	for _, o := range t.From {
		if (len(o.States) == 0 && !IsOpen(st)) || (len(o.States) > 0 && !slices.Contains(o.States, st)) {
			continue
		}
		switch {
		case o.NoPending && p.GetAction() != pb.Action_ACTION_UNSPECIFIED:
			return fmt.Sprintf("a pending %s by %s must be decided first", p.GetAction(), p.GetActor())
		case o.Pending != pb.Action_ACTION_UNSPECIFIED && p.GetAction() != o.Pending:
			if p.GetAction() == pb.Action_ACTION_UNSPECIFIED {
				return fmt.Sprintf("no %s is pending", o.Pending)
			}
			return fmt.Sprintf("the pending request is %s, not %s", p.GetAction(), o.Pending)
		case o.TrustedSource && !slices.Contains(TrustedSources, c.GetSource()):
			return fmt.Sprintf("source %s is not trusted; verify the case first", c.GetSource())
		}
	}
	return ""
}

func allowedNow(c *pb.Case) string {
	if a := Allowed(c); len(a) > 0 {
		return joinActions(a)
	}
	switch st := c.GetState(); {
	case IsTerminal(st):
		return fmt.Sprintf("none (%s is terminal)", st)
	case st == pb.State_STATE_UNSPECIFIED:
		return fmt.Sprintf("none (the case has not been reported; %s creates it)", pb.Action_ACTION_REPORT)
	}
	return "none"
}

func caseLabel(c *pb.Case) string {
	if id := c.GetId(); id != "" {
		return "case " + id
	}
	return "the case"
}

// tsFromMs and msFromTs convert between leader-stamped Unix milliseconds and
// protobuf timestamps. They never read the clock.
func tsFromMs(ms int64) *timestamppb.Timestamp {
	return timestamppb.New(time.UnixMilli(ms))
}

func msFromTs(ts *timestamppb.Timestamp) int64 {
	return ts.AsTime().UnixMilli()
}
