package config

import (
	"path/filepath"
	"time"

	// Embed the IANA time zone database so node.time_zone validates (and
	// the daemon can convert timestamps) on hosts without /usr/share/zoneinfo.
	_ "time/tzdata"
)

// EnvPrefix is the prefix of the environment variables Load consults. A key's
// variable is the prefix, an underscore and the key upper-cased with dots
// replaced by underscores: raft.addr -> CITYHUB_RAFT_ADDR.
const EnvPrefix = "CITYHUB"

// Administrative tiers a node can serve.
const (
	TierCity      = "city"
	TierDistrict  = "district"
	TierStreet    = "street"
	TierCommunity = "community"
)

// Log levels and formats accepted in log.level and log.format.
const (
	LogLevelDebug = "debug"
	LogLevelInfo  = "info"
	LogLevelWarn  = "warn"
	LogLevelError = "error"

	LogFormatText = "text"
	LogFormatJSON = "json"
)

// Config is the complete configuration of one cityhubd node. The mapstructure
// tags are the key names used in YAML files; nested keys are written with
// dots (raft.heartbeat_timeout) in error messages and with underscores in
// environment variables (CITYHUB_RAFT_HEARTBEAT_TIMEOUT).
type Config struct {
	Node       NodeConfig       `mapstructure:"node"`
	Raft       RaftConfig       `mapstructure:"raft"`
	GRPC       ListenConfig     `mapstructure:"grpc"`
	HTTP       ListenConfig     `mapstructure:"http"`
	Catalogue  CatalogueConfig  `mapstructure:"catalogue"`
	Log        LogConfig        `mapstructure:"log"`
	Debug      DebugConfig      `mapstructure:"debug"`
	Federation FederationConfig `mapstructure:"federation"`
	Internal   InternalConfig   `mapstructure:"internal"`
	Deadlines  DeadlinesConfig  `mapstructure:"deadlines"`
	Cases      CasesConfig      `mapstructure:"cases"`
	Evaluation EvaluationConfig `mapstructure:"evaluation"`
	Reconcile  ReconcileConfig  `mapstructure:"reconcile"`
	Ownership  OwnershipConfig  `mapstructure:"ownership"`
	Auth       AuthConfig       `mapstructure:"auth"`
	TLS        APITLSConfig     `mapstructure:"tls"`
	Limits     LimitsConfig     `mapstructure:"limits"`
	Geo        GeoConfig        `mapstructure:"geo"`
	Feed       FeedConfig       `mapstructure:"feed"`
	Evidence   EvidenceConfig   `mapstructure:"evidence"`
	Console    ConsoleConfig    `mapstructure:"console"`
}

// ConsoleConfig: the web console (tiers/console), served at / on the HTTP
// address beside the REST API.
type ConsoleConfig struct {
	// Enabled serves the console; off, / answers 404 as an API-only node.
	Enabled bool `mapstructure:"enabled"`
}

// EvaluationConfig adds the city's own scoring schemes to the presets.
type EvaluationConfig struct {
	// Schemes is the path of a YAML list of scoring schemes (see
	// tiers/evaluation.ParseSchemes); empty means the presets only.
	Schemes string `mapstructure:"schemes"`
}

// CasesConfig sets what counts as the same problem at the same place.
type CasesConfig struct {
	// DuplicateRadiusM is the distance in metres within which two located
	// reports of the same class are at the same place.
	DuplicateRadiusM float64 `mapstructure:"duplicate_radius_m"`
	// DuplicateWindow: an open case reported this recently nearby is
	// offered as a possible duplicate of a new report.
	DuplicateWindow time.Duration `mapstructure:"duplicate_window"`
	// RecurrenceWindow: a problem reported again this soon after its case
	// closed counts as recurrence (反弹) and is linked to that case.
	RecurrenceWindow time.Duration `mapstructure:"recurrence_window"`
}

// DeadlinesConfig selects the working calendar and time limits (see
// config/deadlines/default.yaml) and how often overdue cases are swept.
type DeadlinesConfig struct {
	// Policy is the path of a deadline policy file; empty means the one
	// embedded in the binary.
	Policy string `mapstructure:"policy"`
	// SweepInterval is how often the leader looks for cases past their
	// stage deadline.
	SweepInterval time.Duration `mapstructure:"sweep_interval"`
}

// FederationConfig connects the node to its parent and children (see
// federation/DESIGN.md). With no topology the node stands alone.
type FederationConfig struct {
	// Topology is the path of the federation tree (YAML, the format of
	// federation/topology.Load); empty means the node is not federated.
	Topology string `mapstructure:"topology"`
	// Node is this node's name in the topology. Its tier and jurisdiction
	// must equal node.tier and node.jurisdiction.
	Node string `mapstructure:"node"`
	// Addr is the listener for calls from the parent and children; the
	// topology lists it among the node's replicas.
	Addr string `mapstructure:"addr"`
	// Insecure turns mTLS off: plain text, callers identified by what they
	// claim. For local development on loopback only.
	Insecure bool      `mapstructure:"insecure"`
	TLS      TLSConfig `mapstructure:"tls"`
	// BatchSize and BatchBytes bound one delivery on a link.
	BatchSize  int `mapstructure:"batch_size"`
	BatchBytes int `mapstructure:"batch_bytes"`
	// RetryMin and RetryMax bound the backoff after a failed delivery.
	RetryMin time.Duration `mapstructure:"retry_min"`
	RetryMax time.Duration `mapstructure:"retry_max"`
	// ReconnectMax bounds gRPC's reconnect backoff to a neighbour that is
	// down (retry_min growing to this, or to retry_max if that is less): a
	// healed link resumes within about this long. A reconnect attempt is a
	// dial, far cheaper than a delivery, so it is shorter than retry_max.
	ReconnectMax time.Duration `mapstructure:"reconnect_max"`
	// AntiEntropyInterval and AntiEntropyBuckets: see config/federation.go.
	AntiEntropyInterval time.Duration `mapstructure:"antientropy_interval"`
	AntiEntropyBuckets  int           `mapstructure:"antientropy_buckets"`
}

// TLSConfig names the PEM files of a node's federation identity.
type TLSConfig struct {
	CA   string `mapstructure:"ca"`
	Cert string `mapstructure:"cert"`
	Key  string `mapstructure:"key"`
}

// Enabled reports whether the node is part of a federation.
func (f FederationConfig) Enabled() bool { return f.Topology != "" }

// NodeConfig identifies the node and the jurisdiction it serves.
type NodeConfig struct {
	// ID is the node's unique name within its raft group: 1 to 32 characters
	// from [a-z0-9-]. Required; it is also the raft server ID.
	ID string `mapstructure:"id"`
	// DataDir holds raft logs, snapshots and the state store. Empty means
	// "data/<id>" (relative to the working directory).
	DataDir string `mapstructure:"data_dir"`
	// Tier is one of city, district, street, community.
	Tier string `mapstructure:"tier"`
	// Jurisdiction is the administrative division code the node serves:
	// 6 digits for city and district, 9 for street, 12 for community.
	Jurisdiction string `mapstructure:"jurisdiction"`
	// TimeZone is an IANA zone name used for local dates (deadlines, reports).
	TimeZone string `mapstructure:"time_zone"`
	// Group is the name the replicas of this group prove with their
	// internal certificate (its CommonName; see InternalConfig). Empty
	// means federation.node in a federation, node.jurisdiction otherwise
	// (Config.Group); in a federation it must equal federation.node.
	Group string `mapstructure:"group"`
	// VerifyState reads the whole state store at every start and checks its
	// records against each other before the replica serves (tiers/store
	// Verify; about 17 CPU-seconds for a million cases). Turn it off only to
	// start a replica whose check is wrong, never as a habit: without it a
	// store that lost part of its files serves what is left.
	VerifyState bool `mapstructure:"verify_state"`
	// GCPercent is the Go garbage collector's target (GOGC) cityhubd
	// runs with: the heap may grow to (1 + GCPercent/100) times what is
	// live before a collection. The in-memory indexes make most of the
	// live heap (about 650 bytes a stored case), and every collection
	// marks them all: 200 halves that work against Go's 100 for half
	// again the peak memory (BENCHMARKS.md). 0 leaves Go's setting; the
	// GOGC environment variable, when set, wins. 0 or 50..1000.
	GCPercent int `mapstructure:"gc_percent"`
}

// RaftConfig configures the node's raft replica.
type RaftConfig struct {
	// Addr is the raft transport bind address (host:port).
	Addr string `mapstructure:"addr"`
	// Advertise is the raft address other members dial; empty means Addr.
	// It must not be an unspecified address such as 0.0.0.0.
	Advertise string `mapstructure:"advertise"`
	// Bootstrap bootstraps a new group made of Peers (or of this node alone
	// when Peers is empty) if the node has no raft state yet.
	Bootstrap bool `mapstructure:"bootstrap"`
	// Join lists gRPC addresses of existing members to ask for membership.
	// Mutually exclusive with Bootstrap.
	Join []string `mapstructure:"join"`
	// Peers is the static membership: every voter with its addresses.
	Peers []Peer `mapstructure:"peers"`

	HeartbeatTimeout   time.Duration `mapstructure:"heartbeat_timeout"`
	ElectionTimeout    time.Duration `mapstructure:"election_timeout"`
	LeaderLeaseTimeout time.Duration `mapstructure:"leader_lease_timeout"`
	CommitTimeout      time.Duration `mapstructure:"commit_timeout"`
	SnapshotInterval   time.Duration `mapstructure:"snapshot_interval"`
	SnapshotThreshold  uint64        `mapstructure:"snapshot_threshold"`
	TrailingLogs       uint64        `mapstructure:"trailing_logs"`
	// MarkerSnapshotCases: a store holding at least this many cases
	// takes marker snapshots, which record the applied index of the
	// durable state store instead of copying it (0: never). Below it a
	// snapshot is a full copy that can rebuild a damaged state store on
	// the replica itself; above it a damaged store is replaced from the
	// group (--rejoin) or a backup.
	MarkerSnapshotCases uint64 `mapstructure:"marker_snapshot_cases"`
	MaxAppendEntries    int    `mapstructure:"max_append_entries"`
	// LogEngine is the raft log implementation: "wal" (hashicorp/raft-wal,
	// the default) or "badger".
	LogEngine string `mapstructure:"log_engine"`
	// WALSegmentSize is the size in bytes of raft-wal's segment files
	// (log_engine wal): the log is written, sealed and compacted a
	// segment at a time.
	WALSegmentSize int `mapstructure:"wal_segment_size"`
	// ApplyTimeout bounds how long a write waits for raft to commit it.
	ApplyTimeout time.Duration `mapstructure:"apply_timeout"`
	// JoinReports is the most case reports the leader joins into one log
	// entry when they wait at the same moment (group commit: one entry,
	// one replication round and one state transaction for all of them; a
	// report alone is never held back). 0 or 1 turns joining off.
	JoinReports int `mapstructure:"join_reports"`
}

// Peer is one static member of the raft group.
type Peer struct {
	ID       string `mapstructure:"id"`
	RaftAddr string `mapstructure:"raft_addr"`
	GRPCAddr string `mapstructure:"grpc_addr"`
	HTTPAddr string `mapstructure:"http_addr"`
	// InternalAddr is the member's internal listener (internal.addr), where
	// followers forward writes; optional (the replicated node registry has
	// it once the member registered).
	InternalAddr string `mapstructure:"internal_addr"`
}

// ListenConfig is a listener's bind address.
type ListenConfig struct {
	Addr string `mapstructure:"addr"`
}

// CatalogueConfig selects the service catalogue.
type CatalogueConfig struct {
	// Path of a catalogue file; empty means the catalogue embedded in the
	// binary.
	Path string `mapstructure:"path"`
}

// LogConfig configures the process logger (see Config.Logger).
// DebugConfig turns on diagnostics that should not be open by default.
type DebugConfig struct {
	// Pprof serves Go's profiler under /debug/pprof/ on the HTTP address.
	Pprof bool `mapstructure:"pprof"`
}

type LogConfig struct {
	Level  string `mapstructure:"level"`  // debug, info, warn, error
	Format string `mapstructure:"format"` // text, json
}

// Default returns the built-in defaults. Node.ID has no default (it is
// required), so Default() alone does not validate; Node.DataDir and
// Raft.Advertise are left empty and derived by ApplyDerived.
func Default() Config {
	return Config{
		Node: NodeConfig{
			VerifyState:  true,
			GCPercent:    200,
			Tier:         TierDistrict,
			Jurisdiction: "320582",
			TimeZone:     "Asia/Shanghai",
		},
		Raft: RaftConfig{
			Addr:                "127.0.0.1:7001",
			HeartbeatTimeout:    time.Second,
			ElectionTimeout:     time.Second,
			LeaderLeaseTimeout:  500 * time.Millisecond,
			CommitTimeout:       50 * time.Millisecond,
			SnapshotInterval:    2 * time.Minute,
			SnapshotThreshold:   8192,
			TrailingLogs:        10240,
			MarkerSnapshotCases: 100000,
			MaxAppendEntries:    256,
			LogEngine:           "wal",
			WALSegmentSize:      64 << 20,
			ApplyTimeout:        10 * time.Second,
			JoinReports:         100,
		},
		GRPC: ListenConfig{Addr: "127.0.0.1:7101"},
		// Plain text on loopback for development; Validate refuses it as
		// soon as a raft or internal address leaves loopback.
		Internal:  InternalConfig{Addr: "127.0.0.1:7401", Insecure: true},
		HTTP:      ListenConfig{Addr: "127.0.0.1:7201"},
		Catalogue: CatalogueConfig{Path: ""},
		Log:       LogConfig{Level: LogLevelInfo, Format: LogFormatText},
		Deadlines: DeadlinesConfig{SweepInterval: time.Second},
		Cases:     CasesConfig{DuplicateRadiusM: 50, DuplicateWindow: 72 * time.Hour, RecurrenceWindow: 30 * 24 * time.Hour},
		Reconcile: ReconcileConfig{BatchSize: 500, FollowInterval: 2 * time.Second},
		Limits:    DefaultLimits(),
		Feed:      DefaultFeed(),
		Evidence:  DefaultEvidence(),
		Console:   ConsoleConfig{Enabled: true},
		Auth:      AuthConfig{TokenTTL: 15 * time.Minute, SessionTTL: 12 * time.Hour, KeyRotation: 24 * time.Hour, AdminUser: "admin"},
		Federation: FederationConfig{
			Addr:       "127.0.0.1:7301",
			BatchSize:  512,
			BatchBytes: 2 << 20,
			RetryMin:   50 * time.Millisecond,
			RetryMax:   time.Second,
			// A dial every 250 ms at most to a neighbour that is down.
			ReconnectMax: 250 * time.Millisecond,
			// Anti-entropy: every 5 minutes, buckets chosen by size.
			AntiEntropyInterval: 5 * time.Minute,
		},
	}
}

// ApplyDerived fills the values whose defaults depend on other keys:
// Node.DataDir ("data/<id>") and Raft.Advertise (Raft.Addr). Load calls it
// before Validate; callers building a Config by hand may call it too.
func (c *Config) ApplyDerived() {
	if c.Node.DataDir == "" && c.Node.ID != "" {
		c.Node.DataDir = filepath.Join("data", c.Node.ID)
	}
	if c.Raft.Advertise == "" {
		c.Raft.Advertise = c.Raft.Addr
	}
}

// RaftAdvertise returns the raft address other members should dial:
// Raft.Advertise, or Raft.Addr when that is empty.
func (c *Config) RaftAdvertise() string {
	if c.Raft.Advertise != "" {
		return c.Raft.Advertise
	}
	return c.Raft.Addr
}

// Location returns the *time.Location for Node.TimeZone (UTC if it does not
// load; Validate reports that case).
func (c *Config) Location() *time.Location {
	loc, err := time.LoadLocation(c.Node.TimeZone)
	if err != nil {
		return time.UTC
	}
	return loc
}

// JurisdictionDigits returns the jurisdiction code length required for tier,
// or 0 for an unknown tier.
func JurisdictionDigits(tier string) int {
	switch tier {
	case TierCity, TierDistrict:
		return 6
	case TierStreet:
		return 9
	case TierCommunity:
		return 12
	}
	return 0
}
