package node

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// lockedBuffer is a bytes.Buffer raft's goroutines and the test share.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) records(t *testing.T) []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(l.b.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("not one JSON record per line (%v): %q", err, line)
		}
		out = append(out, m)
	}
	return out
}

// TestSlogHCLog: hclog records keep their level, message and arguments,
// carry component=raft and the node logger's attributes, name sub-loggers,
// and are filtered by the handler's level and the adapter's minimum.
func TestSlogHCLog(t *testing.T) {
	var buf lockedBuffer
	base := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})).With("node", "n1")
	h := newSlogHCLog(base, slog.LevelDebug)
	h.Warn("heartbeat timeout reached", "last-leader-addr", "127.0.0.1:7001", "node", "Node at 127.0.0.1:7001 [Candidate]", "servers", hclog.Fmt("%+v", []int{1, 2}))
	h.Named("net").With("peer", "n2").Error("failed to appendEntries", "error", "connection refused")
	h.Trace("below the handler's level")
	if !h.IsDebug() || h.IsTrace() || h.GetLevel() != hclog.Debug {
		t.Errorf("levels: IsDebug %v IsTrace %v GetLevel %v", h.IsDebug(), h.IsTrace(), h.GetLevel())
	}
	quiet := newSlogHCLog(base, slog.LevelError)
	quiet.Info("entering leader state")
	quiet.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}).Print("[ERROR] raft-net: failed to accept")

	recs := buf.records(t)
	if len(recs) != 3 {
		t.Fatalf("got %d records, want 3: %v", len(recs), recs)
	}
	want := []map[string]any{
		{"level": "WARN", "msg": "heartbeat timeout reached", "component": "raft", "node": "n1", "last-leader-addr": "127.0.0.1:7001",
			"raft_node": "Node at 127.0.0.1:7001 [Candidate]", "servers": "[1 2]"},
		{"level": "ERROR", "msg": "failed to appendEntries", "component": "raft", "node": "n1", "peer": "n2", "error": "connection refused", "logger": "raft.net"},
		{"level": "ERROR", "msg": "raft-net: failed to accept", "component": "raft"},
	}
	for i, w := range want {
		for k, v := range w {
			if recs[i][k] != v {
				t.Errorf("record %d: %s = %v, want %v (%v)", i, k, recs[i][k], v, recs[i])
			}
		}
	}
}

// TestRaftLogsThroughSlog: a real node's raft records (its election)
// come out through the node's logger in its format, as component=raft.
func TestRaftLogsThroughSlog(t *testing.T) {
	var buf lockedBuffer
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	logger := slog.New(slog.NewJSONHandler(&buf, nil)).With("node", "n1")
	n, err := Open(Config{ID: "n1", DataDir: t.TempDir(), RaftAddr: addr, Bootstrap: true, Jurisdiction: "320582", Tier: "district",
		HeartbeatTimeout: 200 * time.Millisecond, ElectionTimeout: 200 * time.Millisecond, LeaderLeaseTimeout: 100 * time.Millisecond, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Shutdown()
	deadline := time.Now().Add(30 * time.Second)
	for {
		for _, r := range buf.records(t) {
			if r["component"] == "raft" && r["msg"] == "entering leader state" && r["node"] == "n1" && r["level"] == "INFO" {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no raft record 'entering leader state' through the node's logger in 30s:\n%v", buf.records(t))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
