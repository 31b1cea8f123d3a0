package config

import (
	"os"
	"time"

	"github.com/cityhub/cityhub/tiers/deadline"
	"github.com/cityhub/cityhub/tiers/evaluation"
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

// LoadSchemes reads evaluation.schemes (nil when unset).
func (c *Config) LoadSchemes() (map[string]evaluation.Scheme, error) {
	if c.Evaluation.Schemes == "" {
		return nil, nil
	}
	data, err := os.ReadFile(c.Evaluation.Schemes)
	if err != nil {
		return nil, err
	}
	return evaluation.ParseSchemes(data)
}

// validatePolicies checks the city's data files and case settings: the
// deadline policy, the scoring schemes, duplicates and recurrence.
func (c *Config) validatePolicies(v *validator) {
	if _, err := c.LoadSchemes(); err != nil {
		v.add("evaluation.schemes", "%v", err)
	}
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
