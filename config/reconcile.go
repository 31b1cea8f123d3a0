package config

import "time"

// ReconcileConfig tunes reconciliation (federation/reconcile).
type ReconcileConfig struct {
	// BatchSize is the number of case moves per Raft command.
	BatchSize int `mapstructure:"batch_size"`
	// FollowInterval is how often a node's leader moves on the cases other
	// nodes' reconcilers handed up to it; 0 turns continuation off (the
	// operator then runs reconciliation at each tier by hand).
	FollowInterval time.Duration `mapstructure:"follow_interval"`
}

func (c *Config) validateReconcile(v *validator) {
	r := c.Reconcile
	if r.BatchSize < 1 || r.BatchSize > 5000 {
		v.add("reconcile.batch_size", "%d must be between 1 and 5000", r.BatchSize)
	}
	if r.FollowInterval < 0 || (r.FollowInterval > 0 && r.FollowInterval < 100*time.Millisecond) {
		v.add("reconcile.follow_interval", "%v must be 0 (off) or at least 100ms", r.FollowInterval)
	}
}
