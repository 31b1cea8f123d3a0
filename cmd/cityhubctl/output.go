package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// displayLoc is the zone times are shown in: the operator's (TZ, else the
// system's; TZ=Asia/Shanghai shows the city's where the machine runs on
// UTC). Case ids are dated in the node's zone (node.time_zone).
var displayLoc = time.Local

// Time layouts, every one with its zone: full RFC 3339 with the offset in
// a case's details and in CSV (it can be pasted into --deadline or
// --due-before), the date, the time and the zone's name in table rows.
const (
	detailTime = time.RFC3339
	rowTime    = "2006-01-02 15:04:05"
	// zoneTime is rowTime with the zone's abbreviation (CST, UTC).
	zoneTime = rowTime + " MST"
)

var jsonOpts = protojson.MarshalOptions{UseProtoNames: true, Multiline: true, Indent: "  "}

// writeJSON prints m as protojson with the proto field names. protojson
// deliberately varies its whitespace from run to run; json.Indent makes it
// stable so output can be diffed.
func writeJSON(w io.Writer, m proto.Message) error {
	b, err := jsonOpts.Marshal(m)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, b, "", "  "); err != nil {
		return err
	}
	buf.WriteByte('\n')
	_, err = buf.WriteTo(w)
	return err
}

// writeStatusError prints a failed call: its code and message, and the
// request fields a BadRequest detail names.
func writeStatusError(w io.Writer, st *status.Status) {
	fmt.Fprintf(w, "error: %s: %s\n", st.Code(), st.Message())
	for _, d := range st.Details() {
		br, ok := d.(*errdetails.BadRequest)
		if !ok {
			continue
		}
		for _, v := range br.GetFieldViolations() {
			if desc := v.GetDescription(); desc != "" && !strings.Contains(st.Message(), desc) {
				fmt.Fprintf(w, "field: %s: %s\n", v.GetField(), desc)
			} else {
				fmt.Fprintf(w, "field: %s\n", v.GetField())
			}
		}
	}
}

// row writes one tab-separated line.
func row(tw io.Writer, cells ...string) {
	fmt.Fprintln(tw, strings.Join(cells, "\t"))
}

// writeCase prints a case's details, optionally followed by its history.
func writeCase(w io.Writer, c *pb.Case, history bool, now time.Time) error {
	tw := newTable(w)
	row(tw, "id:", c.GetId())
	row(tw, "state:", caseState(c))
	row(tw, "class:", caseClass(c))
	row(tw, "grid:", c.GetGridCode())
	if c.GetComponentId() != "" {
		row(tw, "component:", c.GetComponentId())
	}
	row(tw, "source:", sources.name(c.GetSource()))
	row(tw, "urgency:", urgencies.name(c.GetUrgency()))
	row(tw, "description:", oneLine(c.GetDescription()))
	if l := c.GetLocation(); l != nil {
		row(tw, "location:", location(l))
	}
	if r := c.GetReporter(); r != nil {
		row(tw, "reporter:", join(" ", r.GetName(), r.GetPhone(), r.GetId()))
	}
	if len(c.GetMedia()) > 0 {
		row(tw, "media:", strings.Join(c.GetMedia(), ", "))
	}
	for i, e := range c.GetEvidence() {
		label := ""
		if i == 0 {
			label = "evidence:"
		}
		row(tw, label, fmt.Sprintf("%s %s/%s %s %d bytes by %s", e.GetSha256()[:min(12, len(e.GetSha256()))],
			evidenceStages.name(e.GetStage()), evidenceKinds.name(e.GetKind()), e.GetContentType(), e.GetSize(), orDash(e.GetUploadedBy())))
	}
	row(tw, "owner:", owner(c))
	if c.GetHolder() != "" {
		row(tw, "holder:", c.GetHolder())
	}
	if c.GetLegacyId() != "" {
		row(tw, "legacy id:", c.GetLegacyId())
	}
	if o := c.GetOwnership(); o != nil {
		ownershipRows(tw, o)
	}
	row(tw, "deadline:", deadline(c, now))
	if p := c.GetPending(); p != nil && p.GetAction() != pb.Action_ACTION_UNSPECIFIED {
		row(tw, "pending:", pending(p))
	}
	row(tw, "version:", strconv.FormatUint(c.GetVersion(), 10))
	row(tw, "rework:", strconv.Itoa(int(c.GetReworkCount())))
	if n := c.GetExtensionCount(); n > 0 {
		row(tw, "extensions:", strconv.Itoa(int(n)))
	}
	if n := c.GetSuperviseCount(); n > 0 {
		row(tw, "supervised:", strconv.Itoa(int(n)))
	}
	row(tw, "reported:", join(" ", fmtTime(c.GetReportedAt(), detailTime), at(c.GetReportedAtNode())))
	row(tw, "updated:", fmtTime(c.GetUpdatedAt(), detailTime))
	row(tw, "allowed actions:", allowed(c.GetAllowedActions()))
	if err := tw.Flush(); err != nil {
		return err
	}
	if !history {
		return nil
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "history:")
	return writeHistory(w, c.GetHistory())
}

// ownershipRows adds a case's ownership (责任主体, as the responsibility
// catalogue or the joint review decided it) to its details.
func ownershipRows(tw io.Writer, o *pb.Ownership) {
	resp := "disputed: no single owner"
	if o.GetUnit() != "" {
		resp = o.GetUnit()
		if o.GetTier() != pb.Tier_TIER_UNSPECIFIED {
			resp += " (" + tiers.name(o.GetTier()) + ")"
		}
		if o.GetNode() != "" {
			resp += " at node " + o.GetNode()
		}
	}
	row(tw, "ownership:", resp)
	rule := orDash(o.GetRule())
	if v := o.GetCatalogueVersion(); v != "" {
		rule += " (catalogue " + v + ")"
	}
	row(tw, "  rule:", rule)
	if e := oneLine(o.GetExplanation()); e != "" {
		row(tw, "  explanation:", e)
	}
	var status []string
	if o.GetDisputed() {
		status = append(status, "disputed: "+orDash(oneLine(o.GetDispute())))
	}
	if o.GetInReview() {
		status = append(status, "in the joint review queue (疑难案件会诊)")
	}
	if o.GetDecided() {
		status = append(status, "decided by joint review (会诊裁定)")
	}
	if len(status) > 0 {
		row(tw, "  status:", strings.Join(status, "; "))
	}
	if n := o.GetRejections(); n > 0 {
		row(tw, "  rejections:", strconv.Itoa(int(n)))
	}
	for i, r := range o.GetReasons() {
		label := ""
		if i == 0 {
			label = "  reasons:"
		}
		row(tw, label, oneLine(r))
	}
}

// writeHistory prints a case's history, one action per row.
func writeHistory(w io.Writer, hs []*pb.HistoryEntry) error {
	tw := newTable(w)
	// Free text (actor, note) goes last: it is the longest.
	row(tw, "TIME", "V", "ACTION", "ROLE", "FROM→TO", "UNIT", "ACTOR", "NOTE")
	for _, h := range hs {
		note := oneLine(h.GetNote())
		if as := h.GetAttachments(); len(as) > 0 {
			note = join(" ", note, "[attachments: "+strings.Join(as, ", ")+"]")
		}
		if ev := h.GetEvidence(); len(ev) > 0 {
			short := make([]string, len(ev))
			for i, sha := range ev {
				short[i] = sha[:min(12, len(sha))]
			}
			note = join(" ", note, "[evidence: "+strings.Join(short, ", ")+"]")
		}
		row(tw,
			fmtTime(h.GetAt(), zoneTime),
			strconv.FormatUint(h.GetVersion(), 10),
			actions.name(h.GetAction()),
			roles.name(h.GetRole()),
			transition(h.GetFromState(), h.GetToState()),
			orDash(h.GetUnit()),
			orDash(oneLine(h.GetActor())),
			orDash(note),
		)
	}
	return tw.Flush()
}

// writeCaseList prints one row per case and the next page token, if any.
func writeCaseList(w io.Writer, resp *pb.ListCasesResponse, now time.Time) error {
	tw := newTable(w)
	row(tw, "ID", "STATE", "SOURCE", "CLASS", "GRID", "OWNER", "HOLDER", "DEADLINE", "REWORK", "VERSION")
	for _, c := range resp.GetCases() {
		dl := "-"
		if c.GetDeadline() != nil {
			dl = fmtTime(c.GetDeadline(), zoneTime)
			if isOpen(c.GetState()) && c.GetDeadline().AsTime().Before(now) {
				dl += " (overdue)"
			}
		}
		row(tw, c.GetId(), caseState(c), sources.name(c.GetSource()), caseClass(c), c.GetGridCode(),
			owner(c), orDash(c.GetHolder()), dl, strconv.Itoa(int(c.GetReworkCount())), strconv.FormatUint(c.GetVersion(), 10))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if t := resp.GetNextPageToken(); t != "" {
		fmt.Fprintf(w, "next-page-token: %s\n", t)
	}
	return nil
}

// writeClusterStatus prints a node's Raft state and the group's servers.
func writeClusterStatus(w io.Writer, st *pb.ClusterStatus) error {
	tw := newTable(w)
	row(tw, "node:", st.GetNodeId())
	if st.GetTier() != "" {
		row(tw, "tier:", st.GetTier())
	}
	if st.GetJurisdiction() != "" {
		row(tw, "jurisdiction:", st.GetJurisdiction())
	}
	row(tw, "state:", st.GetState())
	leader := orDash(st.GetLeaderId())
	if a := st.GetLeaderRaftAddr(); a != "" {
		leader += " (" + a + ")"
	}
	row(tw, "leader:", leader)
	row(tw, "term:", strconv.FormatUint(st.GetTerm(), 10))
	row(tw, "commit index:", strconv.FormatUint(st.GetCommitIndex(), 10))
	row(tw, "applied index:", strconv.FormatUint(st.GetAppliedIndex(), 10))
	row(tw, "last log index:", strconv.FormatUint(st.GetLastLogIndex(), 10))
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = newTable(w)
	row(tw, "ID", "RAFT ADDR", "GRPC ADDR", "HTTP ADDR", "SUFFRAGE", "LEADER")
	for _, s := range st.GetServers() {
		l := ""
		if s.GetLeader() {
			l = "*"
		}
		row(tw, s.GetId(), orDash(s.GetRaftAddr()), orDash(s.GetGrpcAddr()), orDash(s.GetHttpAddr()), orDash(s.GetSuffrage()), l)
	}
	return tw.Flush()
}

// writeCatalogue prints the case classes.
func writeCatalogue(w io.Writer, cat *pb.Catalogue) error {
	if v := cat.GetVersion(); v != "" {
		fmt.Fprintf(w, "catalogue version: %s\n", v)
	}
	tw := newTable(w)
	// One name column, last: the longest.
	row(tw, "KIND", "MAJOR", "MINOR", "NAME")
	for _, c := range cat.GetClasses() {
		row(tw, kinds.name(c.GetKind()), c.GetMajorCode(), c.GetMinorCode(), join(" / ", c.GetMajorName(), c.GetName()))
	}
	return tw.Flush()
}

func caseState(c *pb.Case) string {
	s := states.name(c.GetState())
	if c.GetState() == pb.State_STATE_SUSPENDED && c.GetSuspendedFrom() != pb.State_STATE_UNSPECIFIED {
		s += " (from " + states.name(c.GetSuspendedFrom()) + ")"
	}
	return s
}

func caseClass(c *pb.Case) string {
	return kinds.name(c.GetKind()) + " " + c.GetMajorCode() + c.GetMinorCode()
}

func owner(c *pb.Case) string {
	if c.GetOwnerUnit() == "" {
		return "-"
	}
	if c.GetOwnerTier() == pb.Tier_TIER_UNSPECIFIED {
		return c.GetOwnerUnit()
	}
	return c.GetOwnerUnit() + " (" + tiers.name(c.GetOwnerTier()) + ")"
}

// deadline shows the handling deadline and, for an open case, how far away
// it is.
func deadline(c *pb.Case, now time.Time) string {
	d := c.GetDeadline()
	if d == nil {
		return "-"
	}
	s := fmtTime(d, detailTime)
	if !isOpen(c.GetState()) || c.GetState() == pb.State_STATE_SUSPENDED {
		return s
	}
	left := d.AsTime().Sub(now).Round(time.Minute)
	if left >= 0 {
		return s + " (in " + shortDuration(left) + ")"
	}
	return s + " (overdue by " + shortDuration(-left) + ")"
}

func pending(p *pb.Pending) string {
	s := actions.name(p.GetAction()) + " by " + orDash(p.GetActor())
	if m := p.GetExtensionMinutes(); m > 0 {
		s += " (+" + shortDuration(time.Duration(m)*time.Minute) + ")"
	}
	if r := oneLine(p.GetReason()); r != "" {
		s += ": " + r
	}
	if p.GetAt() != nil {
		s += " at " + fmtTime(p.GetAt(), detailTime)
	}
	return s
}

func allowed(as []pb.Action) string {
	if len(as) == 0 {
		return "none"
	}
	names := make([]string, len(as))
	for i, a := range as {
		names[i] = actions.name(a)
	}
	return strings.Join(names, ", ")
}

func transition(from, to pb.State) string {
	f := states.name(from)
	if from == pb.State_STATE_UNSPECIFIED {
		f = "—"
	}
	if from == to {
		return f + " (no change)"
	}
	return f + "→" + states.name(to)
}

func location(l *pb.Location) string {
	var parts []string
	if l.GetAddress() != "" {
		parts = append(parts, oneLine(l.GetAddress()))
	}
	if l.GetLat() != 0 || l.GetLng() != 0 {
		parts = append(parts, fmt.Sprintf("(%g, %g)", l.GetLat(), l.GetLng()))
	}
	return orDash(strings.Join(parts, " "))
}

func isOpen(s pb.State) bool {
	switch s {
	case pb.State_STATE_UNSPECIFIED, pb.State_STATE_NOT_FILED, pb.State_STATE_CLOSED, pb.State_STATE_VOIDED:
		return false
	}
	return true
}

func fmtTime(ts *timestamppb.Timestamp, layout string) string {
	if ts == nil {
		return "-"
	}
	return ts.AsTime().In(displayLoc).Format(layout)
}

// shortDuration renders whole minutes as 2d3h4m.
func shortDuration(d time.Duration) string {
	m := int64(d / time.Minute)
	if m == 0 {
		return "0m"
	}
	var b strings.Builder
	if days := m / (24 * 60); days > 0 {
		fmt.Fprintf(&b, "%dd", days)
	}
	if h := m / 60 % 24; h > 0 {
		fmt.Fprintf(&b, "%dh", h)
	}
	if mm := m % 60; mm > 0 {
		fmt.Fprintf(&b, "%dm", mm)
	}
	return b.String()
}

func at(node string) string {
	if node == "" {
		return ""
	}
	return "at node " + node
}

// oneLine keeps free text from breaking table rows.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// join joins the non-empty parts with sep.
func join(sep string, parts ...string) string {
	var keep []string
	for _, p := range parts {
		if p != "" {
			keep = append(keep, p)
		}
	}
	return strings.Join(keep, sep)
}
