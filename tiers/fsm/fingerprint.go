package fsm

import (
	"crypto/sha256"

	"google.golang.org/protobuf/proto"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// fingerprint hashes what the client asked for, leaving out what the leader
// stamped (time, id date, computed deadline), so a retry through another
// leader on another day still matches. Each body type's row says how
// (registry.go); nil for a command without a known body.
func fingerprint(cmd *pb.Command) []byte {
	t := typeOf(cmd)
	if t == nil {
		return nil
	}
	return t.fingerprintOf(cmd)
}

// fingerprintOf is the fingerprint of cmd, a command of type t: the one
// the leader stamped on a report (StampFingerprint), the type's own, or
// the hash of the whole body.
func (t *commandType) fingerprintOf(cmd *pb.Command) []byte {
	if t.kind == kindReport && len(cmd.Fingerprint) == sha256.Size {
		return cmd.Fingerprint
	}
	if t.fingerprint != nil {
		return t.fingerprint(cmd)
	}
	return hashMessage(t.bodyMessage(cmd))
}

// StampFingerprint stamps the fingerprint of a report, and of each report
// of a batch, into cmd (Command.fingerprint, ReportBatchItem.fingerprint):
// the leader computes it once, where every replica computed it for the
// request record. It is the function Apply runs on a command without one,
// so a retry stamped by another leader, or by one of an earlier release,
// and a replica of an earlier release, which ignores the field, all see
// the same fingerprint. The leader stamps it after every other stamp.
func StampFingerprint(cmd *pb.Command) {
	switch b := cmd.Body.(type) {
	case *pb.Command_Report:
		cmd.Fingerprint = reportFingerprint(cmd)
	case *pb.Command_ReportBatch:
		for _, it := range b.ReportBatch.GetItems() {
			it.Fingerprint = nil // Apply refuses an item without a report
			if it.GetReport() != nil {
				it.Fingerprint = reportFingerprint(BatchItem(cmd, it))
			}
		}
	}
}

// reportFingerprint leaves out the id prefix and date, the stage deadline,
// the owners and the recurrence the leader found.
func reportFingerprint(cmd *pb.Command) []byte {
	// Blank the stamped fields in place and put them back after, rather
	// than clone the report with its case: the command is the caller's
	// alone (decoded for this entry, or the leader's own copy).
	r := cmd.GetReport()
	date, prefix, stage, own := r.IdDate, r.IdPrefix, r.StageDeadlineUnixMs, r.Ownership
	r.IdDate, r.IdPrefix, r.StageDeadlineUnixMs, r.Ownership = "", "", 0, nil
	var recurrence string
	if r.Case != nil {
		recurrence, r.Case.RecurrenceOf = r.Case.RecurrenceOf, "" // found by the leader, not asked for
	}
	raw, _ := proto.MarshalOptions{Deterministic: true}.Marshal(r)
	r.IdDate, r.IdPrefix, r.StageDeadlineUnixMs, r.Ownership = date, prefix, stage, own
	if r.Case != nil {
		r.Case.RecurrenceOf = recurrence
	}
	sum := sha256.Sum256(raw)
	return sum[:]
}

// actFingerprint leaves out the deadlines the leader derived and the
// catalogue's owners.
func actFingerprint(cmd *pb.Command) []byte {
	a := proto.Clone(cmd.GetAct()).(*pb.CaseAction)
	if a.TimeLimitMinutes != 0 {
		a.DeadlineUnixMs = 0
	}
	// Deadlines the leader derived are not the client's request.
	a.StageDeadlineUnixMs, a.BaseDeadlineUnixMs, a.HasBaseDeadline = 0, 0, false
	a.Ownership = nil // the catalogue's answer, stamped by the leader
	switch a.Action {
	case pb.Action_ACTION_APPROVE_EXTENSION, pb.Action_ACTION_RESUME:
		a.DeadlineUnixMs = 0
	}
	return hashMessage(a)
}

// importFingerprint leaves out the owners: the leader's answer, not the
// client's request.
func importFingerprint(cmd *pb.Command) []byte {
	ic := proto.Clone(cmd.GetImportCases()).(*pb.ImportCases)
	for _, c := range ic.Cases {
		if c.GetCase() != nil { // a malformed entry must not panic Apply
			c.Case.Ownership = nil
		}
	}
	return hashMessage(ic)
}

// evidenceFingerprint leaves out the leader's stamps on an attach's
// reference.
func evidenceFingerprint(cmd *pb.Command) []byte {
	ae := proto.Clone(cmd.GetAttachEvidence()).(*pb.AttachEvidence)
	if ref := ae.GetAttach().GetRef(); ref != nil {
		ref.UploadedAt, ref.Node, ref.RequestId = nil, "", ""
	}
	return hashMessage(ae)
}
