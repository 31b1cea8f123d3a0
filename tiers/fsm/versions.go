package fsm

import (
	"fmt"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// LogVersion is the newest log format this binary applies. A release that
// adds a command type raises it and gives the type's registry row
// (registry.go) that version; replicas register their LogVersion
// (RegisterNode), and the leader proposes a type only when every member of
// the group applies it (tiers/node's version gate), so a rolling upgrade
// never writes an entry that an older replica would refuse while newer
// ones apply it.
//
// Version 2: evidence (AttachEvidence); a delivery's incarnation, floor and
// advance and a repair's caught_up (federation/DESIGN.md, "After a
// restore"), which a version 1 replica would apply without them (the
// rows' fieldVersion).
//
// Version 3: ReportBatch (many reports in one entry).
const LogVersion uint32 = 3

// RequiredVersion is the log version a replica needs to apply cmd: that of
// its body's type, or of the fields added to it since that it sets (1 for
// a command without a body).
func RequiredVersion(cmd *pb.Command) uint32 {
	t := typeOf(cmd)
	if t == nil {
		if cmd.GetBody() == nil {
			return 1
		}
		// A body the registry does not know cannot be applied here.
		return LogVersion + 1
	}
	if t.fieldVersion != nil {
		return max(t.since, t.fieldVersion(cmd))
	}
	return t.since
}

// EffectiveVersion reads a registered log version: 0, from a release that
// did not send one, is version 1.
func EffectiveVersion(v uint32) uint32 { return max(v, 1) }

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
