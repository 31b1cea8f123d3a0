package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

// clearEnv hides any CITYHUB_* variables of the surrounding environment
// (empty variables are ignored by Load).
func clearEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, EnvPrefix+"_") {
			t.Setenv(k, "")
		}
	}
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "cityhub.yaml")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// valid returns a valid config for node n1 of a 3-node bootstrapping group.
func valid() Config {
	c := Default()
	c.Node.ID = "n1"
	c.Raft.Bootstrap = true
	c.Raft.Peers = []Peer{
		{ID: "n1", RaftAddr: "127.0.0.1:7001", GRPCAddr: "127.0.0.1:7101", HTTPAddr: "127.0.0.1:7201"},
		{ID: "n2", RaftAddr: "127.0.0.1:7002", GRPCAddr: "127.0.0.1:7102", HTTPAddr: "127.0.0.1:7202"},
		{ID: "n3", RaftAddr: "127.0.0.1:7003", GRPCAddr: "127.0.0.1:7103", HTTPAddr: "127.0.0.1:7203"},
	}
	return c
}

func fieldKeys(err error) []string {
	var keys []string
	var walk func(error)
	walk = func(err error) {
		if fe, ok := err.(*FieldError); ok {
			keys = append(keys, fe.Key)
			return
		}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
		} else if e := errors.Unwrap(err); e != nil {
			walk(e)
		}
	}
	walk(err)
	return keys
}

func TestDefaultsValidate(t *testing.T) {
	c := Default()
	c.Node.ID = "n1"
	if err := c.Validate(); err != nil {
		t.Fatalf("Default() with node.id: %v", err)
	}
	c.ApplyDerived()
	if c.Node.DataDir != filepath.Join("data", "n1") || c.Raft.Advertise != "127.0.0.1:7001" {
		t.Errorf("derived: data_dir=%q advertise=%q", c.Node.DataDir, c.Raft.Advertise)
	}
	if v := valid(); v.Validate() != nil {
		t.Fatalf("valid(): %v", v.Validate())
	}

	// node.id is the only key without a default.
	d := Default()
	err := d.Validate()
	if got := fieldKeys(err); !reflect.DeepEqual(got, []string{"node.id"}) {
		t.Fatalf("Default().Validate() keys = %v (%v), want [node.id]", got, err)
	}

	// Load with nothing but the id yields exactly the defaults.
	clearEnv(t)
	t.Setenv("CITYHUB_NODE_ID", "n1")
	got, err := Load("", nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.Node.ID = "n1"
	want.Raft.Join = []string{}
	want.Raft.Peers = []Peer{}
	want.ApplyDerived()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Load defaults:\n got %+v\nwant %+v", got, want)
	}
}

func TestValidateBadValues(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope.json")
	tests := []struct {
		name   string
		mutate func(*Config)
		keys   []string // exact set of keys reported, in order
		msg    string   // optional substring of the error
	}{
		{"empty id", func(c *Config) { c.Node.ID = "" }, []string{"node.id", "raft.peers"}, "node.id: required"},
		{"bad id", func(c *Config) { c.Node.ID = "N1_x"; c.Raft.Peers = nil }, []string{"node.id"}, `"N1_x"`},
		{"long id", func(c *Config) { c.Node.ID = strings.Repeat("a", 33); c.Raft.Peers = nil }, []string{"node.id"}, ""},
		{"bad tier", func(c *Config) { c.Node.Tier = "province" }, []string{"node.tier"}, ""},
		{"jurisdiction length vs tier", func(c *Config) { c.Node.Tier = TierStreet }, []string{"node.jurisdiction"}, `tier "street" needs 9`},
		{"jurisdiction community", func(c *Config) { c.Node.Tier = TierCommunity; c.Node.Jurisdiction = "320582101" }, []string{"node.jurisdiction"}, "needs 12"},
		{"jurisdiction not digits", func(c *Config) { c.Node.Jurisdiction = "32058x" }, []string{"node.jurisdiction"}, "only digits"},
		{"jurisdiction empty", func(c *Config) { c.Node.Jurisdiction = "" }, []string{"node.jurisdiction"}, ""},
		{"bad time zone", func(c *Config) { c.Node.TimeZone = "Mars/Olympus" }, []string{"node.time_zone"}, ""},
		{"raft addr not host:port", func(c *Config) { c.Raft.Addr = "localhost" }, []string{"raft.addr", "raft.peers[0].raft_addr"}, `raft.addr: "localhost" is not host:port`},
		{"grpc port zero", func(c *Config) { c.GRPC.Addr = "127.0.0.1:0" }, []string{"grpc.addr"}, "1..65535"},
		{"http port too big", func(c *Config) { c.HTTP.Addr = "127.0.0.1:70000" }, []string{"http.addr"}, ""},
		{"http empty", func(c *Config) { c.HTTP.Addr = "" }, []string{"http.addr"}, "required"},
		{"duplicate port grpc", func(c *Config) { c.GRPC.Addr = "127.0.0.1:7001" }, []string{"grpc.addr"}, "already used by raft.addr"},
		{"duplicate port http", func(c *Config) { c.HTTP.Addr = "127.0.0.1:7101" }, []string{"http.addr"}, "already used by grpc.addr"},
		{"unadvertisable raft addr", func(c *Config) { c.Raft.Addr = "0.0.0.0:7001" }, []string{"raft.addr", "raft.peers[0].raft_addr", "internal.insecure"}, "raft.advertise"},
		{"bad advertise", func(c *Config) { c.Raft.Advertise = "x" }, []string{"raft.advertise", "raft.peers[0].raft_addr"}, ""},
		{"bootstrap and join", func(c *Config) { c.Auth.Disabled = true; c.Raft.Join = []string{"127.0.0.1:7102"} }, []string{"raft.join"}, "raft.bootstrap"},
		{"bad join addr", func(c *Config) {
			c.Auth.Disabled, c.Raft.Bootstrap, c.Raft.Join = true, false, []string{"127.0.0.1:7102", "nope"}
		}, []string{"raft.join[1]"}, ""},
		{"join with authentication but no member's internal listener", func(c *Config) {
			c.Raft.Bootstrap, c.Raft.Join = false, []string{"127.0.0.1:7102"}
		}, []string{"raft.join"}, "internal_addr"},
		{"peer bad raft addr", func(c *Config) { c.Raft.Peers[1].RaftAddr = "x" }, []string{"raft.peers[1].raft_addr"}, `raft.peers[1].raft_addr: "x" is not host:port`},
		{"peer missing grpc addr", func(c *Config) { c.Raft.Peers[2].GRPCAddr = "" }, []string{"raft.peers[2].grpc_addr"}, "required"},
		{"peer bad id", func(c *Config) { c.Raft.Peers[2].ID = "N3" }, []string{"raft.peers[2].id"}, ""},
		{"peer duplicate id", func(c *Config) { c.Raft.Peers[2].ID = "n2" }, []string{"raft.peers[2].id"}, "raft.peers[1].id"},
		{"peer duplicate addr", func(c *Config) { c.Raft.Peers[2].HTTPAddr = "127.0.0.1:7102" }, []string{"raft.peers[2].http_addr"}, "raft.peers[1].grpc_addr"},
		{"peers without self", func(c *Config) { c.Raft.Peers = c.Raft.Peers[1:] }, []string{"raft.peers"}, "does not include this node"},
		{"self raft addr mismatch", func(c *Config) { c.Raft.Addr = "127.0.0.1:7009" }, []string{"raft.peers[0].raft_addr"}, "127.0.0.1:7009"},
		{"zero heartbeat", func(c *Config) { c.Raft.HeartbeatTimeout = 0 }, []string{"raft.heartbeat_timeout"}, "positive"},
		{"tiny election", func(c *Config) { c.Raft.ElectionTimeout = time.Millisecond }, []string{"raft.election_timeout"}, "minimum"},
		{"election below heartbeat", func(c *Config) { c.Raft.ElectionTimeout = 500 * time.Millisecond }, []string{"raft.election_timeout"}, "heartbeat"},
		{"lease above heartbeat", func(c *Config) { c.Raft.LeaderLeaseTimeout = 2 * time.Second }, []string{"raft.leader_lease_timeout"}, "<= raft.heartbeat_timeout"},
		{"negative commit", func(c *Config) { c.Raft.CommitTimeout = -time.Millisecond }, []string{"raft.commit_timeout"}, "positive"},
		{"zero snapshot interval", func(c *Config) { c.Raft.SnapshotInterval = 0 }, []string{"raft.snapshot_interval"}, ""},
		{"gc percent off", func(c *Config) { c.Node.GCPercent = -1 }, []string{"node.gc_percent"}, ""},
		{"gc percent too high", func(c *Config) { c.Node.GCPercent = 5000 }, []string{"node.gc_percent"}, ""},
		{"zero apply timeout", func(c *Config) { c.Raft.ApplyTimeout = 0 }, []string{"raft.apply_timeout"}, ""},
		{"join reports over the batch limit", func(c *Config) { c.Raft.JoinReports = 1001 }, []string{"raft.join_reports"}, ""},
		{"max append too big", func(c *Config) { c.Raft.MaxAppendEntries = 1025 }, []string{"raft.max_append_entries"}, ""},
		{"max append zero", func(c *Config) { c.Raft.MaxAppendEntries = 0 }, []string{"raft.max_append_entries"}, ""},
		{"unknown log engine", func(c *Config) { c.Raft.LogEngine = "bolt" }, []string{"raft.log_engine"}, ""},
		{"bad log level", func(c *Config) { c.Log.Level = "verbose" }, []string{"log.level"}, `log.level: "verbose"`},
		{"bad log format", func(c *Config) { c.Log.Format = "xml" }, []string{"log.format"}, ""},
		{"missing catalogue", func(c *Config) { c.Catalogue.Path = missing }, []string{"catalogue.path"}, ""},
		{"catalogue is a directory", func(c *Config) { c.Catalogue.Path = filepath.Dir(missing) }, []string{"catalogue.path"}, "directory"},
		{"auth off beyond loopback", func(c *Config) { c.Auth.Disabled = true; c.GRPC.Addr = "10.0.0.1:7101" }, []string{"auth.disabled", "tls.cert"}, "loopback"},
		{"plain API beyond loopback", func(c *Config) { c.TLS.Disabled = true; c.HTTP.Addr = "0.0.0.0:7201" }, []string{"tls.disabled"}, "loopback"},
		{"cert without key", func(c *Config) { c.TLS.Cert = missing }, []string{"tls.key"}, ""},
		{"missing cert file", func(c *Config) { c.TLS.Cert, c.TLS.Key = missing, missing }, []string{"tls.cert", "tls.key"}, ""},
		{"token ttl too short", func(c *Config) { c.Auth.TokenTTL = time.Second }, []string{"auth.token_ttl"}, ""},
		{"session shorter than token", func(c *Config) { c.Auth.SessionTTL = time.Minute }, []string{"auth.session_ttl"}, ""},
		{"missing admin password file", func(c *Config) { c.Auth.AdminPasswordFile = missing }, []string{"auth.admin_password_file"}, ""},
		{"several at once", func(c *Config) {
			c.Node.ID = "bad id"
			c.Raft.Peers = nil
			c.Log.Level = "loud"
			c.HTTP.Addr = "127.0.0.1:7001"
		}, []string{"node.id", "http.addr", "log.level"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			tt.mutate(&c)
			err := c.Validate()
			if err == nil {
				t.Fatal("Validate() = nil, want error")
			}
			if got := fieldKeys(err); !reflect.DeepEqual(got, tt.keys) {
				t.Errorf("keys = %q, want %q; error:\n%v", got, tt.keys, err)
			}
			for _, k := range tt.keys {
				if !strings.Contains(err.Error(), k+":") {
					t.Errorf("error %q does not name %s", err, k)
				}
			}
			if tt.msg != "" && !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q does not contain %q", err, tt.msg)
			}
		})
	}
}

func TestValidateAccepts(t *testing.T) {
	catalogue := filepath.Join(t.TempDir(), "catalogue.yaml")
	if err := os.WriteFile(catalogue, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		mutate func(*Config)
	}{
		{"single node bootstrap", func(c *Config) { c.Raft.Peers = nil }},
		{"join without bootstrap, authentication off", func(c *Config) {
			c.Auth.Disabled, c.Raft.Bootstrap, c.Raft.Join = true, false, []string{"127.0.0.1:7102"}
		}},
		{"join with authentication through a member's internal listener", func(c *Config) {
			c.Raft.Bootstrap, c.Raft.Join = false, []string{c.Raft.Peers[1].GRPCAddr}
			c.Raft.Peers[1].InternalAddr = "127.0.0.1:7402"
		}},
		{"peers without bootstrap need not include self", func(c *Config) { c.Raft.Bootstrap = false; c.Raft.Peers = c.Raft.Peers[1:] }},
		{"wildcard bind with advertise", func(c *Config) {
			c.Raft.Addr = "0.0.0.0:7001"
			c.Raft.Advertise = "127.0.0.1:7001"
			c.Internal.Insecure, c.Internal.TLS = false, internalTLS(t, "320582")
		}},
		{"empty host listeners with TLS", func(c *Config) {
			c.GRPC.Addr, c.HTTP.Addr = ":7101", ":7201"
			c.TLS.Cert, c.TLS.Key = catalogue, catalogue
		}},
		{"street", func(c *Config) { c.Node.Tier = TierStreet; c.Node.Jurisdiction = "320582100" }},
		{"community", func(c *Config) { c.Node.Tier = TierCommunity; c.Node.Jurisdiction = "320582100001" }},
		{"city", func(c *Config) { c.Node.Tier = TierCity; c.Node.Jurisdiction = "320500" }},
		{"catalogue exists", func(c *Config) { c.Catalogue.Path = catalogue }},
		{"json debug", func(c *Config) { c.Log.Level = LogLevelDebug; c.Log.Format = LogFormatJSON }},
		{"lease equals heartbeat", func(c *Config) { c.Raft.LeaderLeaseTimeout = c.Raft.HeartbeatTimeout }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			tt.mutate(&c)
			if err := c.Validate(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

const baseYAML = `
node:
  id: n1
raft:
  addr: 127.0.0.1:7001
`

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		env  map[string]string
		want []string // substrings of the error, including the dotted key
	}{
		{"unknown top-level key", baseYAML + "nodes:\n  id: x\n", nil, []string{"nodes: unknown key"}},
		{"unknown nested key", baseYAML + "log:\n  levle: debug\n", nil, []string{"log.levle: unknown key"}},
		{"unknown keys reported together", "node:\n  id: n1\n  ID2: x\nraft:\n  adr: x\n", nil, []string{"node.id2: unknown key", "raft.adr: unknown key"}},
		{"unknown peer key", baseYAML + "  peers:\n    - id: n1\n      raft_addr: 127.0.0.1:7001\n      grpc_adr: 127.0.0.1:7101\n", nil, []string{"raft.peers[0].grpc_adr: unknown key"}},
		{"bad duration in file", baseYAML + "  heartbeat_timeout: soon\n", nil, []string{"raft.heartbeat_timeout", `"soon"`}},
		{"duration without unit", baseYAML + "  election_timeout: 500\n", nil, []string{"raft.election_timeout: 500 has no unit"}},
		{"negative unsigned in file", baseYAML + "  trailing_logs: -3\n", nil, []string{"raft.trailing_logs: -3 must not be negative"}},
		{"wrong shape", baseYAML + "log: loud\n", nil, []string{"log:"}},
		{"peer of wrong type", baseYAML + "  peers:\n    - id: n1\n      raft_addr: [1]\n", nil, []string{"raft.peers[0].raft_addr"}},
		{"negative duration in file", baseYAML + "  commit_timeout: -5ms\n", nil, []string{"raft.commit_timeout: -5ms must be positive"}},
		{"bad duration in env", baseYAML, map[string]string{"CITYHUB_RAFT_ELECTION_TIMEOUT": "abc"}, []string{"raft.election_timeout"}},
		{"bad number in env", baseYAML, map[string]string{"CITYHUB_RAFT_SNAPSHOT_THRESHOLD": "-1"}, []string{"raft.snapshot_threshold"}},
		{"bad log level in file", baseYAML + "log:\n  level: loud\n", nil, []string{`log.level: "loud"`}},
		{"bad addr in env", baseYAML, map[string]string{"CITYHUB_GRPC_ADDR": "nowhere"}, []string{`grpc.addr: "nowhere" is not host:port`}},
		{"duplicate port", baseYAML + "http:\n  addr: 127.0.0.1:7001\n", nil, []string{"http.addr: port 7001 is already used by raft.addr"}},
		{"tier mismatch", "node:\n  id: n1\n  tier: street\n", nil, []string{"node.jurisdiction"}},
		{"bootstrap and join", baseYAML + "  bootstrap: true\n  join: [127.0.0.1:7102]\n", nil, []string{"raft.join: cannot be combined with raft.bootstrap"}},
		{"malformed yaml", "node: [\n", nil, []string{"cityhub.yaml"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearEnv(t)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			cfg, err := Load(writeFile(t, tt.yaml), nil)
			if err == nil {
				t.Fatalf("Load() = %+v, nil; want error", cfg)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if !reflect.DeepEqual(cfg, Config{}) {
				t.Errorf("Load returned non-zero config with error")
			}
		})
	}

	if _, err := Load(filepath.Join(t.TempDir(), "missing.yaml"), nil); err == nil {
		t.Error("Load(missing file) = nil error")
	}
}

func TestEnvWithoutFile(t *testing.T) {
	clearEnv(t)
	tlsFiles := internalTLS(t, "320582100")
	env := map[string]string{
		"CITYHUB_NODE_ID":                     "n7",
		"CITYHUB_CONSOLE_ENABLED":             "false",
		"CITYHUB_NODE_DATA_DIR":               "/var/lib/cityhub",
		"CITYHUB_NODE_TIER":                   "street",
		"CITYHUB_NODE_JURISDICTION":           "320582100",
		"CITYHUB_NODE_TIME_ZONE":              "UTC",
		"CITYHUB_RAFT_ADDR":                   "0.0.0.0:8001",
		"CITYHUB_RAFT_ADVERTISE":              "10.0.0.7:8001",
		"CITYHUB_RAFT_JOIN":                   "127.0.0.1:9101,127.0.0.1:9102",
		"CITYHUB_AUTH_DISABLED":               "true", // a joining replica without raft.peers: no login of its own
		"CITYHUB_RAFT_HEARTBEAT_TIMEOUT":      "2s",
		"CITYHUB_RAFT_ELECTION_TIMEOUT":       "3s",
		"CITYHUB_RAFT_LEADER_LEASE_TIMEOUT":   "500ms",
		"CITYHUB_RAFT_COMMIT_TIMEOUT":         "20ms",
		"CITYHUB_RAFT_SNAPSHOT_INTERVAL":      "1h",
		"CITYHUB_RAFT_SNAPSHOT_THRESHOLD":     "100",
		"CITYHUB_RAFT_TRAILING_LOGS":          "200",
		"CITYHUB_RAFT_MAX_APPEND_ENTRIES":     "64",
		"CITYHUB_RAFT_APPLY_TIMEOUT":          "3s",
		"CITYHUB_GRPC_ADDR":                   "127.0.0.1:8101",
		"CITYHUB_INTERNAL_INSECURE":           "false",
		"CITYHUB_INTERNAL_TLS_CA":             tlsFiles.CA,
		"CITYHUB_INTERNAL_TLS_CERT":           tlsFiles.Cert,
		"CITYHUB_INTERNAL_TLS_KEY":            tlsFiles.Key,
		"CITYHUB_HTTP_ADDR":                   "127.0.0.1:8201",
		"CITYHUB_LOG_LEVEL":                   "debug",
		"CITYHUB_LOG_FORMAT":                  "json",
		"CITYHUB_CATALOGUE_PATH":              "",  // empty: ignored
		"CITYHUB_UNRELATED_NOT_A_KEY_AT_ALL":  "x", // unknown env vars are ignored
		"CITYHUB_RAFT_PEERS_ARE_NOT_FROM_ENV": "x",
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	got, err := Load("", nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Node: NodeConfig{ID: "n7", DataDir: "/var/lib/cityhub", Tier: "street", Jurisdiction: "320582100", TimeZone: "UTC", VerifyState: true, GCPercent: 200},
		Raft: RaftConfig{
			Addr: "0.0.0.0:8001", Advertise: "10.0.0.7:8001",
			Join:             []string{"127.0.0.1:9101", "127.0.0.1:9102"},
			Peers:            []Peer{},
			HeartbeatTimeout: 2 * time.Second, ElectionTimeout: 3 * time.Second,
			LeaderLeaseTimeout: 500 * time.Millisecond, CommitTimeout: 20 * time.Millisecond,
			SnapshotInterval: time.Hour, SnapshotThreshold: 100, TrailingLogs: 200, MarkerSnapshotCases: 100000,
			MaxAppendEntries: 64, ApplyTimeout: 3 * time.Second, JoinReports: 100, LogEngine: "wal", WALSegmentSize: 64 << 20,
		},
		GRPC:       ListenConfig{Addr: "127.0.0.1:8101"},
		HTTP:       ListenConfig{Addr: "127.0.0.1:8201"},
		Log:        LogConfig{Level: "debug", Format: "json"},
		Federation: Default().Federation,
		Internal:   InternalConfig{Addr: Default().Internal.Addr, TLS: tlsFiles},
		Deadlines:  Default().Deadlines,
		Cases:      Default().Cases,
		Reconcile:  Default().Reconcile,
		Evaluation: Default().Evaluation,
		Evidence:   Default().Evidence,
		Console:    ConsoleConfig{Enabled: false}, // CITYHUB_CONSOLE_ENABLED
		Auth:       Default().Auth,
		Limits:     Default().Limits,
		Feed:       Default().Feed,
	}
	want.Auth.Disabled = true // CITYHUB_AUTH_DISABLED
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Load from env:\n got %+v\nwant %+v", got, want)
	}

	t.Setenv("CITYHUB_RAFT_BOOTSTRAP", "true")
	if _, err := Load("", nil); err == nil || !strings.Contains(err.Error(), "raft.join: cannot be combined") {
		t.Fatalf("bootstrap+join from env: err = %v", err)
	}
}

const precedenceYAML = `
node:
  id: n2
  tier: street
  jurisdiction: "320582100"
raft:
  addr: 127.0.0.1:7005
  heartbeat_timeout: 500ms
  election_timeout: 750ms
  leader_lease_timeout: 250ms
grpc:
  addr: 127.0.0.1:7105
log:
  level: warn
`

func TestPrecedence(t *testing.T) {
	path := writeFile(t, precedenceYAML)

	load := func(t *testing.T, args ...string) Config {
		t.Helper()
		fs := pflag.NewFlagSet("cityhubd", pflag.ContinueOnError)
		fs.String("config", "", "handled by the caller")
		BindFlags(fs)
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		c, err := Load(path, fs)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}

	t.Run("file beats defaults; unset flags do not override", func(t *testing.T) {
		clearEnv(t)
		// BindFlags' defaults (tier district, raft-addr 127.0.0.1:7001,
		// log-level info, ...) differ from the file, but were not set.
		c := load(t, "--config", path)
		if c.Node.ID != "n2" || c.Node.Tier != "street" || c.Node.Jurisdiction != "320582100" ||
			c.Raft.Addr != "127.0.0.1:7005" || c.GRPC.Addr != "127.0.0.1:7105" || c.Log.Level != "warn" {
			t.Fatalf("file values lost: %+v", c)
		}
		if c.Raft.HeartbeatTimeout != 500*time.Millisecond || c.Raft.LeaderLeaseTimeout != 250*time.Millisecond {
			t.Fatalf("durations: %+v", c.Raft)
		}
		// Keys absent from the file keep their defaults and derived values.
		if c.HTTP.Addr != "127.0.0.1:7201" || c.Node.DataDir != filepath.Join("data", "n2") ||
			c.Raft.Advertise != "127.0.0.1:7005" || c.Raft.CommitTimeout != 50*time.Millisecond {
			t.Fatalf("defaults: %+v", c)
		}
	})

	t.Run("env beats file", func(t *testing.T) {
		clearEnv(t)
		t.Setenv("CITYHUB_LOG_LEVEL", "error")
		t.Setenv("CITYHUB_RAFT_ADDR", "127.0.0.1:7006")
		t.Setenv("CITYHUB_RAFT_HEARTBEAT_TIMEOUT", "600ms")
		c := load(t)
		if c.Log.Level != "error" || c.Raft.Addr != "127.0.0.1:7006" || c.Raft.HeartbeatTimeout != 600*time.Millisecond {
			t.Fatalf("env did not override file: %+v", c)
		}
		if c.Node.Tier != "street" {
			t.Fatalf("file value lost: %+v", c.Node)
		}
	})

	t.Run("flag beats env and file", func(t *testing.T) {
		clearEnv(t)
		t.Setenv("CITYHUB_LOG_LEVEL", "error")
		t.Setenv("CITYHUB_RAFT_ADDR", "127.0.0.1:7006")
		t.Setenv("CITYHUB_NODE_ID", "n9")
		t.Setenv("CITYHUB_AUTH_DISABLED", "true") // it joins, and its file lists no member's internal listener
		c := load(t,
			"--log-level=debug", "--raft-addr", "127.0.0.1:7007", "--tier", "community",
			"--jurisdiction", "320582100001", "--data-dir", "/srv/n2",
			"--join", "127.0.0.1:7101", "--join", "127.0.0.1:7102,127.0.0.1:7103",
			"--grpc-addr", "127.0.0.1:7108", "--http-addr", "127.0.0.1:7208")
		want := Config{
			Node: NodeConfig{ID: "n9", DataDir: "/srv/n2", Tier: "community", Jurisdiction: "320582100001", TimeZone: "Asia/Shanghai", VerifyState: true, GCPercent: 200},
			GRPC: ListenConfig{Addr: "127.0.0.1:7108"},
			HTTP: ListenConfig{Addr: "127.0.0.1:7208"},
			Log:  LogConfig{Level: "debug", Format: "text"},
		}
		if c.Node != want.Node || c.GRPC != want.GRPC || c.HTTP != want.HTTP || c.Log != want.Log {
			t.Fatalf("got %+v\nwant %+v", c, want)
		}
		if c.Raft.Addr != "127.0.0.1:7007" || c.Raft.Advertise != "127.0.0.1:7007" {
			t.Fatalf("raft addr: %+v", c.Raft)
		}
		if wantJoin := []string{"127.0.0.1:7101", "127.0.0.1:7102", "127.0.0.1:7103"}; !reflect.DeepEqual(c.Raft.Join, wantJoin) {
			t.Fatalf("join = %q, want %q", c.Raft.Join, wantJoin)
		}
	})

	t.Run("bool flag", func(t *testing.T) {
		clearEnv(t)
		if c := load(t); c.Raft.Bootstrap {
			t.Fatal("bootstrap set without flag")
		}
		if c := load(t, "--bootstrap"); !c.Raft.Bootstrap {
			t.Fatal("--bootstrap not applied")
		}
		t.Setenv("CITYHUB_RAFT_BOOTSTRAP", "true")
		if c := load(t, "--bootstrap=false"); c.Raft.Bootstrap {
			t.Fatal("--bootstrap=false did not beat env")
		}
	})

	t.Run("catalogue flag is validated", func(t *testing.T) {
		clearEnv(t)
		fs := pflag.NewFlagSet("cityhubd", pflag.ContinueOnError)
		BindFlags(fs)
		if err := fs.Parse([]string{"--catalogue", filepath.Join(t.TempDir(), "none.yaml")}); err != nil {
			t.Fatal(err)
		}
		if _, err := Load(path, fs); err == nil || !strings.Contains(err.Error(), "catalogue.path:") {
			t.Fatalf("err = %v, want catalogue.path error", err)
		}
	})

	t.Run("foreign flag set", func(t *testing.T) {
		clearEnv(t)
		fs := pflag.NewFlagSet("other", pflag.ContinueOnError)
		fs.String("log-level", "", "")
		fs.Int("workers", 1, "")
		if err := fs.Parse([]string{"--log-level", "debug", "--workers", "3"}); err != nil {
			t.Fatal(err)
		}
		c, err := Load(path, fs)
		if err != nil {
			t.Fatal(err)
		}
		if c.Log.Level != "debug" {
			t.Fatalf("log level = %q", c.Log.Level)
		}
	})
}

func TestExamples(t *testing.T) {
	clearEnv(t)
	files, err := filepath.Glob("examples/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	more, err := filepath.Glob("examples/*/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, more...)
	if len(files) < 4 {
		t.Fatalf("found only %d example files: %v", len(files), files)
	}
	// The tier-3 examples name files relative to the working directory (the
	// README's steps make them): the client API's certificate and the first
	// administrator's password. Validate only checks they exist.
	abs := map[string]string{}
	for _, f := range files {
		if abs[f], err = filepath.Abs(f); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	for _, f := range []string{"data/certs/ca.pem", "data/certs/320582.pem", "data/certs/320582-key.pem", "data/tier-3/admin-password"} {
		p := filepath.Join(dir, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t.Chdir(dir)
	var tier3 []Config
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			c, err := Load(abs[f], nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Validate(); err != nil {
				t.Fatal(err)
			}
			// No reference data by default (their files are shown, commented).
			if c.Geo.Grids != "" || c.Ownership.IsSet() {
				t.Errorf("%s: geo %+v, ownership %+v; want none", f, c.Geo, c.Ownership)
			}
			if strings.Contains(f, "tier-3") {
				id := strings.TrimSuffix(filepath.Base(f), ".yaml")
				if c.Node.ID != id || c.Node.DataDir != "data/"+id || !c.Raft.Bootstrap || len(c.Raft.Peers) != 3 {
					t.Errorf("%s: unexpected %+v", f, c)
				}
				if !c.TLS.Enabled() || c.Auth.Disabled || c.Auth.AdminPasswordFile == "" {
					t.Errorf("%s: client TLS and authentication must be on: tls %+v, auth %+v", f, c.TLS, c.Auth)
				}
				tier3 = append(tier3, c)
			}
		})
	}
	if len(tier3) != 3 {
		t.Fatalf("tier-3 examples: %d", len(tier3))
	}
	for i, c := range tier3 {
		if !reflect.DeepEqual(c.Raft.Peers, tier3[0].Raft.Peers) {
			t.Errorf("%s peers differ from %s", c.Node.ID, tier3[0].Node.ID)
		}
		p := c.Raft.Peers[i]
		if p.ID != c.Node.ID || p.RaftAddr != c.Raft.Addr || p.GRPCAddr != c.GRPC.Addr || p.HTTPAddr != c.HTTP.Addr {
			t.Errorf("%s: own peer entry %+v does not match its listeners", c.Node.ID, p)
		}
	}
}

func TestLogger(t *testing.T) {
	c := valid()
	c.Log = LogConfig{Level: "warn", Format: "json"}
	var buf bytes.Buffer
	l := c.Logger(&buf)
	l.Info("hidden")
	l.Warn("shown", "k", 1)
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("not one JSON record: %q: %v", buf.String(), err)
	}
	if rec["msg"] != "shown" || rec["node"] != "n1" || rec["level"] != "WARN" {
		t.Fatalf("record = %v", rec)
	}

	buf.Reset()
	c.Log = LogConfig{Level: "debug", Format: "text"}
	c.Logger(&buf).Debug("hello")
	if s := buf.String(); !strings.Contains(s, "level=DEBUG") || !strings.Contains(s, "msg=hello") || !strings.Contains(s, "node=n1") {
		t.Fatalf("text output = %q", s)
	}
}

func TestBindFlags(t *testing.T) {
	fs := pflag.NewFlagSet("x", pflag.ContinueOnError)
	BindFlags(fs)
	for name, key := range flagKeys {
		if fs.Lookup(name) == nil {
			t.Errorf("flag --%s not registered", name)
		}
		if _, ok := defaultSettings()[key]; !ok {
			t.Errorf("flag --%s maps to unknown key %s", name, key)
		}
	}
	var n int
	fs.VisitAll(func(*pflag.Flag) { n++ })
	if n != len(flagKeys) {
		t.Errorf("BindFlags registered %d flags, flagKeys has %d", n, len(flagKeys))
	}
}

func TestValidateOIDC(t *testing.T) {
	c := valid()
	c.Auth.OIDC.Issuer = "https://sso.example.gov.cn/realms/city"
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), "auth.oidc.audience") {
		t.Fatalf("issuer without audience: %v", err)
	}
	c.Auth.OIDC.Audience = "cityhub"
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestFeedKeysValidated(t *testing.T) {
	c := Default()
	c.Feed.Window, c.Feed.Buffer, c.Feed.MaxWatchers, c.Feed.BatchDelay = 5, 10, 0, -time.Millisecond
	c.Feed.Heartbeat, c.Feed.PollMaxWait, c.Feed.WriteTimeout, c.Feed.MaxAge = time.Millisecond, 0, 0, time.Second
	err := c.Validate()
	for _, key := range []string{"feed.window", "feed.buffer", "feed.max_watchers", "feed.batch_delay", "feed.heartbeat", "feed.poll_max_wait", "feed.write_timeout", "feed.max_age"} {
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("Validate does not name %s: %v", key, err)
		}
	}
	d := Default()
	if err := d.Validate(); err != nil && strings.Contains(err.Error(), "feed.") {
		t.Errorf("the default feed keys are refused: %v", err)
	}
}

// TestExamplesNameTheSampleFiles: the sample city's files the examples
// show (commented out: TestExamples checks that they set no reference
// data) exist at the paths given, relative to the repository's root (where
// the README runs them).
func TestExamplesNameTheSampleFiles(t *testing.T) {
	clearEnv(t)
	files, err := filepath.Glob("examples/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	more, err := filepath.Glob("examples/*/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	named := regexp.MustCompile(`(?m)^#\s+(grids|rules|components): (testdata/city/\S+)`)
	for _, f := range append(files, more...) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		keys := map[string]bool{}
		for _, m := range named.FindAllStringSubmatch(string(b), -1) {
			keys[m[1]] = true
			if _, err := os.Stat(filepath.Join("..", m[2])); err != nil {
				t.Errorf("%s names %s for %s: %v", f, m[2], m[1], err)
			}
		}
		if len(keys) != 3 {
			t.Errorf("%s shows %v of the sample city's files, want grids, rules and components", f, keys)
		}
	}
}
