package auth

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// Store is the part of the node's replicated state the authenticator reads.
type Store interface {
	GetAccount(name string) (*pb.Account, error)
	GetAPIKey(id string) (*pb.APIKey, error)
	GetSession(id string) (*pb.Session, error)
	SigningKeys() ([]*pb.SigningKey, error)
}

// Progress is how far this replica's copy of the replicated state has got
// (tiers/node.Node): a token names the log index its session was known at,
// and a replica behind it waits for it rather than refuse the token.
type Progress interface {
	AppliedIndex() uint64
	WaitApplied(ctx context.Context, index uint64) error
}

// Verifier checks a token from the city's identity provider.
type Verifier interface {
	Verify(ctx context.Context, raw string) (*Principal, error)
}

// Options configure an Authenticator.
type Options struct {
	// Node is the name principals are bound to (topology name, or node id).
	Node string
	// TokenTTL is how long an access token is valid; SessionTTL how long a
	// login can be refreshed; KeyRotation how old the newest signing key
	// may grow before the leader makes another.
	TokenTTL, SessionTTL, KeyRotation time.Duration
	// OIDC, when set, verifies tokens of the city's identity provider.
	OIDC Verifier
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// Progress, when set, stamps the replica's applied index into the
	// tokens it issues, and lets a replica that has not yet applied a
	// token's session wait for it (up to CatchUp) instead of refusing the
	// token: a follower just restarted, or a few entries behind its leader,
	// then answers the call, or ErrReplicaBehind (Unavailable: try another
	// replica), never Unauthenticated.
	Progress Progress
	// CatchUp bounds that wait (0: DefaultCatchUp).
	CatchUp time.Duration
}

// Defaults of Options.
const (
	DefaultTokenTTL    = 15 * time.Minute
	DefaultSessionTTL  = 12 * time.Hour
	DefaultKeyRotation = 24 * time.Hour
	DefaultCatchUp     = 2 * time.Second
)

// Authenticator turns a presented credential into a Principal.
type Authenticator struct {
	opts   Options
	st     Store
	now    func() time.Time
	keys   keyRing
	parsed parsedTokens
}

// NewAuthenticator reads st for accounts, keys, sessions and signing keys.
func NewAuthenticator(st Store, opts Options) *Authenticator {
	if opts.TokenTTL <= 0 {
		opts.TokenTTL = DefaultTokenTTL
	}
	if opts.SessionTTL <= 0 {
		opts.SessionTTL = DefaultSessionTTL
	}
	if opts.KeyRotation <= 0 {
		opts.KeyRotation = DefaultKeyRotation
	}
	if opts.CatchUp <= 0 {
		opts.CatchUp = DefaultCatchUp
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	return &Authenticator{opts: opts, st: st, now: now}
}

// Options returns the authenticator's settings.
func (a *Authenticator) Options() Options { return a.opts }

// Authenticate checks a bearer credential: an integrator key ("chk_…"), one
// of the node's own tokens, or a token of the city's identity provider.
// Every failure wraps ErrUnauthenticated; the reason is for the server's
// log, never for the caller (it may name an account).
func (a *Authenticator) Authenticate(ctx context.Context, cred string) (*Principal, error) {
	cred = strings.TrimSpace(cred)
	if cred == "" {
		return nil, fmt.Errorf("%w: no credentials", ErrUnauthenticated)
	}
	if id, secret, ok := ParseAPIKey(cred); ok {
		return a.apiKey(id, secret)
	}
	if isNodeToken(cred, a.opts.Node) {
		return a.verifyNodeToken(ctx, cred)
	}
	if a.opts.OIDC != nil {
		p, err := a.opts.OIDC.Verify(ctx, cred)
		if err != nil {
			if !errors.Is(err, ErrUnauthenticated) {
				err = fmt.Errorf("%w: %w", ErrUnauthenticated, err)
			}
			return nil, err
		}
		if p.Node == "" {
			p.Node = a.opts.Node
		}
		return p, nil
	}
	return nil, fmt.Errorf("%w: not a token of this node and no identity provider is configured", ErrUnauthenticated)
}

func (a *Authenticator) apiKey(id, secret string) (*Principal, error) {
	k, err := a.st.GetAPIKey(id)
	if err != nil {
		return nil, fmt.Errorf("%w: key %q: %w", ErrUnauthenticated, id, err)
	}
	if !secretMatches(secret, k.SecretHash) {
		return nil, fmt.Errorf("%w: key %q: wrong secret", ErrUnauthenticated, id)
	}
	if k.RevokedUnixMs != 0 {
		return nil, fmt.Errorf("%w: key %q was revoked", ErrUnauthenticated, id)
	}
	return &Principal{
		ID: "key:" + k.Id, Kind: KindIntegrator, Name: k.Name, Role: k.Role, Node: a.opts.Node,
		Unit: k.Unit, Sources: k.Sources, ReadAll: k.ReadAll, Via: ViaAPIKey,
	}, nil
}

// Login checks a password and returns the account (the API then records a
// session through the log and issues the tokens). Its error never says
// whether the account exists.
func (a *Authenticator) Login(name, password string) (*pb.Account, error) {
	acct, err := a.st.GetAccount(name)
	var hash []byte
	if err == nil && !acct.Disabled {
		hash = acct.PasswordHash
	}
	if !CheckPassword(hash, password) {
		return nil, fmt.Errorf("%w: wrong user name or password", ErrUnauthenticated)
	}
	return acct, nil
}

// Refresh checks a refresh token of session sid and returns its account.
func (a *Authenticator) Refresh(sid, token string) (*pb.Account, error) {
	s, err := a.st.GetSession(sid)
	if err != nil || !secretMatches(token, s.RefreshHash) {
		return nil, fmt.Errorf("%w: refresh token unknown or ended", ErrUnauthenticated)
	}
	if a.now().UnixMilli() >= s.ExpiresUnixMs {
		return nil, fmt.Errorf("%w: session expired", ErrUnauthenticated)
	}
	acct, err := a.st.GetAccount(s.Account)
	if err != nil || acct.Disabled || s.CreatedUnixMs < acct.TokensValidAfterUnixMs {
		return nil, fmt.Errorf("%w: refresh token unknown or ended", ErrUnauthenticated)
	}
	return acct, nil
}

// isNodeToken reports whether a JWT names this node as its issuer, by a
// cheap look at its payload (the signature is checked afterwards).
func isNodeToken(raw, node string) bool {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return false
	}
	payload, err := decodeSegment(parts[1])
	if err != nil {
		return false
	}
	return strings.Contains(string(payload), `"iss":"`+issuer(node)+`"`)
}
