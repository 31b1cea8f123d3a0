package fsm

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

var (
	// ErrNotInReview refuses a joint-review decision on a case that is not
	// in the review queue.
	ErrNotInReview = errors.New("case is not in the joint review queue")
	// ErrInReview refuses an action that would move a case waiting in the
	// joint review queue other than by the shift leader's decision.
	ErrInReview = errors.New("case waits in the joint review queue")
)

// maxReasons bounds the reasons a case's ownership keeps (the newest).
const maxReasons = 20

// ruleJointReview is the rule an owner decided by joint review records.
const ruleJointReview = "joint-review"

func checkOwnershipAction(old *pb.Case, a *pb.CaseAction) error {
	inReview := old.GetOwnership().GetInReview()
	if a.Action == pb.Action_ACTION_DECIDE_OWNER && !inReview {
		return fmt.Errorf("%w: case %s (only a case referred to joint review can be decided; refer it first)", ErrNotInReview, old.GetId())
	}
	if inReview {
		switch a.Action {
		case pb.Action_ACTION_DECIDE_OWNER, pb.Action_ACTION_VOID, pb.Action_ACTION_SUPERVISE:
		default:
			return fmt.Errorf("%w (疑难案件会诊): case %s: a shift leader decides its owner first (decide-owner); %s is not allowed until then",
				ErrInReview, old.GetId(), a.Action)
		}
	}
	return nil
}

// settleOwnership keeps c's ownership in step with action a (applied to
// old): the catalogue's answer stamped on filing and hand-offs, the review
// flag and both sides' reasons, the owner's returns, and a joint-review
// decision, which no later catalogue answer overrides.
func settleOwnership(c, old *pb.Case, a *pb.CaseAction, fv *fedView) {
	prev := old.GetOwnership()
	switch a.Action {
	case pb.Action_ACTION_FILE, pb.Action_ACTION_DISPATCH, pb.Action_ACTION_REASSIGN, pb.Action_ACTION_TRANSFER_UP, pb.Action_ACTION_HAND_DOWN:
		if a.GetOwnership() != nil && !prev.GetDecided() {
			o := proto.Clone(a.Ownership).(*pb.Ownership)
			o.Rejections, o.Reasons, o.InReview, o.Decided = prev.GetRejections(), prev.GetReasons(), false, false
			c.Ownership = o
		}
	case pb.Action_ACTION_REQUEST_RETURN:
		if prev.GetUnit() != "" && old.GetOwnerUnit() == prev.GetUnit() {
			o := proto.Clone(prev).(*pb.Ownership)
			o.Rejections++
			o.Reasons = addReason(o.Reasons, fmt.Sprintf("owner %s returned it (%s): %s", prev.GetUnit(), a.GetActor(), a.GetNote()))
			c.Ownership = o
		}
	case pb.Action_ACTION_REFER_REVIEW:
		o := &pb.Ownership{}
		if a.GetOwnership() != nil {
			o = proto.Clone(a.Ownership).(*pb.Ownership)
		} else if prev != nil {
			o = proto.Clone(prev).(*pb.Ownership)
		}
		o.Rejections, o.Reasons = prev.GetRejections(), prev.GetReasons()
		o.InReview, o.Decided = true, false
		o.Reasons = addReason(o.Reasons, fmt.Sprintf("referred to joint review by %s at %s: %s", a.GetActor(), nodeName(fv), a.GetNote()))
		c.Ownership = o
	case pb.Action_ACTION_DECIDE_OWNER:
		o := &pb.Ownership{
			Unit: a.Unit, Tier: c.GetOwnerTier(), Node: nodeName(fv), Rule: ruleJointReview,
			CatalogueVersion: prev.GetCatalogueVersion(), Decided: true,
			Explanation: fmt.Sprintf("decided by joint review (会诊) by %s: %s", a.GetActor(), a.GetNote()),
			Rejections:  prev.GetRejections(),
			Reasons:     addReason(prev.GetReasons(), fmt.Sprintf("decided by %s: %s owns it: %s", a.GetActor(), a.Unit, a.GetNote())),
		}
		if fv != nil {
			if host, ok := fv.topo.NodeOfUnit(a.Unit); ok {
				o.Node, o.Tier = host.Name, pb.Tier(host.Tier)
			}
		}
		c.Ownership = o
	}
}

func addReason(reasons []string, r string) []string {
	out := append(append([]string(nil), reasons...), r)
	if len(out) > maxReasons {
		out = out[len(out)-maxReasons:]
	}
	return out
}

func nodeName(fv *fedView) string {
	if fv == nil {
		return "this node"
	}
	return fv.self
}
