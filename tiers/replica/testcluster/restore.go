package testcluster

import (
	"context"
	"os"
	"time"

	"github.com/cityhub/cityhub/tiers/backup"
	"github.com/cityhub/cityhub/tiers/raftlog"
)

// Destroy kills every member and deletes its data directory: the group's
// state is gone, as after losing every machine.
func (c *Cluster) Destroy() {
	c.t.Helper()
	for i := range c.Members {
		c.Kill(i)
	}
	for _, m := range c.Members {
		if err := os.RemoveAll(m.Cfg.Node.DataDir); err != nil {
			c.t.Fatalf("remove %s: %v", m.Cfg.Node.DataDir, err)
		}
	}
}

// RestoreFrom rebuilds every member's data directory from the backup file
// (tiers/backup, what `cityhubctl snapshot restore` runs on each machine,
// with the same --initial-cluster), starts the group and waits for a
// leader. The members must be down with empty data directories (Destroy).
func (c *Cluster) RestoreFrom(file string, opts ...func(*backup.RestoreOptions)) []*backup.Restored {
	c.t.Helper()
	var members []backup.Member
	for _, m := range c.Members {
		members = append(members, backup.Member{ID: m.ID, RaftAddr: m.Cfg.Raft.Addr})
	}
	var out []*backup.Restored
	for _, m := range c.Members {
		o := backup.RestoreOptions{File: file, DataDir: m.Cfg.Node.DataDir, Name: m.ID, Cluster: members, LogEngine: raftlog.Engine(m.Cfg.Raft.LogEngine)}
		for _, f := range opts {
			f(&o)
		}
		r, err := backup.Restore(context.Background(), o)
		if err != nil {
			c.t.Fatalf("restore %s from %s: %v", m.ID, file, err)
		}
		out = append(out, r)
	}
	for i := range c.Members {
		c.Start(i)
	}
	c.WaitLeader(30 * time.Second)
	return out
}
