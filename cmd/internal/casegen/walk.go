package casegen

import (
	"fmt"
	"slices"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// Next picks the next step for a case the way a real platform's staff
// would: mostly forward, with the usual share of rejections, returns,
// extensions and failed checks. It returns nil when the case is finished
// or waits on nobody the generator plays.
//
// A federated generator plays the staff of the case's holder (c.Holder),
// where the step must be taken: see fedFiled and fedDispatched.
func (g *Generator) Next(c *pb.Case) *pb.ActRequest {
	allowed := c.AllowedActions
	can := func(a pb.Action) bool { return slices.Contains(allowed, a) }
	pct := func(p int) bool { return g.rng.IntN(100) < p }
	cl := ClassOf(c)
	g.seq++
	req := &pb.ActRequest{CaseId: c.Id, RequestId: fmt.Sprintf("%s-%d", g.prefix, g.seq)}
	set := func(a pb.Action, actor string, role pb.Role, note string) *pb.ActRequest {
		req.Action, req.Actor, req.Role, req.Note = a, actor, role, note
		return req
	}
	inspector := fmt.Sprintf("insp-%02d", 1+g.rng.IntN(20))
	switch c.State {
	case pb.State_STATE_REPORTED:
		switch {
		case can(pb.Action_ACTION_FILE) && pct(10) && can(pb.Action_ACTION_SELF_HANDLE):
			return set(pb.Action_ACTION_SELF_HANDLE, inspector, pb.Role_ROLE_INSPECTOR, "当场处置 fixed on the spot")
		case can(pb.Action_ACTION_FILE):
			return set(pb.Action_ACTION_FILE, "lead-1", pb.Role_ROLE_SHIFT_LEADER, "")
		case pct(8):
			return set(pb.Action_ACTION_REJECT, "lead-1", pb.Role_ROLE_SHIFT_LEADER, "不属于受理范围 out of scope")
		default:
			return set(pb.Action_ACTION_VERIFY, inspector, pb.Role_ROLE_INSPECTOR, "现场核实 confirmed on site")
		}
	case pb.State_STATE_VERIFIED:
		return set(pb.Action_ACTION_FILE, "lead-1", pb.Role_ROLE_SHIFT_LEADER, "")
	case pb.State_STATE_FILED:
		if g.federated(c) {
			return g.fedFiled(c, cl, req)
		}
		set(pb.Action_ACTION_DISPATCH, "disp-1", pb.Role_ROLE_DISPATCHER, "")
		req.Unit, req.UnitTier, req.TimeLimitMinutes = cl.Unit, pb.Tier_TIER_DISTRICT, cl.LimitMinutes
		return req
	case pb.State_STATE_DISPATCHED:
		if g.federated(c) && g.fedDispatched(c, req) {
			return req
		}
		if pct(5) && c.ReworkCount == 0 {
			return set(pb.Action_ACTION_REQUEST_RETURN, c.OwnerUnit, pb.Role_ROLE_HANDLING_UNIT, "非本单位职责 not ours")
		}
		return set(pb.Action_ACTION_ACCEPT, c.OwnerUnit, pb.Role_ROLE_HANDLING_UNIT, "")
	case pb.State_STATE_RETURN_REQUESTED:
		if pct(50) {
			return set(pb.Action_ACTION_APPROVE_RETURN, "disp-1", pb.Role_ROLE_DISPATCHER, "")
		}
		return set(pb.Action_ACTION_DENY_RETURN, "disp-1", pb.Role_ROLE_DISPATCHER, "属本单位职责 yours, handle it")
	case pb.State_STATE_ACCEPTED:
		switch {
		case can(pb.Action_ACTION_APPROVE_EXTENSION):
			return set(pb.Action_ACTION_APPROVE_EXTENSION, "disp-1", pb.Role_ROLE_DISPATCHER, "")
		case can(pb.Action_ACTION_REQUEST_EXTENSION) && pct(5):
			set(pb.Action_ACTION_REQUEST_EXTENSION, c.OwnerUnit, pb.Role_ROLE_HANDLING_UNIT, "等待配件 waiting for parts")
			req.ExtensionMinutes = 240
			return req
		}
		set(pb.Action_ACTION_HANDLE, c.OwnerUnit, pb.Role_ROLE_HANDLING_UNIT, "已处置 handled")
		req.Attachments = []string{fmt.Sprintf("photo://after/%s.jpg", c.Id)}
		return req
	case pb.State_STATE_HANDLED:
		if pct(12) {
			return set(pb.Action_ACTION_CHECK_FAIL, inspector, pb.Role_ROLE_INSPECTOR, "核查未通过 not fixed")
		}
		return set(pb.Action_ACTION_CHECK_PASS, inspector, pb.Role_ROLE_INSPECTOR, "")
	case pb.State_STATE_CHECKED:
		return set(pb.Action_ACTION_CLOSE, "lead-1", pb.Role_ROLE_SHIFT_LEADER, "")
	}
	return nil
}

// federated reports whether c is a case of the generator's federation.
func (g *Generator) federated(c *pb.Case) bool { return g.topo != nil && c.Holder != "" }
