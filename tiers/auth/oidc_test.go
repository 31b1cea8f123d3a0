package auth

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

func TestOIDCConfig(t *testing.T) {
	if err := (OIDCConfig{}).Validate(); err != nil {
		t.Fatalf("disabled config: %v", err)
	}
	d := OIDCConfig{Issuer: "https://idp.example.gov.cn/realms/city", Audience: "cityhub"}.WithDefaults()
	if d.RoleClaim != "cityhub_role" || d.UnitClaim != "cityhub_unit" || d.NodeClaim != "cityhub_node" ||
		d.GridsClaim != "cityhub_grids" || d.NameClaim != "name" {
		t.Fatalf("defaults: %+v", d)
	}
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		cfg   OIDCConfig
		field string
	}{
		{OIDCConfig{Issuer: "https://idp.example"}, "auth.oidc.audience: required when auth.oidc.issuer is set"},
		{OIDCConfig{Issuer: "idp.example", Audience: "a"}, "auth.oidc.issuer"},
		{OIDCConfig{Issuer: "ftp://idp.example", Audience: "a"}, "auth.oidc.issuer"},
		{OIDCConfig{Issuer: "https://idp.example?x=1", Audience: "a"}, "auth.oidc.issuer"},
		{OIDCConfig{Issuer: "https://idp.example", Audience: "a", RoleMap: map[string]string{"boss": "KING"}}, `auth.oidc.role_map["boss"]`},
		{OIDCConfig{Issuer: "https://idp.example", Audience: "a", RoleMap: map[string]string{"app": "CITIZEN"}}, `auth.oidc.role_map["app"]`},
		{OIDCConfig{Issuer: "https://idp.example", Audience: "a", CAFile: "/nonexistent/ca.pem"}, "auth.oidc.ca_file"},
	} {
		err := tc.cfg.WithDefaults().Validate()
		if err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%+v: got %v, want an error naming %s", tc.cfg, err, tc.field)
		}
	}
	if err := (OIDCConfig{Issuer: "https://idp.example", Audience: "a"}).Validate(); err == nil ||
		!strings.Contains(err.Error(), "auth.oidc.role_claim") {
		t.Errorf("no defaults: %v", err)
	}
	if _, err := NewOIDC(t.Context(), OIDCConfig{Issuer: "https://idp.example"}, "city"); err == nil {
		t.Error("NewOIDC accepted a config without audience")
	}
	bad := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(bad, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := NewOIDC(t.Context(), OIDCConfig{Issuer: "https://idp.example", Audience: "a", CAFile: bad}, "city"); err == nil ||
		!strings.Contains(err.Error(), "auth.oidc.ca_file") {
		t.Errorf("bad CA file: %v", err)
	}
}

func TestOIDCClaims(t *testing.T) {
	o, err := NewOIDC(t.Context(), OIDCConfig{Issuer: "https://idp.example", Audience: "a",
		RoleMap: map[string]string{"值班长": "SHIFT_LEADER", "leader": "ROLE_SHIFT_LEADER"}}, "city")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		role any
		want pb.Role
	}{
		{"值班长", pb.Role_ROLE_SHIFT_LEADER},
		{"leader", pb.Role_ROLE_SHIFT_LEADER},
		{"DISPATCHER", pb.Role_ROLE_DISPATCHER},
		{"role_inspector", pb.Role_ROLE_INSPECTOR},
		{[]any{"EVALUATOR"}, pb.Role_ROLE_EVALUATOR},
		{[]any{"leader", "SHIFT_LEADER"}, pb.Role_ROLE_SHIFT_LEADER},
	} {
		p, err := o.principal("u1", map[string]any{"cityhub_role": tc.role})
		if err != nil || p.Role != tc.want {
			t.Errorf("role %v: %v, %v; want %s", tc.role, p, err, tc.want)
		}
	}
	for _, role := range []any{nil, "", "KING", "UNSPECIFIED", "CITIZEN", "ROLE_SYSTEM", 7, []any{"DISPATCHER", "ADMIN"}, []any{}} {
		if _, err := o.principal("u1", map[string]any{"cityhub_role": role}); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("role %v accepted: %v", role, err)
		}
	}
	for _, tc := range []struct {
		grids any
		want  []string
	}{
		{"320505001 320505002", []string{"320505001", "320505002"}},
		{"320505001,320505002, 320505003", []string{"320505001", "320505002", "320505003"}},
		{[]any{"320505001", " ", "320505002"}, []string{"320505001", "320505002"}},
		{nil, nil},
	} {
		p, err := o.principal("u1", map[string]any{"cityhub_role": "INSPECTOR", "cityhub_grids": tc.grids})
		if err != nil || !slices.Equal(p.Grids, tc.want) {
			t.Errorf("grids %v: %v, %v; want %v", tc.grids, p, err, tc.want)
		}
	}
	if _, err := o.principal("u1", map[string]any{"cityhub_role": "INSPECTOR", "cityhub_grids": 5}); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("numeric grids accepted: %v", err)
	}
	p, err := o.principal("u1", map[string]any{"cityhub_role": "INSPECTOR", "preferred_username": "zhang.san"})
	if err != nil || p.Name != "zhang.san" || p.Node != "city" {
		t.Errorf("name fallback: %+v, %v", p, err)
	}
	if _, err := o.principal("u1", map[string]any{"cityhub_role": "INSPECTOR", "cityhub_node": "d-320505"}); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("another node's token accepted: %v", err)
	}
}

func TestLooksLikeJWT(t *testing.T) {
	for tok, want := range map[string]bool{
		"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln": true,
		"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0":      false,
		"eyJhbGciOiJSUzI1NiJ9..c2ln":                false,
		"a.b.c":                                     false,
		"ch_3f9a0c.secret":                          false,
		"eyJ.a.b.c":                                 false,
		"":                                          false,
	} {
		if got := LooksLikeJWT(tok); got != want {
			t.Errorf("LooksLikeJWT(%q) = %v", tok, got)
		}
	}
}

// jwtPart decodes part i (0 header, 1 payload) of a compact JWS.
func jwtPart(t *testing.T, raw string, i int) map[string]any {
	t.Helper()
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWS: %q", raw)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[i])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// withPayload returns raw with its payload replaced by claims, the
// signature kept.
func withPayload(t *testing.T, raw string, claims map[string]any) string {
	t.Helper()
	b, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(raw, ".")
	return parts[0] + "." + base64.RawURLEncoding.EncodeToString(b) + "." + parts[2]
}

// refused asserts that Verify refuses tok with ErrUnauthenticated and a
// reason containing why.
func refused(t *testing.T, o *OIDC, tok, why string) {
	t.Helper()
	p, err := o.Verify(ctxT(t), tok)
	if err == nil {
		t.Fatalf("accepted: %+v", p)
	}
	if !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("error does not wrap ErrUnauthenticated: %v", err)
	}
	if !strings.Contains(err.Error(), why) {
		t.Fatalf("error %q does not say %q", err, why)
	}
	t.Logf("refused: %v", err)
}

func TestOIDCHydra(t *testing.T) {
	if testing.Short() {
		t.Skip("starts ory/hydra (built on first use)")
	}
	hydraBinary(t) // build before any clock starts
	const node = "d-320505"
	pubPort, adminPort := hydraPorts(t)
	issuer := "http://127.0.0.1:" + strconv.Itoa(pubPort)

	// The verifier exists before its provider: discovery is lazy and
	// retried with a back-off.
	lazy, err := NewOIDC(t.Context(), OIDCConfig{Issuer: issuer, Audience: "cityhub-portal"}, node)
	if err != nil {
		t.Fatal(err)
	}
	lazy.minBackoff = 200 * time.Millisecond
	garbage := "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"
	refused(t, lazy, garbage, "discovery")
	refused(t, lazy, garbage, "retrying in")

	h := startHydra(t, pubPort, adminPort)
	portal := h.createClient("cityhub-portal", "cityhub-api")
	other := h.createClient("other-app")

	claims := map[string]any{
		"cityhub_role":  "SHIFT_LEADER",
		"cityhub_unit":  "城管执法大队",
		"cityhub_node":  node,
		"cityhub_grids": []string{"320505001", "320505002"},
		"name":          "张三",
	}
	tok := h.login(portal, "zhangsan", claims, "cityhub-api")
	t.Logf("id token header %v claims %v", jwtPart(t, tok.IDToken, 0), jwtPart(t, tok.IDToken, 1))
	t.Logf("access token header %v claims %v", jwtPart(t, tok.AccessToken, 0), jwtPart(t, tok.AccessToken, 1))

	want := &Principal{ID: "oidc:zhangsan", Kind: KindPerson, Name: "张三", Role: pb.Role_ROLE_SHIFT_LEADER,
		Node: node, Unit: "城管执法大队", Grids: []string{"320505001", "320505002"}, Via: ViaOIDC}
	check := func(t *testing.T, o *OIDC, raw string, want *Principal) {
		t.Helper()
		p, err := o.Verify(ctxT(t), raw)
		if err != nil {
			t.Fatal(err)
		}
		if p.ID != want.ID || p.Kind != want.Kind || p.Name != want.Name || p.Role != want.Role ||
			p.Node != want.Node || p.Unit != want.Unit || !slices.Equal(p.Grids, want.Grids) || p.Via != want.Via {
			t.Fatalf("principal %+v, want %+v", p, want)
		}
	}

	o, err := NewOIDC(t.Context(), OIDCConfig{Issuer: h.Issuer, Audience: portal.ID}, node)
	if err != nil {
		t.Fatal(err)
	}
	if o.Issuer() != h.Issuer {
		t.Fatalf("Issuer() = %q", o.Issuer())
	}
	// The key rotation below comes seconds after o's last key fetch.
	o.minRefresh = 0

	t.Run("valid", func(t *testing.T) {
		check(t, o, tok.IDToken, want)
		// The verifier made before hydra started recovers once its
		// back-off has passed (waited for, with a generous bound), and
		// keeps what it discovered.
		deadline := time.Now().Add(30 * time.Second)
		for {
			if _, err := lazy.Verify(ctxT(t), tok.IDToken); err == nil {
				break
			} else if time.Now().After(deadline) {
				t.Fatalf("the lazy verifier did not recover within 30s: %v", err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		check(t, lazy, tok.IDToken, want)
		if err := lazy.Discover(ctxT(t)); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("access token", func(t *testing.T) {
		api, err := NewOIDC(t.Context(), OIDCConfig{Issuer: h.Issuer, Audience: "cityhub-api"}, node)
		if err != nil {
			t.Fatal(err)
		}
		check(t, api, tok.AccessToken, want)
		// Each token is for its own audience only.
		refused(t, api, tok.IDToken, "expected audience")
		refused(t, o, tok.AccessToken, "expected audience")
	})

	t.Run("wrong audience", func(t *testing.T) {
		otherTok := h.login(other, "zhangsan", claims)
		refused(t, o, otherTok.IDToken, "expected audience")
	})

	t.Run("tampered", func(t *testing.T) {
		c := jwtPart(t, tok.IDToken, 1)
		c["cityhub_role"] = "ADMIN"
		refused(t, o, withPayload(t, tok.IDToken, c), "signature")
		// One flipped byte of the payload.
		parts := strings.Split(tok.IDToken, ".")
		b := []byte(parts[1])
		b[len(b)/2] ^= 0x01
		refused(t, o, parts[0]+"."+string(b)+"."+parts[2], "")
	})

	t.Run("forged with hydra's kid", func(t *testing.T) {
		hdr := jwtPart(t, tok.IDToken, 0)
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		refused(t, o, sign(t, key, hdr["kid"].(string), jwtPart(t, tok.IDToken, 1)), "signature")
	})

	t.Run("unknown key ids", func(t *testing.T) {
		// Made-up key ids fetch the provider's key set at most every
		// minRefresh (10s), not once per token.
		v, err := NewOIDC(t.Context(), OIDCConfig{Issuer: h.Issuer, Audience: portal.ID}, node)
		if err != nil {
			t.Fatal(err)
		}
		check(t, v, tok.IDToken, want)
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		for range 20 {
			refused(t, v, sign(t, key, randomHex(t, 8), jwtPart(t, tok.IDToken, 1)), "no key")
		}
		if v.keys.fetches != 1 {
			t.Fatalf("%d key set fetches, want 1", v.keys.fetches)
		}
		v.keys.minRefresh = 0
		refused(t, v, sign(t, key, randomHex(t, 8), jwtPart(t, tok.IDToken, 1)), "no key")
		if v.keys.fetches != 2 {
			t.Fatalf("%d key set fetches, want 2", v.keys.fetches)
		}
	})

	t.Run("another node", func(t *testing.T) {
		c := withClaim(claims, "cityhub_node", "d-320506")
		refused(t, o, h.login(portal, "lisi", c).IDToken, `token is for node "d-320506"`)
	})

	t.Run("unknown role", func(t *testing.T) {
		refused(t, o, h.login(portal, "wangwu", withClaim(claims, "cityhub_role", "MAYOR")).IDToken, `unknown role "MAYOR"`)
		refused(t, o, h.login(portal, "zhaoliu", withClaim(claims, "cityhub_role", nil)).IDToken, "cityhub_role: missing")
	})

	t.Run("expired", func(t *testing.T) {
		short := h.createClient("cityhub-short")
		h.setTokenLifespan(short, time.Second)
		so, err := NewOIDC(t.Context(), OIDCConfig{Issuer: h.Issuer, Audience: short.ID}, node)
		if err != nil {
			t.Fatal(err)
		}
		st := h.login(short, "zhangsan", claims)
		exp := time.Unix(int64(jwtPart(t, st.IDToken, 1)["exp"].(float64)), 0)
		time.Sleep(time.Until(exp) + 1100*time.Millisecond)
		refused(t, so, st.IDToken, "token expired")
	})

	t.Run("key rotation", func(t *testing.T) {
		oldKid := jwtPart(t, tok.IDToken, 0)["kid"]
		h.addSigningKey("rotated-1")
		rt := h.login(portal, "zhangsan", claims)
		if kid := jwtPart(t, rt.IDToken, 0)["kid"]; kid != "rotated-1" {
			t.Fatalf("hydra signed with %v after the rotation (before: %v)", kid, oldKid)
		}
		// The verifier has the old keys cached; the new kid makes it fetch
		// the key set again.
		check(t, o, rt.IDToken, want)
		check(t, o, tok.IDToken, want)
	})

	t.Run("wrong issuer", func(t *testing.T) {
		// A verifier for another issuer: discovery at hydra says otherwise.
		wrong, err := NewOIDC(t.Context(), OIDCConfig{Issuer: "http://localhost:" + strconv.Itoa(pubPort), Audience: portal.ID}, node)
		if err != nil {
			t.Fatal(err)
		}
		refused(t, wrong, tok.IDToken, "did not match the issuer")

		// A second provider that signs with a key the first one also
		// publishes: its token has a valid signature, the same audience,
		// and the wrong issuer.
		b := startHydra(t, freePort(t), freePort(t))
		bPortal := b.createClient(portal.ID)
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		h.importSigningKey("shared-1", key)
		b.importSigningKey("shared-1", key)
		bt := b.login(bPortal, "zhangsan", claims)
		if kid := jwtPart(t, bt.IDToken, 0)["kid"]; kid != "shared-1" {
			t.Fatalf("the second hydra signed with %v", kid)
		}
		refused(t, o, bt.IDToken, "issued by a different provider")
		// The same token is good at its own issuer.
		ob, err := NewOIDC(t.Context(), OIDCConfig{Issuer: b.Issuer, Audience: bPortal.ID}, node)
		if err != nil {
			t.Fatal(err)
		}
		check(t, ob, bt.IDToken, want)
	})
}

func withClaim(m map[string]any, k string, v any) map[string]any {
	out := make(map[string]any, len(m))
	for kk, vv := range m {
		out[kk] = vv
	}
	if v == nil {
		delete(out, k)
	} else {
		out[k] = v
	}
	return out
}

// sign makes a compact RS256 JWS of claims with key under kid.
func sign(t *testing.T, key *rsa.PrivateKey, kid string, claims map[string]any) string {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key, KeyID: kid}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := s.Sign(b)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}
