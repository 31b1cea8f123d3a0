package client

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
)

// Replicas calls a replica group, following its leader: one connection
// per replica address, made on first use and kept until Close, and the
// replica that answered last, which a call tries first. A replica whose
// error is RetryElsewhere (it does not lead, there is no leader yet, it
// cannot be reached) is passed over for the next one. Safe for concurrent
// use.
type Replicas struct {
	name  string
	addrs []string
	opts  []grpc.DialOption

	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
	cur   atomic.Int64
}

// NewReplicas returns the caller of group name, whose replicas are at
// addrs, connecting with opts. It connects to nothing yet.
func NewReplicas(name string, addrs []string, opts ...grpc.DialOption) *Replicas {
	return &Replicas{name: name, addrs: addrs, opts: opts, conns: map[string]*grpc.ClientConn{}}
}

// Name is the group's name, as given.
func (r *Replicas) Name() string { return r.name }

// Len is the number of replicas.
func (r *Replicas) Len() int { return len(r.addrs) }

// Addr is replica i's address.
func (r *Replicas) Addr(i int) string { return r.addrs[i] }

// Current is the index of the replica a call tries first: the one that
// answered last (or the next after one passed over).
func (r *Replicas) Current() int { return int(r.cur.Load()) % max(len(r.addrs), 1) }

// Conn is the connection to replica i (0 <= i < Len), made on first use.
func (r *Replicas) Conn(i int) (*grpc.ClientConn, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	addr := r.addrs[i]
	if c, ok := r.conns[addr]; ok {
		return c, nil
	}
	c, err := grpc.NewClient(addr, r.opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to %s (%s): %w", r.name, addr, err)
	}
	r.conns[addr] = c
	return c, nil
}

// Reconnected returns a channel closed when one of the group's
// connections that is not ready now (connecting, or failed and waiting
// to reconnect) becomes ready, or nil when there is none (every
// connection ready, or none made yet). A caller backing off after a
// round that reached no replica tries again as soon as one is reachable
// (a healed partition) instead of at the end of its backoff. The watch
// ends with ctx; an idle connection is asked to connect.
func (r *Replicas) Reconnected(ctx context.Context) <-chan struct{} {
	r.mu.Lock()
	var down []*grpc.ClientConn
	for _, c := range r.conns {
		if c.GetState() != connectivity.Ready {
			down = append(down, c)
		}
	}
	r.mu.Unlock()
	if len(down) == 0 {
		return nil
	}
	ready := make(chan struct{})
	var once sync.Once
	for _, c := range down {
		go func() {
			for s := c.GetState(); s != connectivity.Ready; s = c.GetState() {
				if s == connectivity.Idle {
					c.Connect()
				}
				if s == connectivity.Shutdown || !c.WaitForStateChange(ctx, s) {
					return
				}
			}
			once.Do(func() { close(ready) })
		}()
	}
	return ready
}

// Close closes the connections. The Replicas connect again when used
// after it.
func (r *Replicas) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for a, c := range r.conns {
		_ = c.Close()
		delete(r.conns, a)
	}
}

// answered makes replica i the one tried first.
func (r *Replicas) answered(i int) { r.cur.Store(int64(i)) }

// passOver moves the first replica past i, unless another call moved it
// already.
func (r *Replicas) passOver(i int) {
	r.cur.CompareAndSwap(int64(i), int64((i+1)%len(r.addrs)))
}

// attempt makes one call to replica i: its error, wrapped with the
// group's name and the replica's address, and its outcome. A replica that
// cannot be connected to is RetryElsewhere.
func (r *Replicas) attempt(ctx context.Context, p Policy, i int, fn func(context.Context, *grpc.ClientConn) error) (Outcome, error) {
	c, err := r.Conn(i)
	if err != nil {
		return RetryElsewhere, err
	}
	err = call(ctx, p.Timeout, func(ctx context.Context) error { return fn(ctx, c) })
	if err == nil {
		r.answered(i)
		return Done, nil
	}
	o := p.Classify(err)
	if o == RetryElsewhere {
		r.passOver(i)
	}
	return o, fmt.Errorf("%s at %s: %w", r.name, r.addrs[i], err)
}

// Round calls fn on the replicas in turn, at most once each, starting with
// the one that answered last, while their outcome is RetryElsewhere. It
// never waits: a caller that loops on its own (the relay) backs off
// between rounds. Any other outcome ends the round: a disk refusal comes
// from the leader, whom another replica would only forward to. Only
// p.Timeout and p.Classify of p are used. The error is nil or an *Error.
func (r *Replicas) Round(ctx context.Context, p Policy, fn func(context.Context, *grpc.ClientConn) error) error {
	p = p.withDefaults()
	start := r.Current()
	var e *Error
	for k := 0; k < len(r.addrs); k++ {
		i := (start + k) % len(r.addrs)
		o, err := r.attempt(ctx, p, i, fn)
		if err == nil {
			return nil
		}
		e = &Error{Outcome: o, Attempts: k + 1, Addr: r.addrs[i], Err: err}
		if ctx.Err() != nil {
			e.Err = fmt.Errorf("%w (last error: %w)", ctx.Err(), err)
			return e
		}
		if o != RetryElsewhere {
			return e
		}
	}
	if e == nil {
		return &Error{Outcome: Final, Err: fmt.Errorf("%s: no replica addresses", r.name)}
	}
	return e
}

// Call calls fn on the group's leader by p: a replica whose outcome is
// RetryElsewhere is passed over at once for the next, and the policy's
// backoff comes after a whole round of them failed; RetryHere and DiskLow
// back off (DiskLow for at least the status's RetryInfo) and call the
// same replica again; Final ends the call. At most p.Attempts calls of fn
// in all (0: until ctx ends). fn must send the same request every time
// (see the package doc on request ids). The error is nil or an *Error.
func (r *Replicas) Call(ctx context.Context, p Policy, fn func(context.Context, *grpc.ClientConn) error) error {
	p = p.withDefaults()
	if len(r.addrs) == 0 {
		return &Error{Outcome: Final, Err: fmt.Errorf("%s: no replica addresses", r.name)}
	}
	b := p.Backoff()
	passed := 0 // replicas passed over since the last wait
	for attempt := 1; ; attempt++ {
		i := r.Current()
		o, err := r.attempt(ctx, p, i, fn)
		if err == nil {
			return nil
		}
		e := &Error{Outcome: o, Attempts: attempt, Addr: r.addrs[i], Err: err}
		if ctx.Err() != nil {
			e.Err = fmt.Errorf("%w (last error: %w)", ctx.Err(), err)
			return e
		}
		if !o.Retryable() || p.Attempts > 0 && attempt >= p.Attempts {
			return e
		}
		if o == RetryElsewhere {
			if passed++; passed < len(r.addrs) {
				continue
			}
		}
		passed = 0
		if !sleep(ctx, Wait(err, b.Next())) {
			e.Err = fmt.Errorf("%w (last error: %w)", ctx.Err(), err)
			return e
		}
	}
}
