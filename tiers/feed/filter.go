package feed

import (
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// Filter selects the changes a watcher is sent: every field set must
// match. Scope, when set, is the caller's scope (tiers/auth), asked of the
// case as the change left it.
type Filter struct {
	Holder     string
	States     []pb.State
	Overdue    bool
	GridPrefix string
	OwnerUnit  string
	Scope      func(*pb.Case) bool
}

// FilterOf is the filter a request asks for (scope not set).
func FilterOf(f *pb.ChangeFilter) Filter {
	return Filter{
		Holder: f.GetHolder(), States: f.GetStates(), Overdue: f.GetOverdue(),
		GridPrefix: f.GetGridPrefix(), OwnerUnit: f.GetOwnerUnit(),
	}
}

// Match reports whether ch passes the filter.
func (f Filter) Match(ch *pb.CaseChange) bool {
	switch {
	case f.Holder != "" && ch.Holder != f.Holder,
		len(f.States) > 0 && !slices.Contains(f.States, ch.State),
		f.Overdue && !ch.Overdue,
		f.GridPrefix != "" && !strings.HasPrefix(ch.GridCode, f.GridPrefix),
		f.OwnerUnit != "" && ch.OwnerUnit != f.OwnerUnit:
		return false
	}
	return f.Scope == nil || f.Scope(ScopeCase(ch))
}

// ScopeCase is the case as far as a change tells it: what the scope rules
// read (id, owner unit, grid, reporter, holder, state).
func ScopeCase(ch *pb.CaseChange) *pb.Case {
	return &pb.Case{
		Id: ch.CaseId, OwnerUnit: ch.OwnerUnit, GridCode: ch.GridCode, ReportedBy: ch.ReportedBy,
		Holder: ch.Holder, HolderEpoch: ch.HolderEpoch, State: ch.State, Version: ch.Version, Overdue: ch.Overdue,
	}
}

// WithCase is a copy of ch carrying c (the hub's changes are shared and
// never modified).
func WithCase(ch *pb.CaseChange, c *pb.Case) *pb.CaseChange {
	out := proto.Clone(ch).(*pb.CaseChange)
	out.Case = c
	return out
}
