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
	if c.Cases.DuplicateRadiusM <= 0 || c.Cases.DuplicateRadiusM > 10000 {
		v.add("cases.duplicate_radius_m", "%v must be in (0, 10000]", c.Cases.DuplicateRadiusM)
	}
	if c.Cases.DuplicateWindow <= 0 {
		v.add("cases.duplicate_window", "%s must be positive", c.Cases.DuplicateWindow)
	}
	if c.Cases.RecurrenceWindow <= 0 {
		v.add("cases.recurrence_window", "%s must be positive", c.Cases.RecurrenceWindow)
	}
	if c.Deadlines.SweepInterval < 10*time.Millisecond || c.Deadlines.SweepInterval > time.Hour {
		v.add("deadlines.sweep_interval", "%s must be in 10ms..1h", c.Deadlines.SweepInterval)
	}
}
