package config

import "time"

// LimitsConfig bounds what one request, one connection and one caller may
// take of a node's client API (gRPC and REST; see tiers/api/limits.go).
// Refusals answer 413 / 429 / ResourceExhausted before anything is
// proposed, and are counted in cityhub_limit_refusals_total. The disk
// reserve bounds what writes may take of the data directory's filesystem
// (tiers/diskspace): below it the node proposes nothing and answers
// Unavailable / 503 with Retry-After.
type LimitsConfig struct {
	// MaxRequestBytes bounds a REST request body and a gRPC message.
	MaxRequestBytes int64 `mapstructure:"max_request_bytes"`
	// MaxHeaderBytes bounds a REST request's header and a gRPC call's
	// metadata.
	MaxHeaderBytes int `mapstructure:"max_header_bytes"`
	// ReadHeaderTimeout is how long a client has to send a REST request's
	// header (and to finish a gRPC connection's handshake).
	ReadHeaderTimeout time.Duration `mapstructure:"read_header_timeout"`
	// ReadTimeout is how long a client has to send a whole REST request,
	// body included (0: no limit).
	ReadTimeout time.Duration `mapstructure:"read_timeout"`
	// IdleTimeout closes a REST keep-alive connection or a gRPC connection
	// that has carried no request this long (0: never).
	IdleTimeout time.Duration `mapstructure:"idle_timeout"`
	// MaxConcurrent bounds the requests in flight on the node, gRPC and
	// REST together (0: no limit). One more waits up to QueueWait for a
	// slot, then is refused.
	MaxConcurrent int           `mapstructure:"max_concurrent"`
	QueueWait     time.Duration `mapstructure:"queue_wait"`
	// Rate is the requests a second one caller may make, with bursts of
	// Burst: a caller is the authenticated principal, or its network
	// address when authentication is off or has not happened yet (login).
	// 0: no limit.
	Rate  float64 `mapstructure:"rate"`
	Burst int     `mapstructure:"burst"`
	// LoginRate and LoginBurst bound failed logins per username and
	// address (attempts a second; 0: no limit). A successful login does not
	// count.
	LoginRate  float64 `mapstructure:"login_rate"`
	LoginBurst int     `mapstructure:"login_burst"`
	// DiskReserveBytes is the free space of the data directory's
	// filesystem (node.data_dir and its raft, state and snapshots
	// folders) below which the node refuses every write it would propose
	// (clients' and its own jobs'), so the disk never fills under the
	// state store. 0 turns the guard off.
	DiskReserveBytes int64 `mapstructure:"disk_reserve_bytes"`
	// DiskReservePercent, when set, raises the reserve to that share of
	// the filesystem's size (the larger of the two counts).
	DiskReservePercent float64 `mapstructure:"disk_reserve_percent"`
	// DiskCheckInterval is how often the free space is read (statfs).
	DiskCheckInterval time.Duration `mapstructure:"disk_check_interval"`
}

// DefaultLimits are the built-in limits.
func DefaultLimits() LimitsConfig {
	return LimitsConfig{
		MaxRequestBytes:   4 << 20,
		MaxHeaderBytes:    64 << 10,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxConcurrent:     256,
		QueueWait:         100 * time.Millisecond,
		Rate:              100,
		Burst:             200,
		LoginRate:         0.1,
		LoginBurst:        5,
		// Above what the state store may claim at once (its mapped
		// memtables of 32 MiB, a value log file of 64 MiB, compactions'
		// new tables), with room for an operator to act.
		DiskReserveBytes:  512 << 20,
		DiskCheckInterval: time.Second,
	}
}

func (c *Config) validateLimits(v *validator) {
	l := c.Limits
	if l.MaxRequestBytes < 1<<10 || l.MaxRequestBytes > 1<<30 {
		v.add("limits.max_request_bytes", "%d must be between 1024 (1 KiB) and 1073741824 (1 GiB)", l.MaxRequestBytes)
	}
	if l.MaxHeaderBytes < 4<<10 || l.MaxHeaderBytes > 16<<20 {
		v.add("limits.max_header_bytes", "%d must be between 4096 (4 KiB) and 16777216 (16 MiB)", l.MaxHeaderBytes)
	}
	if l.ReadHeaderTimeout <= 0 {
		v.add("limits.read_header_timeout", "%v must be positive (a client that never finishes its header would hold a connection forever)", l.ReadHeaderTimeout)
	}
	switch {
	case l.ReadTimeout < 0:
		v.add("limits.read_timeout", "%v must be 0 (no limit) or positive", l.ReadTimeout)
	case l.ReadTimeout > 0 && l.ReadTimeout < l.ReadHeaderTimeout:
		v.add("limits.read_timeout", "%v must be 0 (no limit) or at least limits.read_header_timeout (%v)", l.ReadTimeout, l.ReadHeaderTimeout)
	}
	if l.IdleTimeout < 0 {
		v.add("limits.idle_timeout", "%v must be 0 (never) or positive", l.IdleTimeout)
	}
	if l.MaxConcurrent < 0 {
		v.add("limits.max_concurrent", "%d must be 0 (no limit) or positive", l.MaxConcurrent)
	}
	if l.QueueWait < 0 || l.QueueWait > 10*time.Second {
		v.add("limits.queue_wait", "%v must be between 0 (refuse at once) and 10s", l.QueueWait)
	}
	if l.DiskReserveBytes < 0 || l.DiskReserveBytes > 1<<40 {
		v.add("limits.disk_reserve_bytes", "%d must be between 0 (no reserve) and 1099511627776 (1 TiB)", l.DiskReserveBytes)
	}
	if l.DiskReservePercent < 0 || l.DiskReservePercent > 50 || l.DiskReservePercent != l.DiskReservePercent {
		v.add("limits.disk_reserve_percent", "%v must be between 0 (none) and 50", l.DiskReservePercent)
	}
	if l.DiskCheckInterval < 10*time.Millisecond || l.DiskCheckInterval > time.Minute {
		v.add("limits.disk_check_interval", "%v must be between 10ms and 1m", l.DiskCheckInterval)
	}
	rateKeys(v, "limits.rate", "limits.burst", l.Rate, l.Burst)
	rateKeys(v, "limits.login_rate", "limits.login_burst", l.LoginRate, l.LoginBurst)
}

// rateKeys checks a token bucket: a rate of 0 is off, otherwise the burst
// must let at least one request through.
func rateKeys(v *validator, rateKey, burstKey string, rate float64, burst int) {
	switch {
	case rate < 0 || rate != rate:
		v.add(rateKey, "%v must be 0 (no limit) or positive", rate)
	case rate > 0 && burst < 1:
		v.add(burstKey, "%d must be at least 1 when %s is set", burst, rateKey)
	}
}
