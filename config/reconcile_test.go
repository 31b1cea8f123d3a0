package config

import (
	"slices"
	"testing"
	"time"
)

func TestReconcileValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  func(*Config)
		key  string
	}{
		{"batch zero", func(c *Config) { c.Reconcile.BatchSize = 0 }, "reconcile.batch_size"},
		{"batch too big", func(c *Config) { c.Reconcile.BatchSize = 5001 }, "reconcile.batch_size"},
		{"negative follow", func(c *Config) { c.Reconcile.FollowInterval = -time.Second }, "reconcile.follow_interval"},
		{"follow too fast", func(c *Config) { c.Reconcile.FollowInterval = time.Millisecond }, "reconcile.follow_interval"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := valid()
			tc.set(&c)
			if keys := fieldKeys(c.Validate()); !slices.Equal(keys, []string{tc.key}) {
				t.Fatalf("bad keys %v, want [%s]", keys, tc.key)
			}
		})
	}
	c := valid()
	c.Reconcile.FollowInterval = 0 // off is allowed
	if err := c.Validate(); err != nil {
		t.Fatalf("follow_interval 0: %v", err)
	}
}
