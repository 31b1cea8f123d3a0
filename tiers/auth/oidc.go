package auth

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// OIDCConfig is the city's identity provider (OpenID Connect), under
// auth.oidc in the node's configuration. An empty Issuer turns OIDC off.
//
// There is deliberately no way to skip the issuer, audience, expiry or
// signature checks.
type OIDCConfig struct {
	// Issuer is the provider's issuer URL, exactly as its discovery
	// document (Issuer + "/.well-known/openid-configuration") states it.
	Issuer string `mapstructure:"issuer" yaml:"issuer"`
	// Audience must be in a token's aud: the client id cityhub is
	// registered under (ID tokens), or the audience the provider puts in
	// JWT access tokens meant for cityhub.
	Audience string `mapstructure:"audience" yaml:"audience"`
	// RoleClaim holds the caller's role (default "cityhub_role").
	RoleClaim string `mapstructure:"role_claim" yaml:"role_claim"`
	// UnitClaim holds the unit the caller belongs to (default
	// "cityhub_unit").
	UnitClaim string `mapstructure:"unit_claim" yaml:"unit_claim"`
	// NodeClaim holds the node the token is for (default "cityhub_node").
	// When present it must name this node.
	NodeClaim string `mapstructure:"node_claim" yaml:"node_claim"`
	// GridsClaim holds the grid code prefixes an inspector patrols
	// (default "cityhub_grids"): a string array, or one string separated by
	// spaces or commas.
	GridsClaim string `mapstructure:"grids_claim" yaml:"grids_claim"`
	// NameClaim holds the name the history shows (default "name"; then
	// preferred_username, then the subject).
	NameClaim string `mapstructure:"name_claim" yaml:"name_claim"`
	// RoleMap maps the provider's role values to cityhub roles
	// ("SHIFT_LEADER" or "ROLE_SHIFT_LEADER"). A value not in the map is
	// taken as a role name itself ("DISPATCHER").
	RoleMap map[string]string `mapstructure:"role_map" yaml:"role_map"`
	// CAFile is an extra PEM CA bundle trusted for the provider's TLS
	// (besides the system roots).
	CAFile string `mapstructure:"ca_file" yaml:"ca_file"`
}

// Enabled reports whether OIDC is configured.
func (c OIDCConfig) Enabled() bool { return c.Issuer != "" }

// WithDefaults returns c with the default claim names filled in.
func (c OIDCConfig) WithDefaults() OIDCConfig {
	def := func(s *string, v string) {
		if strings.TrimSpace(*s) == "" {
			*s = v
		}
	}
	def(&c.RoleClaim, "cityhub_role")
	def(&c.UnitClaim, "cityhub_unit")
	def(&c.NodeClaim, "cityhub_node")
	def(&c.GridsClaim, "cityhub_grids")
	def(&c.NameClaim, "name")
	return c
}

// Validate checks c (after WithDefaults) and names the bad field. A
// disabled config (no issuer) is valid whatever else it holds.
func (c OIDCConfig) Validate() error {
	if c.Issuer == "" {
		return nil
	}
	u, err := url.Parse(c.Issuer)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("auth.oidc.issuer: %q is not an http(s) URL", c.Issuer)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("auth.oidc.issuer: %q must have no query or fragment", c.Issuer)
	}
	if strings.TrimSpace(c.Audience) == "" {
		return errors.New("auth.oidc.audience: required when auth.oidc.issuer is set")
	}
	for _, f := range []struct{ name, v string }{
		{"role_claim", c.RoleClaim}, {"unit_claim", c.UnitClaim}, {"node_claim", c.NodeClaim},
		{"grids_claim", c.GridsClaim}, {"name_claim", c.NameClaim},
	} {
		if strings.TrimSpace(f.v) == "" {
			return fmt.Errorf("auth.oidc.%s: empty (call WithDefaults)", f.name)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(c.RoleMap)) {
		if _, err := personRole(c.RoleMap[k]); err != nil {
			return fmt.Errorf("auth.oidc.role_map[%q]: %v", k, err)
		}
	}
	if c.CAFile != "" {
		if _, err := os.Stat(c.CAFile); err != nil {
			return fmt.Errorf("auth.oidc.ca_file: %v", err)
		}
	}
	return nil
}

// personRole parses a role name ("SHIFT_LEADER", "ROLE_SHIFT_LEADER", any
// case) into a role a person may hold. The integrator roles (CITIZEN,
// SYSTEM) belong to API keys, never to a person.
func personRole(name string) (pb.Role, error) {
	n := strings.ToUpper(strings.TrimSpace(name))
	if n == "" {
		return 0, errors.New("empty role")
	}
	if !strings.HasPrefix(n, "ROLE_") {
		n = "ROLE_" + n
	}
	v, ok := pb.Role_value[n]
	r := pb.Role(v)
	switch {
	case !ok || r == pb.Role_ROLE_UNSPECIFIED:
		return 0, fmt.Errorf("unknown role %q", name)
	case r == pb.Role_ROLE_CITIZEN || r == pb.Role_ROLE_SYSTEM:
		return 0, fmt.Errorf("role %s is for integrator keys, not people", r)
	}
	return r, nil
}

// The discovery back-off after a failure, doubling up to the maximum.
const (
	oidcMinBackoff  = time.Second
	oidcMaxBackoff  = time.Minute
	oidcHTTPTimeout = 10 * time.Second
	// A token with an unknown key id fetches the key set again at most
	// this often, so forged tokens cannot make a node hammer the provider.
	oidcMinKeyRefresh = 10 * time.Second
)

// OIDC verifies tokens from the city's identity provider.
//
// Discovery is lazy: NewOIDC contacts nobody, so a node starts while its
// identity provider is down. The first Verify (or Discover) fetches the
// discovery document; a failure refuses the token and is retried on a
// later call once a back-off has passed (1s doubling to 1m, so a flood of
// requests while the provider is down does not become a flood of discovery
// requests). Once discovery has worked it is kept for the life of the OIDC.
// The signing keys (JWKS) are fetched on first use and fetched again when a
// token names a key id that is not cached, at most every 10s, so the
// provider's key rotation needs no restart (a token signed with a new key
// in the first seconds after a fetch may be refused once) and tokens with
// made-up key ids cannot make the node flood the provider.
type OIDC struct {
	cfg    OIDCConfig
	node   string
	client *http.Client
	base   context.Context // carries client; never cancelled

	minBackoff, maxBackoff time.Duration

	mu       sync.Mutex
	verifier *oidc.IDTokenVerifier
	keys     *keySet
	// minRefresh spaces out key set fetches for unknown key ids.
	minRefresh time.Duration
	lastErr    error
	retryAt    time.Time
	backoff    time.Duration
}

// NewOIDC returns a verifier for cfg (defaults applied, validated) on the
// node named node: a token whose node claim names another node is
// refused. It does not contact the provider (see OIDC).
func NewOIDC(ctx context.Context, cfg OIDCConfig, node string) (*OIDC, error) {
	cfg = cfg.WithDefaults()
	if cfg.Issuer == "" {
		return nil, errors.New("auth.oidc.issuer: required to enable OIDC")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("auth.oidc.ca_file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("auth.oidc.ca_file: %s holds no PEM certificate", cfg.CAFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	client := &http.Client{Transport: tr, Timeout: oidcHTTPTimeout}
	return &OIDC{
		cfg:        cfg,
		node:       node,
		client:     client,
		base:       oidc.ClientContext(context.WithoutCancel(ctx), client),
		minBackoff: oidcMinBackoff,
		maxBackoff: oidcMaxBackoff,
		minRefresh: oidcMinKeyRefresh,
	}, nil
}

// Issuer is the configured issuer URL.
func (o *OIDC) Issuer() string { return o.cfg.Issuer }

// Discover fetches the provider's discovery document now unless it already
// has, honouring the back-off after a failure. A node may call it at start
// to log an unreachable provider early; Verify calls it itself.
func (o *OIDC) Discover(ctx context.Context) error {
	_, err := o.discover(ctx)
	return err
}

func (o *OIDC) discover(ctx context.Context) (*oidc.IDTokenVerifier, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.verifier != nil {
		return o.verifier, nil
	}
	now := time.Now()
	if o.lastErr != nil && now.Before(o.retryAt) {
		return nil, fmt.Errorf("identity provider %s discovery failed, retrying in %s: %w",
			o.cfg.Issuer, o.retryAt.Sub(now).Round(time.Millisecond), o.lastErr)
	}
	// The discovery request is bounded by ctx and the client's timeout; the
	// provider (and its key set) keeps only o.base, which is never
	// cancelled.
	dctx, cancel := context.WithTimeout(o.base, oidcHTTPTimeout)
	stop := context.AfterFunc(ctx, cancel)
	p, err := oidc.NewProvider(dctx, o.cfg.Issuer)
	stop()
	cancel()
	if err != nil {
		if o.backoff == 0 {
			o.backoff = o.minBackoff
		} else {
			o.backoff = min(2*o.backoff, o.maxBackoff)
		}
		o.lastErr, o.retryAt = err, time.Now().Add(o.backoff)
		return nil, fmt.Errorf("identity provider %s discovery: %w", o.cfg.Issuer, err)
	}
	var meta struct {
		JWKS string   `json:"jwks_uri"`
		Algs []string `json:"id_token_signing_alg_values_supported"`
	}
	if err := p.Claims(&meta); err != nil || meta.JWKS == "" {
		o.lastErr, o.retryAt = fmt.Errorf("discovery document has no jwks_uri (%v)", err), time.Now().Add(o.minBackoff)
		return nil, fmt.Errorf("identity provider %s: %w", o.cfg.Issuer, o.lastErr)
	}
	var algs []string
	for _, a := range meta.Algs {
		if slices.Contains(jwsAlgs, jose.SignatureAlgorithm(a)) {
			algs = append(algs, a)
		}
	}
	o.keys = &keySet{url: meta.JWKS, client: o.client, minRefresh: o.minRefresh}
	o.verifier = oidc.NewVerifier(o.cfg.Issuer, o.keys, &oidc.Config{ClientID: o.cfg.Audience, SupportedSigningAlgs: algs})
	o.lastErr, o.backoff = nil, 0
	return o.verifier, nil
}

// LooksLikeJWT reports cheaply whether token has the shape of a compact JWS
// (three base64url parts, a JSON header): a bearer token that does not is
// no OIDC token and can go to the node's own token check.
func LooksLikeJWT(token string) bool {
	h, rest, ok := strings.Cut(token, ".")
	if !ok || !strings.HasPrefix(h, "eyJ") {
		return false
	}
	p, s, ok := strings.Cut(rest, ".")
	return ok && p != "" && s != "" && !strings.Contains(s, ".")
}

func unauthenticated(format string, args ...any) error {
	return fmt.Errorf("%w: oidc: %s", ErrUnauthenticated, fmt.Sprintf(format, args...))
}

// Verify checks rawToken (an ID token, or a JWT access token whose aud
// holds the audience) for signature, issuer, audience and expiry, and maps
// its claims to a person. Every refusal wraps ErrUnauthenticated and says
// why, for the server's log (not for the caller).
func (o *OIDC) Verify(ctx context.Context, rawToken string) (*Principal, error) {
	if !LooksLikeJWT(rawToken) {
		return nil, unauthenticated("token is not a JWT")
	}
	v, err := o.discover(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: oidc: %v", ErrUnauthenticated, err)
	}
	tok, err := v.Verify(ctx, rawToken)
	if err != nil {
		var exp *oidc.TokenExpiredError
		if errors.As(err, &exp) {
			return nil, unauthenticated("token expired at %s", exp.Expiry.UTC().Format(time.RFC3339))
		}
		return nil, unauthenticated("%s", strings.TrimPrefix(err.Error(), "oidc: "))
	}
	if tok.Subject == "" {
		return nil, unauthenticated("token has no subject")
	}
	var claims map[string]any
	if err := tok.Claims(&claims); err != nil {
		return nil, unauthenticated("claims: %v", err)
	}
	return o.principal(tok.Subject, claims)
}

func (o *OIDC) principal(sub string, claims map[string]any) (*Principal, error) {
	c := o.cfg
	str := func(name string) (string, error) {
		switch v := claims[name].(type) {
		case nil:
			return "", nil
		case string:
			return strings.TrimSpace(v), nil
		default:
			return "", fmt.Errorf("claim %s is a %T, not a string", name, v)
		}
	}
	node, err := str(c.NodeClaim)
	if err != nil {
		return nil, unauthenticated("subject %s: %v", sub, err)
	}
	if node != "" && node != o.node {
		return nil, unauthenticated("subject %s: token is for node %q, this is %q", sub, node, o.node)
	}
	role, err := o.role(claims[c.RoleClaim])
	if err != nil {
		return nil, unauthenticated("subject %s: claim %s: %v", sub, c.RoleClaim, err)
	}
	unit, err := str(c.UnitClaim)
	if err != nil {
		return nil, unauthenticated("subject %s: %v", sub, err)
	}
	grids, err := gridsClaim(claims[c.GridsClaim])
	if err != nil {
		return nil, unauthenticated("subject %s: claim %s: %v", sub, c.GridsClaim, err)
	}
	name, _ := str(c.NameClaim)
	if name == "" {
		name, _ = str("preferred_username")
	}
	if name == "" {
		name = sub
	}
	return &Principal{
		ID:    "oidc:" + sub,
		Kind:  KindPerson,
		Name:  name,
		Role:  role,
		Node:  o.node,
		Unit:  unit,
		Grids: grids,
		Via:   ViaOIDC,
	}, nil
}

// role maps the role claim: one string, or an array holding one role
// (several distinct roles are refused rather than guessed between).
func (o *OIDC) role(v any) (pb.Role, error) {
	var vals []string
	switch v := v.(type) {
	case nil:
		return 0, errors.New("missing")
	case string:
		vals = []string{v}
	case []any:
		for _, e := range v {
			s, ok := e.(string)
			if !ok {
				return 0, fmt.Errorf("holds a %T, not a string", e)
			}
			vals = append(vals, s)
		}
	default:
		return 0, fmt.Errorf("is a %T, not a string", v)
	}
	var out pb.Role
	for _, s := range vals {
		name := s
		if m, ok := o.cfg.RoleMap[s]; ok {
			name = m
		}
		r, err := personRole(name)
		if err != nil {
			return 0, err
		}
		if out != 0 && r != out {
			return 0, fmt.Errorf("several roles (%s, %s)", out, r)
		}
		out = r
	}
	if out == 0 {
		return 0, errors.New("empty")
	}
	return out, nil
}

func gridsClaim(v any) ([]string, error) {
	var raw []string
	switch v := v.(type) {
	case nil:
		return nil, nil
	case string:
		raw = strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' })
	case []any:
		for _, e := range v {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("holds a %T, not a string", e)
			}
			raw = append(raw, s)
		}
	default:
		return nil, fmt.Errorf("is a %T, not a string or string array", v)
	}
	var out []string
	for _, s := range raw {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out, nil
}

// jwsAlgs are the signature algorithms a token may use (never "none" or
// an HMAC, whose key would be public).
var jwsAlgs = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512, jose.ES256, jose.ES384, jose.ES512,
	jose.PS256, jose.PS384, jose.PS512, jose.EdDSA,
}

// keySet is the provider's JWKS, cached, fetched again for an unknown key
// id no more often than minRefresh. It implements oidc.KeySet.
type keySet struct {
	url        string
	client     *http.Client
	minRefresh time.Duration

	fetch   sync.Mutex // one fetch at a time
	mu      sync.Mutex // guards the fields below
	keys    []jose.JSONWebKey
	fetched time.Time // when the last fetch was tried
	fetches int       // fetches tried (tests)
}

func (k *keySet) cached() ([]jose.JSONWebKey, time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.keys, k.fetched
}

// VerifySignature verifies jwt's signature with the key its kid names (or,
// without a kid, any key of the set) and returns its payload.
func (k *keySet) VerifySignature(ctx context.Context, jwt string) ([]byte, error) {
	jws, err := jose.ParseSigned(jwt, jwsAlgs)
	if err != nil {
		return nil, fmt.Errorf("malformed jwt: %v", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, errors.New("not exactly one signature")
	}
	kid := jws.Signatures[0].Header.KeyID
	try := func(keys []jose.JSONWebKey) (payload []byte, found bool) {
		for _, key := range keys {
			if kid == "" || key.KeyID == kid {
				found = true
				if p, err := jws.Verify(&key); err == nil {
					return p, true
				}
			}
		}
		return nil, found
	}
	keys, seen := k.cached()
	p, found := try(keys)
	if p != nil {
		return p, nil
	}
	if found && kid != "" {
		// The key is known and the signature does not match it.
		return nil, fmt.Errorf("signature does not verify with key %q", kid)
	}
	keys, err = k.refresh(ctx, seen)
	if err != nil {
		return nil, err
	}
	if p, found = try(keys); p != nil {
		return p, nil
	} else if found {
		return nil, fmt.Errorf("signature does not verify with key %q", kid)
	}
	return nil, fmt.Errorf("no key %q in the provider's key set", kid)
}

// refresh fetches the key set unless a fetch was tried after seen (another
// caller's) or less than minRefresh ago; it returns the keys then cached.
func (k *keySet) refresh(ctx context.Context, seen time.Time) ([]jose.JSONWebKey, error) {
	k.fetch.Lock()
	defer k.fetch.Unlock()
	keys, last := k.cached()
	if last.After(seen) || (!last.IsZero() && time.Since(last) < k.minRefresh) {
		return keys, nil
	}
	k.mu.Lock()
	k.fetched = time.Now()
	k.fetches++
	k.mu.Unlock()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := k.client.Do(req)
	if err != nil {
		return keys, fmt.Errorf("fetching keys: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return keys, fmt.Errorf("fetching keys: %s %s", k.url, resp.Status)
	}
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&set); err != nil {
		return keys, fmt.Errorf("fetching keys: %s: %v", k.url, err)
	}
	var fresh []jose.JSONWebKey
	for _, raw := range set.Keys {
		var key jose.JSONWebKey
		// Keys of a type go-jose does not know are skipped, not fatal.
		if err := key.UnmarshalJSON(raw); err != nil || !key.Valid() || !key.IsPublic() {
			continue
		}
		if key.Use != "" && key.Use != "sig" {
			continue
		}
		fresh = append(fresh, key)
	}
	k.mu.Lock()
	k.keys = fresh
	k.mu.Unlock()
	return fresh, nil
}
