// Package workflow is the case lifecycle of cityhub (DOMAIN.md section 3) as a
// pure, deterministic state machine.
//
// It runs inside the Raft FSM Apply, so it never reads the clock, random
// numbers, the environment or any I/O: every time it records comes from the
// leader-stamped Step. The same case and the same Step always give the same
// result on every replica.
//
// The lifecycle is declared as data in transitions.go (one Transition per
// action: the states and pending-request conditions it may start from, where
// it leads, and the roles that may take it). Apply validates a Step against
// that table and against the action's required fields before it changes
// anything, so a failed Apply leaves the case untouched.
//
// Invariants kept by the table and Apply:
//   - the case is in RETURN_REQUESTED exactly when a return request is pending;
//   - a pending extension or suspension exists only in DISPATCHED or ACCEPTED,
//     and at most one request is pending at a time (a pending request blocks
//     new REQUEST_RETURN, REQUEST_EXTENSION and REQUEST_SUSPEND);
//   - HANDLE lets a pending extension or suspension lapse (the work is done),
//     VOID drops any pending request and any suspension;
//   - APPROVE_RETURN, TRANSFER_UP (上交) and REFER_REVIEW (提请会诊), the last
//     two from FILED, DISPATCHED, ACCEPTED or RETURN_REQUESTED, lead to FILED
//     and clear the owner unit and tier, the deadline and any pending
//     request; neither changes the holder node nor the case's ownership
//     record (the state machine processor does);
//   - DISPATCH (from FILED), REASSIGN (改派, from DISPATCHED, ACCEPTED or
//     RETURN_REQUESTED, to a unit other than the current one) and
//     DECIDE_OWNER (会诊裁定, from FILED, shift leader only) lead to
//     DISPATCHED with a unit, dispatched_at and a deadline; REASSIGN drops
//     any pending request. That a case is in joint review before
//     DECIDE_OWNER is checked by the processor, not here;
//   - the case is in SUSPENDED exactly when suspended_from is set;
//   - terminal states (NOT_FILED, CLOSED, VOIDED) allow nothing.
//
// Errors wrap the sentinels ErrForbidden, ErrRoleNotAllowed,
// ErrVersionMismatch, ErrInvalidArgument (often as a *FieldError naming the
// request field) and ErrInconsistent (the stored case breaks an invariant),
// so callers map them to API codes with errors.Is.
package workflow
