package fsm

import pb "github.com/cityhub/cityhub/proto/cityhub/v1"

// Proto is the part of r a caller of a client's command needs (a
// forwarded command's answer, tiers/api's ForwardService). r.Err is not
// carried: a refusal travels as the call's error.
func (r *Result) Proto() *pb.CommandResult {
	if r == nil {
		return nil
	}
	return &pb.CommandResult{
		Case: r.Case, Replayed: r.Replayed,
		Imported: int32(r.Imported), Already: int32(r.Already), CaseIds: r.CaseIDs, Skipped: int32(r.Skipped),
	}
}

// ResultFromProto is the Result p carries (Proto's inverse).
func ResultFromProto(p *pb.CommandResult) *Result {
	return &Result{
		Case: p.GetCase(), Replayed: p.GetReplayed(),
		Imported: int(p.GetImported()), Already: int(p.GetAlready()), CaseIDs: p.GetCaseIds(), Skipped: int(p.GetSkipped()),
	}
}
