package auth

// A real OpenID Connect provider for the OIDC tests: ory/hydra v2, built
// from the tool module in testdata/hydra (kept out of the main go.mod) and
// run with an in-memory store. See testdata/hydra/README.md.

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

const hydraVersion = "v2.3.0"

// hydraBuildTags: hydra's in-memory DSN is SQLite, which needs cgo and
// these tags (as hydra's own release builds use).
const hydraBuildTags = "sqlite,sqlite_omit_load_extension"

var hydraBin struct {
	once sync.Once
	path string
	err  error
}

// hydraBinary returns the hydra binary: $CITYHUB_HYDRA when set, else
// the one built once into the user cache dir
// (…/cityhub-test/hydra-v2.3.0/hydra), rebuilt when the tool module's
// go.mod or go.sum change. A failed build fails the test.
func hydraBinary(t *testing.T) string {
	t.Helper()
	hydraBin.once.Do(func() { hydraBin.path, hydraBin.err = buildHydra() })
	if hydraBin.err != nil {
		t.Fatalf("hydra: %v", hydraBin.err)
	}
	return hydraBin.path
}

func buildHydra() (string, error) {
	if p := os.Getenv("CITYHUB_HYDRA"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("CITYHUB_HYDRA: %w", err)
		}
		return p, nil
	}
	mod, err := filepath.Abs(filepath.Join("testdata", "hydra"))
	if err != nil {
		return "", err
	}
	h := sha256.New()
	for _, f := range []string{"go.mod", "go.sum"} {
		b, err := os.ReadFile(filepath.Join(mod, f))
		if err != nil {
			return "", err
		}
		h.Write(b)
	}
	fmt.Fprintf(h, "%s %s %s/%s", hydraBuildTags, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	stamp := hex.EncodeToString(h.Sum(nil))

	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "cityhub-test", "hydra-"+hydraVersion)
	bin := filepath.Join(dir, "hydra")
	if b, err := os.ReadFile(bin + ".stamp"); err == nil && strings.TrimSpace(string(b)) == stamp {
		if _, err := os.Stat(bin); err == nil {
			return bin, nil
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(dir, "hydra-build-*")
	if err != nil {
		return "", err
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	start := time.Now()
	// GOFLAGS and the rest of the environment are inherited; the tool
	// module is its own module, outside any workspace.
	cmd := exec.Command("go", "build", "-tags", hydraBuildTags, "-o", tmp.Name(), "github.com/ory/hydra/v2")
	cmd.Dir = mod
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1", "GOWORK=off")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build github.com/ory/hydra/v2 in %s: %v\n%s", mod, err, out)
	}
	fmt.Fprintf(os.Stderr, "built hydra %s into %s in %s\n", hydraVersion, bin, time.Since(start).Round(time.Second))
	if err := os.Rename(tmp.Name(), bin); err != nil {
		return "", err
	}
	if err := os.WriteFile(bin+".stamp", []byte(stamp+"\n"), 0o644); err != nil {
		return "", err
	}
	return bin, nil
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// hydra is one running hydra process.
type hydra struct {
	t      *testing.T
	Issuer string // the public URL, also the issuer
	Admin  string
	http   *http.Client
}

// The redirect URI registered for the test clients; nothing listens there,
// the test reads the code off the redirect.
const hydraCallback = "http://127.0.0.1:1/callback"

// hydraPorts picks hydra's public and admin ports ahead of its start, so a
// verifier can be configured before the provider is up.
func hydraPorts(t *testing.T) (public, admin int) { return freePort(t), freePort(t) }

// startHydra runs `hydra serve all --dev` on the given loopback ports with
// an in-memory store and JWT access tokens, and waits until it is ready.
func startHydra(t *testing.T, public, admin int) *hydra {
	t.Helper()
	bin := hydraBinary(t)
	dir := t.TempDir()
	issuer := fmt.Sprintf("http://127.0.0.1:%d", public)
	cfg := fmt.Sprintf(`dsn: memory
serve:
  public: {host: 127.0.0.1, port: %d}
  admin: {host: 127.0.0.1, port: %d}
urls:
  self: {issuer: %q}
  login: http://127.0.0.1:1/login
  consent: http://127.0.0.1:1/consent
secrets:
  system: [%q]
strategies:
  access_token: jwt
oauth2:
  allowed_top_level_claims: [cityhub_role, cityhub_unit, cityhub_node, cityhub_grids, name]
log:
  level: warn
`, public, admin, issuer, "cityhub-test-system-secret-0123456789")
	cfgPath := filepath.Join(dir, "hydra.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "hydra.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", "all", "--dev", "--sqa-opt-out", "-c", cfgPath)
	// A clean environment: hydra reads its settings from env vars too.
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "TMPDIR=" + dir, "DSN=memory", "SQA_OPT_OUT=true"}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); logf.Close() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	dumpLog := func() string {
		b, _ := os.ReadFile(logPath)
		if len(b) > 8000 {
			b = b[len(b)-8000:]
		}
		return string(b)
	}
	h := &hydra{t: t, Issuer: issuer, Admin: fmt.Sprintf("http://127.0.0.1:%d", admin),
		http: &http.Client{Timeout: 2 * time.Minute}}
	deadline := time.Now().Add(90 * time.Second)
	for {
		select {
		case err := <-exited:
			t.Fatalf("hydra exited before it was ready: %v\n%s", err, dumpLog())
		default:
		}
		// Hydra makes its signing keys (RSA 4096) on first use: the key
		// set answering (it may fail while they are being made) has them
		// made outside any flow.
		if h.ready(h.Admin+"/health/ready") && h.ready(h.Issuer+"/health/ready") &&
			h.ready(h.Issuer+"/.well-known/jwks.json") {
			return h
		}
		if time.Now().After(deadline) {
			t.Fatalf("hydra not ready after 90s\n%s", dumpLog())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (h *hydra) ready(u string) bool {
	resp, err := h.http.Get(u)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// call sends body (JSON) to hydra and decodes the JSON answer into out.
func (h *hydra) call(method, u string, body, out any) {
	h.t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			h.t.Fatal(err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, u, r)
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := h.http.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		h.t.Fatalf("%s %s: %s: %s", method, u, resp.Status, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			h.t.Fatalf("%s %s: %v: %s", method, u, err, b)
		}
	}
}

type hydraClient struct {
	ID, Secret string
}

// createClient registers an OAuth2 client for the authorization-code flow
// that may ask for the given access-token audiences.
func (h *hydra) createClient(id string, audience ...string) hydraClient {
	h.t.Helper()
	secret := "secret-" + id
	body := map[string]any{
		"client_id":                  id,
		"client_secret":              secret,
		"grant_types":                []string{"authorization_code"},
		"response_types":             []string{"code"},
		"scope":                      "openid",
		"redirect_uris":              []string{hydraCallback},
		"token_endpoint_auth_method": "client_secret_post",
		"audience":                   audience,
	}
	var out struct {
		ClientID string `json:"client_id"`
	}
	h.call(http.MethodPost, h.Admin+"/admin/clients", body, &out)
	if out.ClientID == "" {
		h.t.Fatal("hydra: created a client without an id")
	}
	return hydraClient{ID: out.ClientID, Secret: secret}
}

// setTokenLifespan makes the client's authorization-code ID and access
// tokens live only d.
func (h *hydra) setTokenLifespan(c hydraClient, d time.Duration) {
	h.t.Helper()
	h.call(http.MethodPut, h.Admin+"/admin/clients/"+url.PathEscape(c.ID)+"/lifespans", map[string]any{
		"authorization_code_grant_id_token_lifespan":     d.String(),
		"authorization_code_grant_access_token_lifespan": d.String(),
	}, nil)
}

// addSigningKey creates a new key in the ID token key set (a rotation).
func (h *hydra) addSigningKey(kid string) {
	h.t.Helper()
	h.call(http.MethodPost, h.Admin+"/admin/keys/hydra.openid.id-token",
		map[string]any{"alg": "RS256", "kid": kid, "use": "sig"}, nil)
}

// importSigningKey puts key (kid) into the ID token key set, where it
// signs the next ID tokens.
func (h *hydra) importSigningKey(kid string, key *rsa.PrivateKey) {
	h.t.Helper()
	jwk := jose.JSONWebKey{Key: key, KeyID: kid, Algorithm: "RS256", Use: "sig"}
	h.call(http.MethodPut, h.Admin+"/admin/keys/hydra.openid.id-token/"+url.PathEscape(kid), jwk, nil)
}

// hydraTokens are what the token endpoint answers.
type hydraTokens struct {
	IDToken     string `json:"id_token"`
	AccessToken string `json:"access_token"`
}

// login runs the authorization-code flow as a browser would, with the test
// acting as hydra's login and consent app through the admin API: it
// accepts the login as subject and the consent with claims in the ID token
// (and the access token, for the audiences given), then redeems the code.
func (h *hydra) login(c hydraClient, subject string, claims map[string]any, audience ...string) hydraTokens {
	h.t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		h.t.Fatal(err)
	}
	browser := &http.Client{
		Jar:           jar,
		Timeout:       2 * time.Minute,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	q := url.Values{
		"client_id":     {c.ID},
		"response_type": {"code"},
		"scope":         {"openid"},
		"redirect_uri":  {hydraCallback},
		"state":         {randomHex(h.t, 12)},
		"nonce":         {randomHex(h.t, 12)},
	}
	if len(audience) > 0 {
		q.Set("audience", strings.Join(audience, " "))
	}
	next := h.Issuer + "/oauth2/auth?" + q.Encode()
	var code string
	for i := 0; code == "" && i < 10; i++ {
		resp, err := browser.Get(next)
		if err != nil {
			h.t.Fatalf("GET %s: %v", next, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusFound && resp.StatusCode != http.StatusSeeOther {
			h.t.Fatalf("GET %s: %s: %s", next, resp.Status, body)
		}
		loc, err := resp.Location()
		if err != nil {
			h.t.Fatal(err)
		}
		lq := loc.Query()
		var accept struct {
			RedirectTo string `json:"redirect_to"`
		}
		switch {
		case lq.Get("error") != "":
			h.t.Fatalf("hydra refused the flow: %s: %s", lq.Get("error"), lq.Get("error_description"))
		case lq.Get("login_challenge") != "":
			h.call(http.MethodPut, h.Admin+"/admin/oauth2/auth/requests/login/accept?login_challenge="+
				url.QueryEscape(lq.Get("login_challenge")), map[string]any{"subject": subject}, &accept)
			next = accept.RedirectTo
		case lq.Get("consent_challenge") != "":
			h.call(http.MethodPut, h.Admin+"/admin/oauth2/auth/requests/consent/accept?consent_challenge="+
				url.QueryEscape(lq.Get("consent_challenge")), map[string]any{
				"grant_scope":                 []string{"openid"},
				"grant_access_token_audience": audience,
				"session":                     map[string]any{"id_token": claims, "access_token": claims},
			}, &accept)
			next = accept.RedirectTo
		case strings.HasPrefix(loc.String(), hydraCallback):
			code = lq.Get("code")
		default:
			next = loc.String()
		}
	}
	if code == "" {
		h.t.Fatal("hydra: the authorization-code flow gave no code")
	}
	form := url.Values{
		"grant_type":    {"authorization_code"},
		"code":          {code},
		"redirect_uri":  {hydraCallback},
		"client_id":     {c.ID},
		"client_secret": {c.Secret},
	}
	resp, err := h.http.PostForm(h.Issuer+"/oauth2/token", form)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		h.t.Fatalf("token endpoint: %s: %s", resp.Status, b)
	}
	var tok hydraTokens
	if err := json.Unmarshal(b, &tok); err != nil {
		h.t.Fatal(err)
	}
	if tok.IDToken == "" {
		h.t.Fatalf("token endpoint gave no id_token: %s", b)
	}
	return tok
}

func randomHex(t *testing.T, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// ctxT is a context bounded by the test.
func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}
