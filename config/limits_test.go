package config

import (
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestLimitsDefaults(t *testing.T) {
	l := Default().Limits
	if l.MaxRequestBytes != 4<<20 || l.ReadHeaderTimeout <= 0 || l.ReadTimeout <= 0 || l.IdleTimeout <= 0 ||
		l.MaxConcurrent <= 0 || l.Rate <= 0 || l.Burst < 1 || l.LoginRate <= 0 || l.LoginBurst < 1 ||
		l.DiskReserveBytes != 512<<20 || l.DiskReservePercent != 0 || l.DiskCheckInterval != time.Second {
		t.Fatalf("every limit should be on by default: %+v", l)
	}
}

func TestValidateLimits(t *testing.T) {
	bad := []struct {
		name   string
		mutate func(*LimitsConfig)
		keys   []string
	}{
		{"body too small", func(l *LimitsConfig) { l.MaxRequestBytes = 10 }, []string{"limits.max_request_bytes"}},
		{"body off", func(l *LimitsConfig) { l.MaxRequestBytes = 0 }, []string{"limits.max_request_bytes"}},
		{"body too big", func(l *LimitsConfig) { l.MaxRequestBytes = 2 << 30 }, []string{"limits.max_request_bytes"}},
		{"header too small", func(l *LimitsConfig) { l.MaxHeaderBytes = 100 }, []string{"limits.max_header_bytes"}},
		{"no header timeout", func(l *LimitsConfig) { l.ReadHeaderTimeout = 0 }, []string{"limits.read_header_timeout"}},
		{"negative read timeout", func(l *LimitsConfig) { l.ReadTimeout = -time.Second }, []string{"limits.read_timeout"}},
		{"read below header", func(l *LimitsConfig) { l.ReadTimeout = time.Second }, []string{"limits.read_timeout"}},
		{"negative idle", func(l *LimitsConfig) { l.IdleTimeout = -1 }, []string{"limits.idle_timeout"}},
		{"negative concurrency", func(l *LimitsConfig) { l.MaxConcurrent = -1 }, []string{"limits.max_concurrent"}},
		{"long queue", func(l *LimitsConfig) { l.QueueWait = time.Minute }, []string{"limits.queue_wait"}},
		{"negative rate", func(l *LimitsConfig) { l.Rate = -1 }, []string{"limits.rate"}},
		{"NaN rate", func(l *LimitsConfig) { l.Rate = math.NaN() }, []string{"limits.rate"}},
		{"rate without burst", func(l *LimitsConfig) { l.Burst = 0 }, []string{"limits.burst"}},
		{"login without burst", func(l *LimitsConfig) { l.LoginBurst = 0 }, []string{"limits.login_burst"}},
		{"negative disk reserve", func(l *LimitsConfig) { l.DiskReserveBytes = -1 }, []string{"limits.disk_reserve_bytes"}},
		{"huge disk reserve", func(l *LimitsConfig) { l.DiskReserveBytes = 2 << 40 }, []string{"limits.disk_reserve_bytes"}},
		{"disk percent over half", func(l *LimitsConfig) { l.DiskReservePercent = 60 }, []string{"limits.disk_reserve_percent"}},
		{"NaN disk percent", func(l *LimitsConfig) { l.DiskReservePercent = math.NaN() }, []string{"limits.disk_reserve_percent"}},
		{"disk check off", func(l *LimitsConfig) { l.DiskCheckInterval = 0 }, []string{"limits.disk_check_interval"}},
		{"disk check rare", func(l *LimitsConfig) { l.DiskCheckInterval = time.Hour }, []string{"limits.disk_check_interval"}},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			tt.mutate(&c.Limits)
			err := c.Validate()
			if got := fieldKeys(err); !reflect.DeepEqual(got, tt.keys) {
				t.Fatalf("keys = %q, want %q; error: %v", got, tt.keys, err)
			}
		})
	}
	for name, mutate := range map[string]func(*LimitsConfig){
		"all off": func(l *LimitsConfig) {
			l.ReadTimeout, l.IdleTimeout, l.MaxConcurrent, l.QueueWait, l.Rate, l.Burst, l.LoginRate, l.LoginBurst = 0, 0, 0, 0, 0, 0, 0, 0
			l.DiskReserveBytes, l.DiskReservePercent = 0, 0
		},
		"small": func(l *LimitsConfig) {
			l.MaxRequestBytes, l.ReadHeaderTimeout, l.ReadTimeout, l.Rate, l.Burst = 1024, time.Second, time.Second, 0.01, 1
		},
	} {
		c := valid()
		mutate(&c.Limits)
		if err := c.Validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestLoadLimits(t *testing.T) {
	clearEnv(t)
	t.Setenv("CITYHUB_LIMITS_RATE", "0")
	t.Setenv("CITYHUB_LIMITS_DISK_RESERVE_PERCENT", "5")
	cfg, err := Load(writeFile(t, baseYAML+"limits:\n  max_request_bytes: 1048576\n  read_timeout: 15s\n  burst: 3\n  disk_reserve_bytes: 1073741824\n  disk_check_interval: 250ms\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	l := cfg.Limits
	if l.MaxRequestBytes != 1<<20 || l.ReadTimeout != 15*time.Second || l.Burst != 3 || l.Rate != 0 || l.MaxConcurrent != DefaultLimits().MaxConcurrent ||
		l.DiskReserveBytes != 1<<30 || l.DiskReservePercent != 5 || l.DiskCheckInterval != 250*time.Millisecond {
		t.Fatalf("limits = %+v", l)
	}
	_, err = Load(writeFile(t, baseYAML+"limits:\n  max_body: 1\n  idle_timeout: 30\n"), nil)
	if err == nil || !strings.Contains(err.Error(), "limits.max_body: unknown key") {
		t.Fatalf("unknown key: %v", err)
	}
	_, err = Load(writeFile(t, baseYAML+"limits:\n  idle_timeout: 30\n"), nil)
	if err == nil || !strings.Contains(err.Error(), "limits.idle_timeout: 30 has no unit") {
		t.Fatalf("duration without unit: %v", err)
	}
}
