package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// ErrNoSigningKey: the node has no key to sign tokens with yet (the API
// makes one through the log, then signs).
var ErrNoSigningKey = errors.New("no token signing key yet")

// claims are the node's own access tokens: a JWT (HS256) naming the
// account and its login session, bound to this node.
type claims struct {
	jwt.RegisteredClaims
	Session string `json:"sid"`
	// Index is the log index the issuing replica had applied, at or after
	// the session's (0 from a node without Options.Progress, or a token of
	// an older release): a replica that has applied less may not know the
	// session, its account or its signing key yet.
	Index uint64 `json:"idx,omitempty"`
}

// keyRing caches the node's signing keys from its replicated state.
type keyRing struct {
	mu     sync.RWMutex
	keys   map[string][]byte
	newest *pb.SigningKey
}

func (k *keyRing) load(st Store) error {
	keys, err := st.SigningKeys()
	if err != nil {
		return fmt.Errorf("read signing keys: %w", err)
	}
	m := make(map[string][]byte, len(keys))
	var newest *pb.SigningKey
	for _, sk := range keys {
		m[sk.Id] = sk.Secret
		if newest == nil || sk.CreatedUnixMs > newest.CreatedUnixMs {
			newest = sk
		}
	}
	k.mu.Lock()
	k.keys, k.newest = m, newest
	k.mu.Unlock()
	return nil
}

func (k *keyRing) get(id string) ([]byte, bool) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	b, ok := k.keys[id]
	return b, ok
}

func (k *keyRing) current() *pb.SigningKey {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.newest
}

// issuer is the iss of the node's tokens.
func issuer(node string) string { return "cityhub/" + node }

// Issue signs an access token for account name in session sid with the
// newest signing key, valid for the authenticator's token TTL.
func (a *Authenticator) Issue(name, sid string) (string, time.Time, error) {
	key := a.keys.current()
	if key == nil {
		if err := a.keys.load(a.st); err != nil {
			return "", time.Time{}, err
		}
		if key = a.keys.current(); key == nil {
			return "", time.Time{}, ErrNoSigningKey
		}
	}
	now := a.now()
	exp := now.Add(a.opts.TokenTTL)
	c := claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: issuer(a.opts.Node), Subject: name, Audience: jwt.ClaimStrings{a.opts.Node},
			IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now.Add(-time.Minute)),
			ExpiresAt: jwt.NewNumericDate(exp),
		},
		Session: sid,
	}
	if a.opts.Progress != nil {
		c.Index = a.opts.Progress.AppliedIndex()
	}
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, c)
	t.Header["kid"] = key.Id
	s, err := t.SignedString(key.Secret)
	return s, exp, err
}

// SigningKeyDue reports whether the leader should make a new signing key:
// none yet, or the newest is older than the rotation period.
func (a *Authenticator) SigningKeyDue() bool {
	key := a.keys.current()
	if key == nil {
		_ = a.keys.load(a.st)
		key = a.keys.current()
	}
	return key == nil || a.now().Sub(time.UnixMilli(key.CreatedUnixMs)) > a.opts.KeyRotation
}

// Reload rereads the signing keys (after the API proposed a new one).
func (a *Authenticator) Reload() error { return a.keys.load(a.st) }

// verifyNodeToken checks one of the node's own tokens and returns the
// account it names. A token whose signing key, account or session this
// replica does not know, issued at a log index this replica has not yet
// applied, waits for the replica to catch up (Options.Progress), and
// fails with ErrReplicaBehind when it does not in time.
func (a *Authenticator) verifyNodeToken(ctx context.Context, raw string) (*Principal, error) {
	p, err := a.checkNodeToken(raw)
	if err == nil || a.opts.Progress == nil {
		return p, err
	}
	idx := unverifiedIndex(raw)
	applied := a.opts.Progress.AppliedIndex()
	if !errors.Is(err, errNotHere) || idx <= applied {
		return nil, err // a bad or expired token, or one this replica could judge: a real refusal
	}
	wctx, cancel := context.WithTimeout(ctx, a.opts.CatchUp)
	defer cancel()
	if werr := a.opts.Progress.WaitApplied(wctx, idx); werr != nil {
		return nil, fmt.Errorf("%w: the token was issued at log index %d, this replica has applied %d (%v); here: %v",
			ErrReplicaBehind, idx, a.opts.Progress.AppliedIndex(), werr, err)
	}
	return a.checkNodeToken(raw)
}

// checkNodeToken checks a node token against this replica's state as it is.
func (a *Authenticator) checkNodeToken(raw string) (*Principal, error) {
	c, err := a.parsed.get(raw, a.now())
	if err != nil {
		if c, err = a.parse(raw); err != nil {
			return nil, err
		}
		a.parsed.put(raw, c)
	}
	acct, err := a.st.GetAccount(c.Subject)
	if err != nil {
		return nil, fmt.Errorf("%w: token of account %q: %w: %w", ErrUnauthenticated, c.Subject, errNotHere, err)
	}
	if acct.Disabled {
		return nil, fmt.Errorf("%w: account %q is disabled", ErrUnauthenticated, c.Subject)
	}
	if c.IssuedAt == nil || c.IssuedAt.Time.UnixMilli() < acct.TokensValidAfterUnixMs-999 {
		return nil, fmt.Errorf("%w: token of %q issued before its tokens were revoked", ErrUnauthenticated, c.Subject)
	}
	if _, err := a.st.GetSession(c.Session); err != nil {
		return nil, fmt.Errorf("%w: session of %q ended: %w: %w", ErrUnauthenticated, c.Subject, errNotHere, err)
	}
	p := AccountPrincipal(acct, a.opts.Node, ViaPassword)
	p.Session = c.Session
	return p, nil
}

// errNotHere marks a token naming a signing key, account or session this
// replica's state lacks: ended, or not applied here yet.
var errNotHere = errors.New("not in this replica's state")

// unverifiedIndex is the idx claim of a node token, read without checking
// the signature: it only decides whether to wait (bounded) before the
// token is checked again, never whether the token is accepted.
func unverifiedIndex(raw string) uint64 {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return 0
	}
	payload, err := decodeSegment(parts[1])
	if err != nil {
		return 0
	}
	var c struct {
		Index uint64 `json:"idx"`
	}
	if json.Unmarshal(payload, &c) != nil {
		return 0
	}
	return c.Index
}

// parse checks a token's signature and claims.
func (a *Authenticator) parse(raw string) (*claims, error) {
	var c claims
	_, err := jwt.ParseWithClaims(raw, &c, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		if b, ok := a.keys.get(kid); ok {
			return b, nil
		}
		if err := a.keys.load(a.st); err != nil { // a key made since the last load
			return nil, err
		}
		if b, ok := a.keys.get(kid); ok {
			return b, nil
		}
		return nil, fmt.Errorf("%w: signing key %q", errNotHere, kid)
	}, jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}), jwt.WithIssuer(issuer(a.opts.Node)),
		jwt.WithAudience(a.opts.Node), jwt.WithExpirationRequired(), jwt.WithIssuedAt(),
		jwt.WithLeeway(30*time.Second), jwt.WithTimeFunc(a.now))
	if err != nil {
		return nil, fmt.Errorf("%w: token: %w", ErrUnauthenticated, err)
	}
	return &c, nil
}

// parsedTokens remembers the claims of tokens whose signature checked out,
// so a client that sends the same token on every call pays for the
// signature and the JSON once. Expiry is checked on every use; the
// account and the session (disabled, revoked, logged out) are read every
// time, so revocation still takes effect at once.
type parsedTokens struct {
	mu sync.Mutex
	m  map[string]*claims
}

// maxParsedTokens bounds the memory: past it the cache starts afresh.
const maxParsedTokens = 10000

var errNotCached = errors.New("not cached")

func (p *parsedTokens) get(raw string, now time.Time) (*claims, error) {
	p.mu.Lock()
	c, ok := p.m[raw]
	p.mu.Unlock()
	if !ok || c.ExpiresAt == nil || !now.Before(c.ExpiresAt.Time.Add(30*time.Second)) {
		return nil, errNotCached
	}
	return c, nil
}

func (p *parsedTokens) put(raw string, c *claims) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil || len(p.m) >= maxParsedTokens {
		p.m = make(map[string]*claims)
	}
	p.m[raw] = c
}

// AccountPrincipal is the principal of an account on node.
func AccountPrincipal(acct *pb.Account, node, via string) *Principal {
	name := acct.DisplayName
	if name == "" {
		name = acct.Name
	}
	return &Principal{
		ID: "acct:" + acct.Name, Kind: KindPerson, Name: name, Role: acct.Role, Node: node,
		Unit: acct.Unit, Grids: acct.Grids, Via: via,
	}
}
