package main

import (
	"fmt"

	"github.com/cityhub/cityhub/cmd/internal/casegen"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// generator makes the reports of one load client. It is not safe for
// concurrent use: each client owns one.
//
// The class mix, sources, grids, locations and component ids come from
// casegen (the weighted DOMAIN.md section 4 mix shared with cityhubdemo);
// on top of that, hotline and app reports carry the caller, as intake does.
type generator struct {
	gen *casegen.Generator
	seq uint64
	// anonymous leaves actor and role out of the reports: the node takes
	// them from the credentials.
	anonymous bool
}

// newGenerator returns the generator of client number client in run runID.
// Request ids are load-<runID>-<client>-<n>, unique across clients, and
// across runs as long as runIDs differ. jurisdiction is the 6, 9 or 12 digit
// grid prefix of the tier under test.
// With authenticated set, the reports name no actor or role (the node takes
// them from the credentials).
func newGenerator(runID string, client int, jurisdiction string, seed uint64, authenticated bool) *generator {
	prefix := fmt.Sprintf("load-%s-%d", runID, client)
	return &generator{gen: casegen.New(seed+uint64(client)*0x9e3779b97f4a7c15, jurisdiction, prefix), anonymous: authenticated}
}

// next returns a fresh report.
func (g *generator) next() *pb.ReportCaseRequest {
	g.seq++
	r := g.gen.Report()
	switch r.Source {
	case pb.Source_SOURCE_HOTLINE_12345, pb.Source_SOURCE_HOTLINE_12319:
		r.Reporter = &pb.Reporter{Name: "市民", Phone: fmt.Sprintf("139%08d", g.seq%100000000), Id: fmt.Sprintf("call-%d", g.seq)}
	case pb.Source_SOURCE_APP:
		r.Reporter = &pb.Reporter{Id: fmt.Sprintf("app-%06d", g.seq%1000000)}
	}
	if g.anonymous {
		r.Actor, r.Role = "", pb.Role_ROLE_UNSPECIFIED
	}
	return r
}
