package auth

import (
	"context"
	"slices"
	"strings"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// Kind is what sort of caller a principal is.
type Kind string

// Kinds of principal.
const (
	KindPerson     Kind = "person"
	KindIntegrator Kind = "integrator"
	KindNode       Kind = "node"
)

// How a principal proved who it is.
const (
	ViaPassword = "password" // the node's own token, issued at login
	ViaOIDC     = "oidc"     // a token from the city's identity provider
	ViaAPIKey   = "api_key"
	ViaMTLS     = "mtls"
	ViaNone     = "none" // authentication turned off (development only)
)

// Principal is an authenticated caller.
type Principal struct {
	// ID is unique on the node: "acct:<name>", "key:<id>",
	// "oidc:<subject>" or "node:<name>".
	ID   string
	Kind Kind
	// Name is what the history shows as the actor (a person's name, an
	// integrator's name).
	Name string
	Role pb.Role
	// Node is the node the principal is bound to (its topology name, or
	// its node id outside a federation).
	Node string
	// Unit is the unit the principal belongs to or speaks for.
	Unit string
	// Grids are the grid code prefixes an inspector patrols.
	Grids []string
	// Sources are the sources an integrator may report as.
	Sources []pb.Source
	// ReadAll lets an integrator read every case of the node, not only its
	// own reports.
	ReadAll bool
	// Via says how the principal authenticated (ViaPassword, …).
	Via string
	// Session is the login session of a node token ("" otherwise).
	Session string
}

// Proto is the principal as the API shows it, with its permissions.
func (p *Principal) Proto() *pb.Principal {
	out := &pb.Principal{
		Id: p.ID, Kind: string(p.Kind), Name: p.Name, Role: p.Role, Node: p.Node,
		Unit: p.Unit, Grids: slices.Clone(p.Grids), Sources: slices.Clone(p.Sources), Via: p.Via,
	}
	for _, g := range Grants(p.Role) {
		out.Permissions = append(out.Permissions, string(g.Permission)+"@"+string(g.Scope))
	}
	return out
}

// InGrids reports whether grid lies in one of the principal's grids.
func (p *Principal) InGrids(grid string) bool {
	for _, g := range p.Grids {
		if g != "" && strings.HasPrefix(grid, g) {
			return true
		}
	}
	return false
}

// MaySource reports whether an integrator may report as source s.
func (p *Principal) MaySource(s pb.Source) bool {
	return slices.Contains(p.Sources, s)
}

type ctxKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, ctxKey{}, p)
}

// FromContext returns the principal ctx carries.
func FromContext(ctx context.Context) (*Principal, bool) {
	p, ok := ctx.Value(ctxKey{}).(*Principal)
	return p, ok && p != nil
}
