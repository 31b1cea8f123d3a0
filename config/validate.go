package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strconv"
	"time"
)

// FieldError is one problem with one configuration key. Key is the dotted
// path of the key, e.g. "raft.peers[1].raft_addr".
type FieldError struct {
	Key string
	Msg string
}

func (e *FieldError) Error() string { return e.Key + ": " + e.Msg }

var idPattern = regexp.MustCompile(`^[a-z0-9-]{1,32}$`)

// Raft's own lower bounds (hashicorp/raft ValidateConfig).
const (
	raftMinTimeout       = 5 * time.Millisecond
	raftMinCommitTimeout = time.Millisecond
	raftMaxAppendEntries = 1024
)

type validator struct{ errs []error }

func (v *validator) add(key, format string, args ...any) {
	v.errs = append(v.errs, &FieldError{Key: key, Msg: fmt.Sprintf(format, args...)})
}

// Validate checks every key and returns nil or an errors.Join of
// *FieldError, one per problem, each naming the dotted key.
func (c *Config) Validate() error {
	v := &validator{}
	c.validateNode(v)
	c.validateAddrs(v)
	c.validateCluster(v)
	c.validateRaftTuning(v)
	c.validateMisc(v)
	c.validateFederation(v)
	c.validateInternal(v)
	c.validatePolicies(v)
	c.validateOwnership(v)
	c.validateGeo(v)
	c.validateReconcile(v)
	c.validateAuth(v)
	c.validateLimits(v)
	c.validateFeed(v)
	c.validateEvidence(v)
	return errors.Join(v.errs...)
}

func (v *validator) id(key, id string) bool {
	switch {
	case id == "":
		v.add(key, "required")
	case !idPattern.MatchString(id):
		v.add(key, "%q must be 1-32 characters of [a-z0-9-]", id)
	default:
		return true
	}
	return false
}

// hostPort reports whether addr is host:port with port 1..65535 and returns
// the port. An empty host is accepted (bind on all interfaces).
func (v *validator) hostPort(key, addr string, required bool) (int, bool) {
	if addr == "" {
		if required {
			v.add(key, "required")
		}
		return 0, false
	}
	_, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		v.add(key, "%q is not host:port", addr)
		return 0, false
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 1 || port > 65535 {
		v.add(key, "%q: port must be a number in 1..65535", addr)
		return 0, false
	}
	return port, true
}

func (c *Config) validateNode(v *validator) {
	n := &c.Node
	v.id("node.id", n.ID)

	want := JurisdictionDigits(n.Tier)
	if want == 0 {
		v.add("node.tier", "%q is not one of city, district, street, community", n.Tier)
	}
	switch {
	case n.Jurisdiction == "":
		v.add("node.jurisdiction", "required")
	case !allDigits(n.Jurisdiction):
		v.add("node.jurisdiction", "%q must contain only digits", n.Jurisdiction)
	case want != 0 && len(n.Jurisdiction) != want:
		v.add("node.jurisdiction", "%q has %d digits; tier %q needs %d",
			n.Jurisdiction, len(n.Jurisdiction), n.Tier, want)
	}

	if n.TimeZone == "" {
		v.add("node.time_zone", "required")
	} else if _, err := time.LoadLocation(n.TimeZone); err != nil {
		v.add("node.time_zone", "%q is not a known IANA time zone", n.TimeZone)
	}
	if n.GCPercent != 0 && (n.GCPercent < 50 || n.GCPercent > 1000) {
		v.add("node.gc_percent", "%d: 0 (Go's setting) or 50..1000", n.GCPercent)
	}
}

func allDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}

func (c *Config) validateAddrs(v *validator) {
	// This node's listeners must use distinct ports.
	used := map[int]string{}
	for _, l := range []struct{ key, addr string }{
		{"raft.addr", c.Raft.Addr},
		{"grpc.addr", c.GRPC.Addr},
		{"http.addr", c.HTTP.Addr},
		{"internal.addr", c.Internal.Addr},
	} {
		port, ok := v.hostPort(l.key, l.addr, true)
		if !ok {
			continue
		}
		if other, dup := used[port]; dup {
			v.add(l.key, "port %d is already used by %s", port, other)
			continue
		}
		used[port] = l.key
	}

	// The raft address is this server's identity in the membership, so it
	// has to be something other nodes can dial.
	advKey, adv := "raft.advertise", c.Raft.Advertise
	if adv == "" {
		advKey, adv = "raft.addr", c.Raft.Addr
	} else if _, ok := v.hostPort(advKey, adv, false); !ok {
		return
	}
	if host, _, err := net.SplitHostPort(adv); err == nil && !advertisable(host) {
		v.add(advKey, "%q is not advertisable (unspecified host); set raft.advertise", adv)
	}
}

func advertisable(host string) bool {
	if host == "" {
		return false
	}
	if ip, err := netip.ParseAddr(host); err == nil && ip.IsUnspecified() {
		return false
	}
	return true
}

func (c *Config) validateCluster(v *validator) {
	r := &c.Raft
	if r.Bootstrap && len(r.Join) > 0 {
		v.add("raft.join", "cannot be combined with raft.bootstrap (bootstrap a new group or join an existing one)")
	}
	for i, a := range r.Join {
		v.hostPort(fmt.Sprintf("raft.join[%d]", i), a, true)
	}
	if len(r.Join) > 0 && !c.Auth.Disabled && !slices.ContainsFunc(r.Peers, func(p Peer) bool { return p.ID != c.Node.ID && p.InternalAddr != "" }) {
		v.add("raft.join", "with authentication on, a new replica has no login of its own and joins through the members' internal listeners, "+
			"its group certificate (internal.tls) admitting it: list the members in raft.peers with their internal_addr")
	}

	ids := map[string]string{}
	addrs := map[string]string{}
	self := -1
	for i, p := range r.Peers {
		pre := fmt.Sprintf("raft.peers[%d]", i)
		if v.id(pre+".id", p.ID) {
			if other, dup := ids[p.ID]; dup {
				v.add(pre+".id", "%q duplicates %s", p.ID, other)
			} else {
				ids[p.ID] = pre + ".id"
			}
		}
		if p.ID == c.Node.ID && self < 0 {
			self = i
		}
		for _, a := range []struct {
			key, addr string
			required  bool
		}{
			{pre + ".raft_addr", p.RaftAddr, true},
			{pre + ".grpc_addr", p.GRPCAddr, true},
			{pre + ".http_addr", p.HTTPAddr, false},
		} {
			if _, ok := v.hostPort(a.key, a.addr, a.required); !ok {
				continue
			}
			if other, dup := addrs[a.addr]; dup {
				v.add(a.key, "%q duplicates %s", a.addr, other)
				continue
			}
			addrs[a.addr] = a.key
		}
	}

	if len(r.Peers) == 0 {
		return
	}
	if self < 0 {
		if r.Bootstrap {
			v.add("raft.peers", "does not include this node (node.id %q); a bootstrapping node must be one of the peers", c.Node.ID)
		}
		return
	}
	if p := r.Peers[self]; p.RaftAddr != "" && p.RaftAddr != c.RaftAdvertise() {
		v.add(fmt.Sprintf("raft.peers[%d].raft_addr", self),
			"%q does not match this node's raft address %q (raft.advertise or raft.addr)", p.RaftAddr, c.RaftAdvertise())
	}
}

func (c *Config) validateRaftTuning(v *validator) {
	r := &c.Raft
	minDur := func(key string, d, lo time.Duration) bool {
		switch {
		case d <= 0:
			v.add(key, "%s must be positive", d)
		case d < lo:
			v.add(key, "%s is below raft's minimum of %s", d, lo)
		default:
			return true
		}
		return false
	}
	hbOK := minDur("raft.heartbeat_timeout", r.HeartbeatTimeout, raftMinTimeout)
	if minDur("raft.election_timeout", r.ElectionTimeout, raftMinTimeout) && hbOK &&
		r.ElectionTimeout < r.HeartbeatTimeout {
		v.add("raft.election_timeout", "%s must be >= raft.heartbeat_timeout (%s)", r.ElectionTimeout, r.HeartbeatTimeout)
	}
	if minDur("raft.leader_lease_timeout", r.LeaderLeaseTimeout, raftMinTimeout) && hbOK &&
		r.LeaderLeaseTimeout > r.HeartbeatTimeout {
		v.add("raft.leader_lease_timeout", "%s must be <= raft.heartbeat_timeout (%s)", r.LeaderLeaseTimeout, r.HeartbeatTimeout)
	}
	minDur("raft.commit_timeout", r.CommitTimeout, raftMinCommitTimeout)
	minDur("raft.snapshot_interval", r.SnapshotInterval, raftMinTimeout)
	if r.ApplyTimeout <= 0 {
		v.add("raft.apply_timeout", "%s must be positive", r.ApplyTimeout)
	}
	// The state machine takes at most 1,000 reports an entry
	// (fsm.MaxBatchItems).
	if r.JoinReports < 0 || r.JoinReports > 1000 {
		v.add("raft.join_reports", "%d must be in 0..1000", r.JoinReports)
	}
	if r.LogEngine != "wal" && r.LogEngine != "badger" {
		v.add("raft.log_engine", "%q must be wal or badger", r.LogEngine)
	}
	if r.WALSegmentSize < 64<<10 || r.WALSegmentSize > 1<<30 {
		v.add("raft.wal_segment_size", "%d must be in 65536..1073741824 (bytes)", r.WALSegmentSize)
	}
	if r.MaxAppendEntries < 1 || r.MaxAppendEntries > raftMaxAppendEntries {
		v.add("raft.max_append_entries", "%d must be in 1..%d", r.MaxAppendEntries, raftMaxAppendEntries)
	}
}

func (c *Config) validateMisc(v *validator) {
	if _, ok := slogLevels[c.Log.Level]; !ok {
		v.add("log.level", "%q is not one of debug, info, warn, error", c.Log.Level)
	}
	if c.Log.Format != LogFormatText && c.Log.Format != LogFormatJSON {
		v.add("log.format", "%q is not one of text, json", c.Log.Format)
	}
	if p := c.Catalogue.Path; p != "" {
		if fi, err := os.Stat(p); err != nil {
			v.add("catalogue.path", "%v", err)
		} else if fi.IsDir() {
			v.add("catalogue.path", "%q is a directory, not a catalogue file", p)
		}
	}
}
