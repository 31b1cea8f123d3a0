package config

import (
	"os"
	"time"

	"github.com/cityhub/cityhub/tiers/deadline"
)

// LoadDeadlinePolicy reads deadlines.policy, or the embedded default.
func (c *Config) LoadDeadlinePolicy() (*deadline.Policy, error) {
	data := DefaultDeadlinePolicy
	if c.Deadlines.Policy != "" {
		var err error
		if data, err = os.ReadFile(c.Deadlines.Policy); err != nil {
			return nil, err
		}
	}
	return deadline.Parse(data)
}

func (c *Config) validateDeadlines(v *validator) {
	if _, err := c.LoadDeadlinePolicy(); err != nil {
		v.add("deadlines.policy", "%v", err)
	}
	if c.Deadlines.SweepInterval < 10*time.Millisecond || c.Deadlines.SweepInterval > time.Hour {
		v.add("deadlines.sweep_interval", "%s must be in 10ms..1h", c.Deadlines.SweepInterval)
	}
}
