package api

import (
	"context"
	"fmt"
	"strings"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/auth"
)

// asPrincipal makes the request's actor and role the authenticated
// principal's. A request that names another role is refused: the role
// comes from who the caller is, never from what it says.
func asPrincipal(p *auth.Principal, actor *string, role *pb.Role) error {
	if p == nil {
		return nil
	}
	if *role != pb.Role_ROLE_UNSPECIFIED && *role != p.Role {
		return deniedStatus("role", fmt.Errorf("the request names role %s but the caller %s is %s: leave role out, it comes from the credentials", *role, p.ID, p.Role))
	}
	*actor, *role = p.Name, p.Role
	if *actor == "" {
		*actor = p.ID
	}
	return nil
}

// listScope narrows a list to the caller's scope: a unit's seat lists its
// unit's cases (the query is filtered by it), an inspector the grids they
// patrol, an integrator its own reports. It returns the filter for the
// cases the query cannot narrow by itself (nil: none needed).
func (s *CaseServer) listScope(ctx context.Context, r *pb.ListCasesRequest) (func(*pb.Case) bool, error) {
	return caseScope(ctx, s.g, &r.OwnerUnit, &r.GridPrefix)
}

// caseScope is the scope check of every call that returns many cases (the
// lists and the change feed): it narrows the query's owner unit or grid
// prefix where the caller's scope (auth.CaseList) fixes them, refuses an
// owner unit outside it, and returns the filter for the rest (nil: none
// needed).
func caseScope(ctx context.Context, g *guard, ownerUnit, gridPrefix *string) (func(*pb.Case) bool, error) {
	p := g.principal(ctx)
	if p == nil {
		return nil, nil
	}
	scope, _ := auth.ScopeOf(p.Role, auth.CaseList)
	switch scope {
	case auth.ScopeNode:
		return nil, nil
	case auth.ScopeUnit:
		if *ownerUnit != "" && *ownerUnit != p.Unit {
			return nil, g.require(ctx, auth.CaseList, &pb.Case{OwnerUnit: *ownerUnit})
		}
		*ownerUnit = p.Unit
		return nil, nil
	case auth.ScopeGrids:
		if len(p.Grids) == 1 && (*gridPrefix == "" || strings.HasPrefix(p.Grids[0], *gridPrefix)) {
			*gridPrefix = p.Grids[0]
			return nil, nil
		}
	}
	return func(c *pb.Case) bool { return auth.InScope(p, scope, c) }, nil
}

// redact removes the reporter's contact (个人信息) from c unless the
// caller's role calls citizens back.
func (s *CaseServer) redact(ctx context.Context, c *pb.Case) {
	p := s.g.principal(ctx)
	if p == nil || c == nil || c.Reporter == nil {
		return
	}
	if auth.Authorize(p, auth.CaseContact, c) != nil {
		c.Reporter = nil
	}
}
