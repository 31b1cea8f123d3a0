package auth

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// replicaState is one replica's copy of the identity records and how far
// it has applied the log: apply(i) brings entries up to i in.
type replicaState struct {
	*memStore
	mu      sync.Mutex
	cond    *sync.Cond
	applied uint64
	pending map[uint64]func(*memStore) // index → what the entry writes
	waits   int                        // WaitApplied calls
	onWait  func()                     // run (once) when a wait starts
}

func newReplicaState() *replicaState {
	r := &replicaState{memStore: newMemStore(), pending: map[uint64]func(*memStore){}}
	r.cond = sync.NewCond(&r.mu)
	return r
}

func (r *replicaState) AppliedIndex() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.applied
}

func (r *replicaState) WaitApplied(ctx context.Context, i uint64) error {
	r.mu.Lock()
	r.waits++
	hook := r.onWait
	r.onWait = nil
	r.mu.Unlock()
	if hook != nil {
		go hook()
	}
	stop := context.AfterFunc(ctx, func() { r.mu.Lock(); r.cond.Broadcast(); r.mu.Unlock() })
	defer stop()
	r.mu.Lock()
	defer r.mu.Unlock()
	for r.applied < i {
		if err := ctx.Err(); err != nil {
			return err
		}
		r.cond.Wait()
	}
	return nil
}

// log records entry i's write, to be applied by apply.
func (r *replicaState) log(i uint64, w func(*memStore)) { r.pending[i] = w }

func (r *replicaState) apply(upTo uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for ; r.applied < upTo; r.applied++ {
		if w := r.pending[r.applied+1]; w != nil {
			w(r.memStore)
		}
	}
	r.cond.Broadcast()
}

// TestTokenOfALoginAReplicaHasNotApplied: a token issued by one replica
// after its login's session was applied there (index 3) is shown to
// another replica still at index 1 (restarted, or behind its leader). The
// replica waits for the session rather than refuse a good token; when it
// does not catch up in time it answers ErrReplicaBehind (Unavailable: try
// another replica), never ErrUnauthenticated. A token whose session
// really ended, on a replica that has applied the token's index, is
// refused at once.
func TestTokenOfALoginAReplicaHasNotApplied(t *testing.T) {
	now := time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	hash, err := HashPassword("correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	entries := map[uint64]func(*memStore){
		1: func(m *memStore) {
			m.accounts["lead"] = &pb.Account{Name: "lead", Role: pb.Role_ROLE_SHIFT_LEADER, Unit: "centre", PasswordHash: hash}
		},
		2: func(m *memStore) {
			m.signing = append(m.signing, &pb.SigningKey{Id: "k1", Secret: []byte(strings.Repeat("k", 32)), CreatedUnixMs: now.UnixMilli()})
		},
		3: func(m *memStore) {
			m.sessions["s1"] = &pb.Session{Id: "s1", Account: "lead", CreatedUnixMs: now.UnixMilli(), ExpiresUnixMs: now.Add(time.Hour).UnixMilli()}
		},
	}
	leader, behind := newReplicaState(), newReplicaState()
	for i, w := range entries {
		leader.log(i, w)
		behind.log(i, w)
	}
	leader.apply(3)
	behind.apply(1)
	issuer := NewAuthenticator(leader, Options{Node: "d-320505", Now: clock, Progress: leader})
	tok, _, err := issuer.Issue("lead", "s1")
	if err != nil {
		t.Fatal(err)
	}
	if got := unverifiedIndex(tok); got != 3 {
		t.Fatalf("the token's idx claim = %d, want 3 (the issuer's applied index)", got)
	}

	// Behind, and it catches up while the call waits: the call passes.
	follower := NewAuthenticator(behind, Options{Node: "d-320505", Now: clock, Progress: behind, CatchUp: 10 * time.Second})
	behind.onWait = func() {
		behind.apply(2) // the signing key first, then the session
		behind.apply(3)
	}
	p, err := follower.Authenticate(context.Background(), tok)
	if err != nil {
		t.Fatalf("a replica that catches up while the call waits: %v", err)
	}
	if p.Name != "lead" || p.Session != "s1" || behind.waits != 1 {
		t.Fatalf("principal %+v after %d waits, want lead in session s1 after 1", p, behind.waits)
	}

	// Behind, and it does not catch up within CatchUp: ErrReplicaBehind.
	stuck := newReplicaState()
	for i, w := range entries {
		stuck.log(i, w)
	}
	stuck.apply(2) // knows the key, not the session
	slow := NewAuthenticator(stuck, Options{Node: "d-320505", Now: clock, Progress: stuck, CatchUp: 100 * time.Millisecond})
	_, err = slow.Authenticate(context.Background(), tok)
	if !errors.Is(err, ErrReplicaBehind) || errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("a replica that stays behind: %v, want ErrReplicaBehind and not ErrUnauthenticated", err)
	}

	// Without Progress (a node of an older release) the refusal is what it
	// always was.
	old := NewAuthenticator(stuck, Options{Node: "d-320505", Now: clock})
	if _, err := old.Authenticate(context.Background(), tok); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("without Progress: %v, want ErrUnauthenticated", err)
	}

	// Caught up, and the session ended (logout): refused, without a wait.
	leader.mu.Lock()
	delete(leader.sessions, "s1")
	leader.mu.Unlock()
	if _, err := issuer.Authenticate(context.Background(), tok); !errors.Is(err, ErrUnauthenticated) || errors.Is(err, ErrReplicaBehind) {
		t.Fatalf("an ended session on a replica past the token's index: %v, want ErrUnauthenticated", err)
	}
	if leader.waits != 0 {
		t.Fatalf("an ended session on a replica past the token's index waited %d times", leader.waits)
	}

	// A token with a bad signature, on a replica behind that knows the
	// signing key, is refused without a wait: only a key, account or
	// session missing here is waited for.
	forged := tok[:strings.LastIndex(tok, ".")+1] + "AAAA"
	waits := stuck.waits
	if _, err := slow.Authenticate(context.Background(), forged); !errors.Is(err, ErrUnauthenticated) || errors.Is(err, ErrReplicaBehind) {
		t.Fatalf("a forged signature on a replica behind: %v, want ErrUnauthenticated", err)
	}
	if stuck.waits != waits {
		t.Fatalf("a forged signature on a replica behind waited %d times", stuck.waits-waits)
	}
}
