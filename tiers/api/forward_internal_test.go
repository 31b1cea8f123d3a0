package api

import (
	"errors"
	"testing"
	"time"

	"google.golang.org/protobuf/reflect/protoreflect"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/catalogue"
	"github.com/cityhub/cityhub/tiers/fsm"
	"github.com/cityhub/cityhub/tiers/legacy"
)

// commandOf is a command with an empty body of type k.
func commandOf(t *testing.T, k fsm.Kind) *pb.Command {
	t.Helper()
	cmd := &pb.Command{RequestId: "fwd-1"}
	m := cmd.ProtoReflect()
	fd := m.Descriptor().Oneofs().ByName("body").Fields().ByNumber(protoreflect.FieldNumber(k))
	if fd == nil {
		t.Fatalf("no body %d", k)
	}
	m.Set(fd, protoreflect.ValueOfMessage(m.NewField(fd).Message()))
	return cmd
}

// The forward check follows the state machine's registry: every type a
// client may not cause is refused as not forwardable, whatever its body;
// every type a client may cause has a check of its own here (an empty
// body fails it as invalid, never as "no check").
func TestForwardCheckFollowsTheRegistry(t *testing.T) {
	cat := catalogue.Default()
	for _, ct := range fsm.CommandTypes() {
		err := validateCommand(cat, "110105", commandOf(t, ct.Kind), time.Now())
		switch {
		case err == nil:
			t.Errorf("%s: an empty body passed the forward check", ct.Name)
		case !ct.Client && !errors.Is(err, errNotForwardable):
			t.Errorf("%s (leader's own): %v, want not forwardable", ct.Name, err)
		case ct.Client && errors.Is(err, errNotForwardable):
			t.Errorf("%s (a client's): refused as not forwardable: %v", ct.Name, err)
		}
	}
	// The evidence purge is the leader's retention, though a client
	// uploads and attaches.
	purge := &pb.Command{Body: &pb.Command_AttachEvidence{AttachEvidence: &pb.AttachEvidence{Op: &pb.AttachEvidence_Purge{Purge: &pb.EvidencePurge{}}}}}
	if err := validateCommand(cat, "110105", purge, time.Now()); !errors.Is(err, errNotForwardable) {
		t.Errorf("a forwarded purge: %v, want not forwardable", err)
	}
}

// A forwarded import is what the import's validator builds from good rows:
// the leader's and the state machine's fields empty, the class known, the
// grid in the jurisdiction, the request recorded in the history.
func TestForwardedImportCheck(t *testing.T) {
	cat := catalogue.Default()
	build := func() *pb.Command {
		v := legacy.Validator{Catalogue: cat, GridPrefix: "320505", Location: time.FixedZone("CST", 8*3600), Now: time.Now(), RequestID: "imp-fwd"}
		cases, _, rejected := v.Validate([]*pb.LegacyRow{
			{Line: 2, LegacyId: "HQ-2", ReportedAt: "2021-03-05T10:00:00+08:00", Source: "12345热线", Kind: "事件", Major: "01", Minor: "02",
				GridCode: "320505002001003", Description: "绿化带暴露垃圾", Status: "待派遣"},
		})
		if len(rejected) > 0 || len(cases) != 1 {
			t.Fatalf("rows rejected: %v", rejected)
		}
		return &pb.Command{RequestId: "imp-fwd", Body: &pb.Command_ImportCases{ImportCases: &pb.ImportCases{Cases: cases}}}
	}
	if err := validateCommand(cat, "320505", build(), time.Now()); err != nil {
		t.Fatalf("a valid import: %v", err)
	}
	for name, forge := range map[string]func(c *pb.Command){
		"id prefix set":        func(c *pb.Command) { c.GetImportCases().IdPrefix = "320505" },
		"case id set":          func(c *pb.Command) { c.GetImportCases().Cases[0].Case.Id = "320505-20210305-000001" },
		"owner set":            func(c *pb.Command) { c.GetImportCases().Cases[0].Case.Ownership = &pb.Ownership{Unit: "x"} },
		"holder set":           func(c *pb.Command) { c.GetImportCases().Cases[0].Case.Holder = "city" },
		"other jurisdiction":   func(c *pb.Command) { c.GetImportCases().Cases[0].Case.GridCode = "320506002001003" },
		"unknown class":        func(c *pb.Command) { c.GetImportCases().Cases[0].Case.MinorCode = "99" },
		"another request":      func(c *pb.Command) { c.RequestId = "imp-other" },
		"no legacy id":         func(c *pb.Command) { c.GetImportCases().Cases[0].Case.LegacyId = "" },
		"no cases":             func(c *pb.Command) { c.GetImportCases().Cases = nil },
		"stamped by a leader":  func(c *pb.Command) { c.StampedUnixMs = 1 },
		"a case at version 2":  func(c *pb.Command) { c.GetImportCases().Cases[0].Case.Version = 2 },
		"a history of its own": func(c *pb.Command) { c.GetImportCases().Cases[0].Case.History = nil },
	} {
		cmd := build()
		forge(cmd)
		if err := validateCommand(cat, "320505", cmd, time.Now()); err == nil || errors.Is(err, errNotForwardable) {
			t.Errorf("%s: %v, want invalid", name, err)
		}
	}
}
