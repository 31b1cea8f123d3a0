package client

import (
	"context"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v5"
)

// Policy is the one retry policy of cityhub's callers: exponential
// backoff from Initial, by Multiplier, capped at Max, each delay moved at
// random by up to ±Jitter of itself; at most Attempts calls (0: until the
// context ends), each bounded by Timeout (0: by the context only). The
// zero Policy is usable: 50 ms doubling to 5 s with 20 % jitter, until the
// context ends.
type Policy struct {
	Initial    time.Duration
	Max        time.Duration
	Multiplier float64
	Jitter     float64
	Attempts   int
	Timeout    time.Duration
	// Classify decides the outcome of an error (nil: Classify). A caller
	// that must treat some code otherwise wraps Classify (ClassifyAlso).
	Classify func(error) Outcome
}

// Default values of a Policy.
const (
	DefaultInitial    = 50 * time.Millisecond
	DefaultMax        = 5 * time.Second
	DefaultMultiplier = 2.0
	DefaultJitter     = 0.2
)

func (p Policy) withDefaults() Policy {
	if p.Initial <= 0 {
		p.Initial = DefaultInitial
	}
	if p.Max <= 0 {
		p.Max = max(DefaultMax, p.Initial)
	}
	if p.Max < p.Initial {
		p.Max = p.Initial
	}
	if p.Multiplier < 1 {
		p.Multiplier = DefaultMultiplier
	}
	if p.Jitter <= 0 || p.Jitter >= 1 {
		p.Jitter = DefaultJitter
	}
	if p.Classify == nil {
		p.Classify = Classify
	}
	return p
}

// Backoff is the policy's sequence of delays, for a loop that retries on
// its own (the relay's send loop, a watch that reconnects). Not safe for
// concurrent use: one per loop.
type Backoff struct {
	b   *backoff.ExponentialBackOff
	max time.Duration
}

// Backoff starts the policy's sequence of delays.
func (p Policy) Backoff() *Backoff {
	p = p.withDefaults()
	b := &backoff.ExponentialBackOff{
		InitialInterval: p.Initial, RandomizationFactor: p.Jitter, Multiplier: p.Multiplier, MaxInterval: p.Max,
	}
	b.Reset()
	return &Backoff{b: b, max: p.Max}
}

// Next is the next delay, never above the policy's Max.
func (b *Backoff) Next() time.Duration { return min(b.b.NextBackOff(), b.max) }

// Reset starts the sequence again (after a success).
func (b *Backoff) Reset() { b.b.Reset() }

// Do calls fn until it succeeds, its error's outcome is Final, Attempts
// calls were made or ctx ends, backing off between calls (after a disk
// refusal for at least its RetryInfo). It is for one address, where the
// server forwards to its leader: RetryElsewhere means "again, later" here.
// fn must send the same request every time (see the package doc on
// request ids). The error is nil or an *Error.
func Do(ctx context.Context, p Policy, fn func(context.Context) error) error {
	p = p.withDefaults()
	b := p.Backoff()
	for attempt := 1; ; attempt++ {
		err := call(ctx, p.Timeout, fn)
		if err == nil {
			return nil
		}
		o := p.Classify(err)
		if ctx.Err() != nil {
			return &Error{Outcome: o, Attempts: attempt, Err: fmt.Errorf("%w (last error: %w)", ctx.Err(), err)}
		}
		if !o.Retryable() || p.Attempts > 0 && attempt >= p.Attempts {
			return &Error{Outcome: o, Attempts: attempt, Err: err}
		}
		if !sleep(ctx, Wait(err, b.Next())) {
			return &Error{Outcome: o, Attempts: attempt, Err: fmt.Errorf("%w (last error: %w)", ctx.Err(), err)}
		}
	}
}

func call(ctx context.Context, timeout time.Duration, fn func(context.Context) error) error {
	if timeout <= 0 {
		return fn(ctx)
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return fn(cctx)
}

// sleep waits d or until ctx ends; it reports whether ctx is still on.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
