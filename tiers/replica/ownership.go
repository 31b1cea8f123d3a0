package replica

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/cityhub/cityhub/config"
	"github.com/cityhub/cityhub/federation/ownership"
	"github.com/cityhub/cityhub/federation/reconcile"
	"github.com/cityhub/cityhub/federation/topology"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/api"
	"github.com/cityhub/cityhub/tiers/node"
	"github.com/cityhub/cityhub/tiers/workflow"
)

// loadOwnership loads the responsibility catalogue of a federated node from
// the configured files; nil when none are configured: the node records no
// owners, and owner lookups and reconciliation are refused
// (errcode.ErrNoCatalogue). No catalogue is taken by default, not even the
// sample city's on the sample topology: the demo and the tests name it.
func loadOwnership(cfg config.Config, topo *topology.Topology) (*ownership.Catalogue, error) {
	rules, comps, err := cfg.LoadOwnershipFiles()
	if err != nil || rules == nil {
		return nil, err
	}
	cat, err := ownership.Parse(rules, comps, topo)
	if err != nil {
		return nil, fmt.Errorf("ownership.rules: %w", err)
	}
	return cat, nil
}

// owners asks the responsibility catalogue, reading times in the city's
// zone: a case's month (for rotations) is that of its report.
type owners struct {
	cat *ownership.Catalogue
	loc *time.Location
}

// OwnerOf implements reconcile.Owners.
func (o owners) OwnerOf(c *pb.Case) *pb.Ownership {
	at := time.Time{}
	if c.GetReportedAt() != nil {
		at = c.GetReportedAt().AsTime()
	}
	return o.ownerAt(c, at)
}

func (o owners) ownerAt(c *pb.Case, at time.Time) *pb.Ownership {
	return o.cat.Resolve(ownership.Query{
		Kind: c.GetKind(), Major: c.GetMajorCode(), Minor: c.GetMinorCode(),
		Grid: c.GetGridCode(), ComponentID: c.GetComponentId(), At: at.In(o.loc),
	})
}

// ResolveOwner implements api.Resolver.
func (o owners) ResolveOwner(_ context.Context, r *pb.ResolveOwnerRequest) (*pb.Ownership, error) {
	if r.GetKind() == pb.Kind_KIND_UNSPECIFIED {
		return nil, fieldErr("kind", "required: COMPONENT or EVENT")
	}
	if len(r.GetGridCode()) != 15 {
		return nil, fieldErr("grid_code", "required: 15 digits")
	}
	at := time.Now()
	if r.GetAt() != nil {
		at = r.GetAt().AsTime()
	}
	return o.ownerAt(&pb.Case{Kind: r.Kind, MajorCode: r.MajorCode, MinorCode: r.MinorCode, GridCode: r.GridCode, ComponentId: r.ComponentId}, at), nil
}

func fieldErr(field, reason string) error {
	return &workflow.FieldError{Field: field, Reason: reason, Err: api.ErrInvalid}
}

// Stamp writes the catalogue's owner into the commands that decide one: a
// report (the owner when it is filed: the report may be filed at once), a
// filing, and an import. Reconciliation moves carry their owner already.
func (o owners) Stamp(now time.Time, cmd *pb.Command, read func(string) (*pb.Case, error)) {
	switch b := cmd.Body.(type) {
	case *pb.Command_Report:
		if c := b.Report.GetCase(); c != nil {
			b.Report.Ownership = o.ownerAt(c, now)
		}
	case *pb.Command_Act:
		if b.Act.Action != pb.Action_ACTION_FILE {
			return
		}
		if c, err := read(b.Act.CaseId); err == nil && c != nil && !c.GetOwnership().GetDecided() {
			b.Act.Ownership = o.OwnerOf(c)
		}
	case *pb.Command_ImportCases:
		for _, ic := range b.ImportCases.GetCases() {
			if c := ic.GetCase(); c != nil {
				c.Ownership = o.OwnerOf(c)
			}
		}
	}
}

// startReconciler builds the node's reconciler and registers its follow
// loop as a leader job.
func startReconciler(cfg config.Config, n *node.Node, topo *topology.Topology, own *owners, logger *slog.Logger) *reconcile.Reconciler {
	rc := reconcile.New(reconcile.Options{
		Self: cfg.Federation.Node, Topology: topo, Owners: *own, Local: n,
		BatchSize: cfg.Reconcile.BatchSize, FollowInterval: cfg.Reconcile.FollowInterval,
		Logger: logger,
	})
	n.AddLeaderJob("reconcile", rc.Lead)
	return rc
}
