package fsm

import (
	"fmt"

	"google.golang.org/protobuf/reflect/protoreflect"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// LogVersion is the newest log format this binary applies. A release that
// adds a command type raises it and gives the type that version in
// commandVersions; replicas register their LogVersion (RegisterNode), and
// the leader proposes a type only when every member of the group applies
// it (tiers/node's version gate), so a rolling upgrade never writes an
// entry that an older replica would refuse while newer ones apply it.
//
// Version 2: evidence (AttachEvidence); a delivery's incarnation, floor and
// advance and a repair's caught_up (federation/DESIGN.md, "After a
// restore"), which a version 1 replica would apply without them
// (fieldVersion).
//
// Version 3: ReportBatch (many reports in one entry).
const LogVersion uint32 = 3

// commandVersions gives each Command body (by its type number, the oneof
// field number) the log version that introduced it. Every body has an
// entry (TestEveryCommandHasAVersion); the numbers are append-only.
var commandVersions = map[protoreflect.FieldNumber]uint32{
	10: 1, // ReportCase
	11: 1, // CaseAction
	12: 1, // RegisterNode
	13: 1, // SetTopology
	14: 1, // DeliverEntries
	15: 1, // TrimOutbox
	16: 1, // MarkOverdue
	17: 1, // ImportCases
	18: 1, // ReconcileCases
	19: 1, // ReconcileRunMark
	20: 1, // RepairCases
	21: 1, // MarkOverdueBatch
	22: 1, // AuthChange
	23: 2, // AttachEvidence (photos and files: chunks through the log)
	24: 3, // ReportBatch (reports in volume: one entry for many)
}

// RequiredVersion is the log version a replica needs to apply cmd: that of
// its body's type (1 for a command without a body).
func RequiredVersion(cmd *pb.Command) uint32 {
	fd := cmd.ProtoReflect().WhichOneof(bodyOneof)
	if fd == nil {
		return 1
	}
	if v, ok := commandVersions[fd.Number()]; ok {
		return max(v, fieldVersion(cmd))
	}
	// A body this table does not know cannot be applied here.
	return LogVersion + 1
}

// fieldVersion is the log version needed by fields added to a body type
// after it was introduced, when they are set: an older replica would apply
// the entry as if they were not.
func fieldVersion(cmd *pb.Command) uint32 {
	switch b := cmd.Body.(type) {
	case *pb.Command_Deliver:
		if b.Deliver.GetIncarnation() != 0 || b.Deliver.GetAdvance() {
			return 2
		}
	case *pb.Command_Repair:
		if b.Repair.GetCaughtUp() {
			return 2
		}
	}
	return 1
}

// EffectiveVersion reads a registered log version: 0, from a release that
// did not send one, is version 1.
func EffectiveVersion(v uint32) uint32 { return max(v, 1) }

var bodyOneof = (&pb.Command{}).ProtoReflect().Descriptor().Oneofs().ByName("body")

// fromNewerRelease reports whether a command that decoded without a body
// carries one this binary does not know: it was written by a newer
// release, and applying it as "no body" would diverge from the replicas
// that know it.
func fromNewerRelease(cmd *pb.Command) bool {
	return cmd.Body == nil && len(cmd.ProtoReflect().GetUnknown()) > 0
}

// ErrNewerLog is the panic message's error when an entry needs a newer
// binary.
var ErrNewerLog = fmt.Errorf("log entry written by a newer cityhub release (log version above %d)", LogVersion)
