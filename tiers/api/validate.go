package api

import (
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/catalogue"
	"github.com/cityhub/cityhub/tiers/fsm"
)

// Limits on request fields.
const (
	MaxDescription   = 4000 // characters
	MaxNote          = 4000
	MaxAddress       = 256
	MaxRefs          = 20  // media references or attachments per request
	MaxRef           = 512 // bytes per reference
	MaxName          = 64
	MaxRequestID     = 128
	MaxTimeLimitMins = 366 * 24 * 60
)

var (
	caseIDRe = regexp.MustCompile(`^[0-9]{1,32}-[0-9]{8}-[0-9]{6,}$`)
	unitRe   = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)
	nodeIDRe = regexp.MustCompile(`^[a-z0-9-]{1,32}$`)
)

func checkRequestID(id string) error {
	switch {
	case id == "":
		return invalid("request_id", "required: a client-chosen idempotency key, e.g. a UUID")
	case len(id) > MaxRequestID:
		return invalid("request_id", "at most %d bytes", MaxRequestID)
	case !requestIDChars(id):
		return invalid("request_id", "only letters, digits and . _ : / - are allowed")
	}
	return nil
}

// requestIDChars reports whether every byte of id is a letter, a digit or
// one of . _ : / - (a loop, where a regexp's match was a hundredth of a
// leader's CPU under creates: every write checks its request id).
func requestIDChars(id string) bool {
	for i := 0; i < len(id); i++ {
		switch c := id[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '.', c == '_', c == ':', c == '/', c == '-':
		default:
			return false
		}
	}
	return true
}

func checkCaseID(id string) error {
	if !caseIDRe.MatchString(id) {
		return invalid("case_id", "%q is not a case id (jurisdiction-YYYYMMDD-sequence, e.g. 320582-20261122-000001)", id)
	}
	return nil
}

func checkActor(actor string, role pb.Role) error {
	if actor == "" || utf8.RuneCountInString(actor) > MaxName {
		return invalid("actor", "required, at most %d characters", MaxName)
	}
	if _, ok := pb.Role_name[int32(role)]; !ok || role == pb.Role_ROLE_UNSPECIFIED {
		return invalid("role", "required: one of INSPECTOR, INTAKE_CLERK, CITIZEN, SYSTEM, SHIFT_LEADER, DISPATCHER, HANDLING_UNIT, SUPERVISOR")
	}
	return nil
}

func checkText(field, s string, max int) error {
	if !utf8.ValidString(s) {
		return invalid(field, "not valid UTF-8")
	}
	if n := utf8.RuneCountInString(s); n > max {
		return invalid(field, "%d characters, at most %d allowed", n, max)
	}
	return nil
}

func checkRefs(field string, refs []string) error {
	if len(refs) > MaxRefs {
		return invalid(field, "%d references, at most %d allowed", len(refs), MaxRefs)
	}
	for i, r := range refs {
		if r == "" || len(r) > MaxRef || !utf8.ValidString(r) {
			return invalid(field, "reference %d must be 1 to %d bytes of UTF-8", i, MaxRef)
		}
	}
	return nil
}

// reportToCase validates a report and builds the case the command carries:
// its location in WGS-84 (converted from the coordinate system it names),
// and its grid code, found from the location when the report gives none
// (locate nil: this node has no grid geometry).
func reportToCase(cat *catalogue.Catalogue, locate locateFunc, r *pb.ReportCaseRequest) (*pb.Case, error) {
	if err := checkRequestID(r.RequestId); err != nil {
		return nil, err
	}
	if err := checkActor(r.Actor, r.Role); err != nil {
		return nil, err
	}
	if _, ok := pb.Source_name[int32(r.Source)]; !ok || r.Source == pb.Source_SOURCE_UNSPECIFIED {
		return nil, invalid("source", "required: INSPECTOR, HOTLINE_12345, HOTLINE_12319, APP, CAMERA, LEADER or MEDIA")
	}
	if _, ok := pb.Kind_name[int32(r.Kind)]; !ok || r.Kind == pb.Kind_KIND_UNSPECIFIED {
		return nil, invalid("kind", "required: COMPONENT (部件) or EVENT (事件)")
	}
	loc, err := toWGS84(r.Location, "location.")
	if err != nil {
		return nil, err
	}
	if loc != nil {
		if err := checkText("location.address", loc.Address, MaxAddress); err != nil {
			return nil, err
		}
	}
	grid := r.GridCode
	if grid == "" {
		if grid, err = locateGrid(locate, loc); err != nil {
			return nil, err
		}
	}
	if err := catalogue.ValidateGridCode(grid); err != nil {
		reason := err.Error()
		if grid == "" {
			reason = "required: the 15-digit grid code, or location (lat, lng and crs) to find it from"
		}
		return nil, &catalogue.FieldError{Field: "grid_code", Reason: reason, Err: catalogue.ErrInvalidCode}
	}
	if err := cat.ValidateClass(r.Kind, r.MajorCode, r.MinorCode, r.ComponentId, grid); err != nil {
		return nil, err
	}
	if r.Description == "" {
		return nil, invalid("description", "required: what is wrong and where")
	}
	if err := checkText("description", r.Description, MaxDescription); err != nil {
		return nil, err
	}
	if err := checkText("note", r.Note, MaxNote); err != nil {
		return nil, err
	}
	if err := checkRefs("media", r.Media); err != nil {
		return nil, err
	}
	if rp := r.Reporter; rp != nil {
		for field, v := range map[string]string{"reporter.name": rp.Name, "reporter.phone": rp.Phone, "reporter.id": rp.Id} {
			if err := checkText(field, v, MaxName); err != nil {
				return nil, err
			}
		}
	}
	urgency := r.Urgency
	if _, ok := pb.Urgency_name[int32(urgency)]; !ok {
		return nil, invalid("urgency", "ORDINARY or URGENT")
	}
	if urgency == pb.Urgency_URGENCY_UNSPECIFIED {
		urgency = pb.Urgency_URGENCY_ORDINARY
	}
	return &pb.Case{
		Source:      r.Source,
		Kind:        r.Kind,
		MajorCode:   r.MajorCode,
		MinorCode:   r.MinorCode,
		GridCode:    grid,
		ComponentId: r.ComponentId,
		Location:    loc,
		Description: r.Description,
		Media:       r.Media,
		Reporter:    r.Reporter,
		Urgency:     urgency,
	}, nil
}

// actToCommand validates an action request and builds the command body.
func actToCommand(r *pb.ActRequest, nowMs int64) (*pb.CaseAction, error) {
	if err := checkCaseID(r.CaseId); err != nil {
		return nil, err
	}
	if err := checkRequestID(r.RequestId); err != nil {
		return nil, err
	}
	if _, ok := pb.Action_name[int32(r.Action)]; !ok || r.Action == pb.Action_ACTION_UNSPECIFIED || r.Action == pb.Action_ACTION_REPORT {
		return nil, invalid("action", "required: a workflow action such as DISPATCH or CLOSE (report with ReportCase)")
	}
	if err := checkActor(r.Actor, r.Role); err != nil {
		return nil, err
	}
	if err := checkText("note", r.Note, MaxNote); err != nil {
		return nil, err
	}
	if err := checkRefs("attachments", r.Attachments); err != nil {
		return nil, err
	}
	attachments, evidence, err := splitEvidence(r.Attachments, r.Evidence)
	if err != nil {
		return nil, err
	}
	a := &pb.CaseAction{
		CaseId:          r.CaseId,
		Action:          r.Action,
		Actor:           r.Actor,
		Role:            r.Role,
		Note:            r.Note,
		Attachments:     attachments,
		Evidence:        evidence,
		ExpectedVersion: r.ExpectedVersion,
	}
	switch r.Action {
	case pb.Action_ACTION_DISPATCH, pb.Action_ACTION_REASSIGN, pb.Action_ACTION_DECIDE_OWNER:
		if r.Action != pb.Action_ACTION_DISPATCH && strings.TrimSpace(r.Note) == "" {
			return nil, invalid("note", "required: the reason for %s", workflowVerb(r.Action))
		}
		if !unitRe.MatchString(r.Unit) {
			return nil, invalid("unit", "required: the id of the unit that must handle the case (letters, digits, . _ -)")
		}
		if _, ok := pb.Tier_name[int32(r.UnitTier)]; !ok {
			return nil, invalid("unit_tier", "CITY, DISTRICT, STREET or COMMUNITY")
		}
		a.Unit, a.UnitTier = r.Unit, r.UnitTier
		// Without a deadline or a time limit the leader takes the handling
		// limit of the case's class and urgency from the deadline policy.
		if err := setDeadline(a, r, nowMs, 0); err != nil {
			return nil, err
		}
	case pb.Action_ACTION_CHECK_FAIL:
		// Rework may come with a new deadline; without one the old stands.
		if err := setDeadline(a, r, nowMs, 0); err != nil {
			return nil, err
		}
	case pb.Action_ACTION_REQUEST_EXTENSION:
		if r.ExtensionMinutes <= 0 || r.ExtensionMinutes > MaxTimeLimitMins {
			return nil, invalid("extension_minutes", "required: between 1 and %d", MaxTimeLimitMins)
		}
		a.ExtensionMinutes = r.ExtensionMinutes
	case pb.Action_ACTION_REFER_REVIEW:
		if strings.TrimSpace(r.Note) == "" {
			return nil, invalid("note", "required: why the owner is disputed (the joint review reads it)")
		}
	case pb.Action_ACTION_TRANSFER_UP:
		// 上交 must say why the parent tier should take the case; refused
		// here so that a request without a reason never reaches the log.
		if strings.TrimSpace(r.Note) == "" {
			return nil, invalid("note", "required: the reason for handing the case up to the parent tier")
		}
	}
	return a, nil
}

// setDeadline copies a deadline or a time limit (which the leader turns into
// a deadline) into a; def is the time limit used when neither is given.
func setDeadline(a *pb.CaseAction, r *pb.ActRequest, nowMs, def int64) error {
	switch {
	case r.Deadline != nil && r.TimeLimitMinutes != 0:
		return invalid("deadline", "give a deadline or time_limit_minutes, not both")
	case r.Deadline != nil:
		if err := r.Deadline.CheckValid(); err != nil {
			return invalid("deadline", "%v", err)
		}
		ms := r.Deadline.AsTime().UnixMilli()
		if ms <= nowMs {
			return invalid("deadline", "must be in the future")
		}
		a.DeadlineUnixMs = ms
	case r.TimeLimitMinutes < 0 || r.TimeLimitMinutes > MaxTimeLimitMins:
		return invalid("time_limit_minutes", "between 1 and %d", MaxTimeLimitMins)
	case r.TimeLimitMinutes == 0:
		a.TimeLimitMinutes = def
	default:
		a.TimeLimitMinutes = r.TimeLimitMinutes
	}
	return nil
}

func workflowVerb(a pb.Action) string {
	switch a {
	case pb.Action_ACTION_REASSIGN:
		return "reassigning the case (改派)"
	case pb.Action_ACTION_DECIDE_OWNER:
		return "the joint review's decision (会诊裁定)"
	}
	return a.String()
}

// EvidencePrefix marks an attachment that names evidence uploaded to the
// case ("evidence:<sha256>"): it is moved to the action's evidence.
const EvidencePrefix = "evidence:"

// splitEvidence moves "evidence:<sha256>" attachments to the evidence list
// and checks every evidence reference (lower-case hex SHA-256, no repeats).
// Other attachments ("photo://…", from before evidence existed) stay.
func splitEvidence(attachments, evidence []string) (rest, shas []string, err error) {
	for _, a := range attachments {
		if sha, ok := strings.CutPrefix(a, EvidencePrefix); ok {
			evidence = append(evidence, sha)
			continue
		}
		rest = append(rest, a)
	}
	if len(evidence) > MaxRefs {
		return nil, nil, invalid("evidence", "%d references, at most %d allowed", len(evidence), MaxRefs)
	}
	for i, sha := range evidence {
		if !fsm.ValidSHA256(sha) {
			return nil, nil, invalid("evidence", "reference %d must be the SHA-256 of evidence uploaded to the case (64 lower-case hex digits)", i)
		}
		if slices.Contains(shas, sha) {
			continue
		}
		shas = append(shas, sha)
	}
	return rest, shas, nil
}
