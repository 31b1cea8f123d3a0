package config

import "time"

// FeedConfig sizes the change feed (tiers/feed): the change log every
// replica keeps in its state store and the watchers its API serves.
type FeedConfig struct {
	// Window is how many changes the node keeps (the oldest go as new ones
	// come). A watcher resuming from an older position is told to re-list.
	// Every replica numbers changes alike whatever its window; a replica
	// with a smaller one only answers fewer old positions.
	Window uint64 `mapstructure:"window"`
	// MaxAge also drops changes older than this (0: only the window).
	MaxAge time.Duration `mapstructure:"max_age"`
	// Buffer is how many recent changes the node holds in memory for its
	// watchers. A watcher that has caught up and then falls further behind
	// than this is cut off (it resumes from its last position).
	Buffer int `mapstructure:"buffer"`
	// MaxWatchers bounds the watch streams, SSE connections and waiting
	// long polls open at once on one replica.
	MaxWatchers int `mapstructure:"max_watchers"`
	// Heartbeat: a watch that passed nothing this long is sent a heartbeat
	// with its position (proxies keep the connection; clients see it live).
	Heartbeat time.Duration `mapstructure:"heartbeat"`
	// PollMaxWait bounds how long a long poll may wait.
	PollMaxWait time.Duration `mapstructure:"poll_max_wait"`
	// WriteTimeout cuts off an SSE client that does not take an event
	// within this long.
	WriteTimeout time.Duration `mapstructure:"write_timeout"`
	// BatchDelay: a watch gathers the changes that follow a first one for
	// this long and sends them in one message (0: each applied chunk at
	// once). It trades a little lag for far fewer messages when many
	// watchers follow a busy node.
	BatchDelay time.Duration `mapstructure:"batch_delay"`
}

// DefaultFeed is the built-in feed configuration.
func DefaultFeed() FeedConfig {
	return FeedConfig{
		Window:       500_000,
		Buffer:       16_384,
		MaxWatchers:  1000,
		Heartbeat:    15 * time.Second,
		PollMaxWait:  30 * time.Second,
		WriteTimeout: 30 * time.Second,
		BatchDelay:   20 * time.Millisecond,
	}
}

func (c *Config) validateFeed(v *validator) {
	f := c.Feed
	if f.Window < 10 || f.Window > 1<<32 {
		v.add("feed.window", "%d must be between 10 and 4294967296 changes", f.Window)
	}
	if f.MaxAge != 0 && f.MaxAge < time.Minute {
		v.add("feed.max_age", "%v must be 0 (the window alone) or at least 1m", f.MaxAge)
	}
	if f.Buffer < 64 || f.Buffer > 1<<22 {
		v.add("feed.buffer", "%d must be between 64 and 4194304 changes", f.Buffer)
	}
	if f.MaxWatchers < 1 {
		v.add("feed.max_watchers", "%d must be at least 1", f.MaxWatchers)
	}
	if f.Heartbeat < 100*time.Millisecond || f.Heartbeat > 5*time.Minute {
		v.add("feed.heartbeat", "%v must be between 100ms and 5m", f.Heartbeat)
	}
	if f.PollMaxWait < time.Second || f.PollMaxWait > 5*time.Minute {
		v.add("feed.poll_max_wait", "%v must be between 1s and 5m", f.PollMaxWait)
	}
	if f.BatchDelay < 0 || f.BatchDelay > time.Second {
		v.add("feed.batch_delay", "%v must be between 0 and 1s", f.BatchDelay)
	}
	if f.WriteTimeout < time.Second {
		v.add("feed.write_timeout", "%v must be at least 1s", f.WriteTimeout)
	}
}
