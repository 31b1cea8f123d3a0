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

func errorsAs(err error, target any) bool { return errors.As(err, target) }

// memStore is the replicated state's identity records, in memory.
type memStore struct {
	mu       sync.Mutex
	accounts map[string]*pb.Account
	keys     map[string]*pb.APIKey
	sessions map[string]*pb.Session
	signing  []*pb.SigningKey
}

var errNotFound = errors.New("not found")

func newMemStore() *memStore {
	return &memStore{accounts: map[string]*pb.Account{}, keys: map[string]*pb.APIKey{}, sessions: map[string]*pb.Session{}}
}

func (m *memStore) GetAccount(n string) (*pb.Account, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if a, ok := m.accounts[n]; ok {
		return a, nil
	}
	return nil, errNotFound
}
func (m *memStore) GetAPIKey(id string) (*pb.APIKey, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if k, ok := m.keys[id]; ok {
		return k, nil
	}
	return nil, errNotFound
}
func (m *memStore) GetSession(id string) (*pb.Session, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s, ok := m.sessions[id]; ok {
		return s, nil
	}
	return nil, errNotFound
}
func (m *memStore) SigningKeys() ([]*pb.SigningKey, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]*pb.SigningKey(nil), m.signing...), nil
}

func setup(t *testing.T, now *time.Time) (*memStore, *Authenticator) {
	t.Helper()
	st := newMemStore()
	hash, err := HashPassword("correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	st.accounts["lead"] = &pb.Account{Name: "lead", DisplayName: "值班长甲", Role: pb.Role_ROLE_SHIFT_LEADER, Unit: "centre", PasswordHash: hash}
	st.sessions["s1"] = &pb.Session{Id: "s1", Account: "lead", RefreshHash: HashToken("refresh"), CreatedUnixMs: now.UnixMilli(), ExpiresUnixMs: now.Add(time.Hour).UnixMilli()}
	a := NewAuthenticator(st, Options{Node: "d-320505", Now: func() time.Time { return *now }})
	if !a.SigningKeyDue() {
		t.Fatal("no key yet, but none due")
	}
	if _, _, err := a.Issue("lead", "s1"); !errors.Is(err, ErrNoSigningKey) {
		t.Fatalf("issue without a key: %v", err)
	}
	st.signing = append(st.signing, &pb.SigningKey{Id: "k1", Secret: []byte(strings.Repeat("x", 32)), CreatedUnixMs: now.UnixMilli()})
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	return st, a
}

func TestNodeTokens(t *testing.T) {
	now := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	st, a := setup(t, &now)
	ctx := context.Background()
	tok, exp, err := a.Issue("lead", "s1")
	if err != nil {
		t.Fatal(err)
	}
	if exp.Sub(now) != DefaultTokenTTL {
		t.Errorf("expiry %v after issue, want %v", exp.Sub(now), DefaultTokenTTL)
	}
	p, err := a.Authenticate(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	if p.ID != "acct:lead" || p.Role != pb.Role_ROLE_SHIFT_LEADER || p.Unit != "centre" || p.Name != "值班长甲" || p.Node != "d-320505" || p.Via != ViaPassword {
		t.Errorf("principal %+v", p)
	}

	refused := func(what, tok string) {
		t.Helper()
		if _, err := a.Authenticate(ctx, tok); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("%s: %v, want ErrUnauthenticated", what, err)
		}
	}
	// Tampered: flip a byte of the payload (the role cannot be edited in).
	parts := strings.Split(tok, ".")
	b := []byte(parts[1])
	b[5] ^= 1
	refused("tampered", parts[0]+"."+string(b)+"."+parts[2])
	refused("garbage", "not-a-token")
	refused("empty", "")
	// Another node's token: the same key, another audience and issuer.
	other := NewAuthenticator(st, Options{Node: "d-320506", Now: func() time.Time { return now }})
	tok2, _, err := other.Issue("lead", "s1")
	if err != nil {
		t.Fatal(err)
	}
	refused("another node's token", tok2)

	// Expired.
	later := now.Add(DefaultTokenTTL + time.Minute)
	expired := NewAuthenticator(st, Options{Node: "d-320505", Now: func() time.Time { return later }})
	if _, err := expired.Authenticate(ctx, tok); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("expired token accepted: %v", err)
	}
	// The same authenticator, which has the token's claims cached, refuses
	// it once it has expired too.
	saved := now
	now = later
	refused("expired (cached)", tok)
	now = saved
	if _, err := a.Authenticate(ctx, tok); err != nil {
		t.Fatalf("token within its life again: %v", err)
	}
	// Logged out: the session is gone.
	st.mu.Lock()
	delete(st.sessions, "s1")
	st.mu.Unlock()
	refused("ended session", tok)
	st.mu.Lock()
	st.sessions["s1"] = &pb.Session{Id: "s1", Account: "lead"}
	// Revoked: tokens issued before the account's cut-off.
	st.accounts["lead"].TokensValidAfterUnixMs = now.Add(2 * time.Second).UnixMilli()
	st.mu.Unlock()
	refused("revoked", tok)
	st.mu.Lock()
	st.accounts["lead"].TokensValidAfterUnixMs = 0
	st.accounts["lead"].Disabled = true
	st.mu.Unlock()
	refused("disabled account", tok)
}

func TestKeyRotation(t *testing.T) {
	now := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	st, a := setup(t, &now)
	old, _, err := a.Issue("lead", "s1")
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(DefaultKeyRotation + time.Minute)
	if !a.SigningKeyDue() {
		t.Fatal("a day-old key is not due for rotation")
	}
	st.mu.Lock()
	st.signing = append(st.signing, &pb.SigningKey{Id: "k2", Secret: []byte(strings.Repeat("y", 32)), CreatedUnixMs: now.UnixMilli()})
	st.mu.Unlock()
	// Another replica learns of the new key when a token names it.
	b := NewAuthenticator(st, Options{Node: "d-320505", Now: func() time.Time { return now }})
	_ = b.Reload()
	st.mu.Lock()
	st.sessions["s1"].ExpiresUnixMs = now.Add(time.Hour).UnixMilli()
	st.mu.Unlock()
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	if a.SigningKeyDue() {
		t.Error("rotation still due after a new key")
	}
	fresh, _, err := a.Issue("lead", "s1")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(mustDecodeHeader(t, fresh)), `"kid":"k2"`) {
		t.Errorf("new token not signed with the newest key: %s", mustDecodeHeader(t, fresh))
	}
	if _, err := b.Authenticate(context.Background(), fresh); err != nil {
		t.Errorf("token of the new key: %v", err)
	}
	// The old token has expired by now; the old key still verifies a
	// token it signed within its life (another authenticator, earlier clock).
	if _, err := a.Authenticate(context.Background(), old); err == nil {
		t.Error("a token older than its TTL was accepted")
	}
}

func mustDecodeHeader(t *testing.T, tok string) []byte {
	t.Helper()
	b, err := decodeSegment(strings.Split(tok, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestAPIKeys(t *testing.T) {
	now := time.Now()
	st, a := setup(t, &now)
	id, key, hash := NewAPIKey()
	st.keys[id] = &pb.APIKey{Id: id, Name: "12345 热线平台", SecretHash: hash, Role: pb.Role_ROLE_INTAKE_CLERK, Sources: []pb.Source{pb.Source_SOURCE_HOTLINE_12345}}
	p, err := a.Authenticate(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	if p.ID != "key:"+id || p.Kind != KindIntegrator || !p.MaySource(pb.Source_SOURCE_HOTLINE_12345) || p.MaySource(pb.Source_SOURCE_APP) {
		t.Errorf("principal %+v", p)
	}
	// The last character changed (to one it is not: a fixed "A" equals it
	// one time in 64).
	last := "A"
	if key[len(key)-1] == 'A' {
		last = "B"
	}
	if _, err := a.Authenticate(context.Background(), key[:len(key)-1]+last); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("wrong secret: %v", err)
	}
	if _, err := a.Authenticate(context.Background(), "chk_nosuchid_secret"); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("unknown key: %v", err)
	}
	st.keys[id].RevokedUnixMs = 1
	if _, err := a.Authenticate(context.Background(), key); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("revoked key: %v", err)
	}
}

func TestLoginDoesNotTellWhetherTheAccountExists(t *testing.T) {
	now := time.Now()
	_, a := setup(t, &now)
	if _, err := a.Login("lead", "correct horse battery"); err != nil {
		t.Fatal(err)
	}
	_, e1 := a.Login("lead", "wrong password!")
	_, e2 := a.Login("nobody", "wrong password!")
	if e1 == nil || e2 == nil || e1.Error() != e2.Error() {
		t.Errorf("wrong password %v, unknown account %v: must be refused alike", e1, e2)
	}
	if _, err := HashPassword("short"); !errors.Is(err, ErrWeakPassword) {
		t.Errorf("short password: %v", err)
	}
}

func TestRefresh(t *testing.T) {
	now := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	st, a := setup(t, &now)
	if _, err := a.Refresh("s1", "refresh"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Refresh("s1", "wrong"); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("wrong refresh token: %v", err)
	}
	now = now.Add(2 * time.Hour)
	if _, err := a.Refresh("s1", "refresh"); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("lapsed session: %v", err)
	}
	_ = st
}
