package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cityhub/cityhub/config"
	"github.com/cityhub/cityhub/tiers/replica/testcluster"
)

const testAdminPassword = "admin-password-123"

// authNode starts one replica with authentication on and its first
// administrator, and points cityhubctl's token files at a temporary
// directory. Access tokens live one minute, so every call refreshes.
func authNode(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "admin-password")
	if err := os.WriteFile(pwFile, []byte(testAdminPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "config"))
	t.Setenv(tokenEnv, "")
	t.Setenv(tokenFileEnv, "")
	t.Setenv(userEnv, "")
	c := testcluster.New(t, 1, func(c *config.Config) {
		c.Auth.Disabled = false
		c.Auth.AdminPasswordFile = pwFile
		c.Auth.TokenTTL = time.Minute
	})
	return c.Members[0].Cfg.GRPC.Addr
}

// cli runs cityhubctl with stdin.
func cli(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = runIO(context.Background(), args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func mustCLI(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	code, out, errOut := cli(t, stdin, args...)
	if code != 0 {
		t.Fatalf("cityhubctl %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

func TestAuthCommands(t *testing.T) {
	addr := authNode(t)
	g := []string{"--addr", addr}
	args := func(a ...string) []string { return append(append([]string{}, g...), a...) }

	// The first administrator appears once the leader has made it.
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, out, errOut := cli(t, testAdminPassword+"\n", args("login", "--user", "admin", "--password-stdin")...)
		if code == 0 {
			if !strings.Contains(out, "logged in at "+addr+" as 管理员 (acct:admin, admin)") {
				t.Errorf("login output: %q", out)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("admin login: exit %d %s%s", code, out, errOut)
		}
		time.Sleep(200 * time.Millisecond)
	}
	tokFile, err := defaultTokenFile(addr)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(tokFile)
	if err != nil {
		t.Fatalf("token file: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("token file mode %04o, want 0600", fi.Mode().Perm())
	}
	if !strings.HasPrefix(filepath.Base(tokFile), "token-127.0.0.1_") {
		t.Errorf("token file %s", tokFile)
	}
	access := func(path string) string {
		t.Helper()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var sl struct {
			Addr  string
			Token struct {
				AccessToken  string `json:"access_token"`
				RefreshToken string `json:"refresh_token"`
			}
		}
		if err := json.Unmarshal(b, &sl); err != nil {
			t.Fatal(err)
		}
		if sl.Addr != addr || sl.Token.AccessToken == "" || sl.Token.RefreshToken == "" {
			t.Fatalf("token file %s: %s", path, b)
		}
		return sl.Token.AccessToken
	}
	first := access(tokFile)

	// whoami: the administrator, through the kept login, refreshed (the
	// access token lives a minute, so it is always near its end).
	time.Sleep(1100 * time.Millisecond) // a token issued in another second
	out := mustCLI(t, "", args("whoami")...)
	for _, re := range []string{`(?m)^principal: +acct:admin$`, `(?m)^role: +admin$`, `(?m)^credentials: +` + regexp.QuoteMeta(tokFile) + `$`, `accounts\.manage@node`} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("whoami lacks %s:\n%s", re, out)
		}
	}
	if access(tokFile) == first {
		t.Error("the access token was not refreshed and kept")
	}

	// Accounts: create (with a request id on stderr), refuse a second of the
	// same name, list.
	code, out, errOut := cli(t, "lead-password-1\n", args("accounts", "create", "lead-1", "--role", "shift-leader", "--display-name", "李四", "--password-stdin")...)
	if code != 0 || !regexp.MustCompile(`(?m)^request-id: [0-9a-f]{32}$`).MatchString(errOut) || !strings.Contains(out, "created account lead-1") {
		t.Fatalf("accounts create: exit %d\n%s%s", code, out, errOut)
	}
	if code, _, errOut = cli(t, "lead-password-1\n", args("accounts", "create", "lead-1", "--role", "dispatcher", "--password-stdin")...); code != 1 || !strings.Contains(errOut, "AlreadyExists") {
		t.Errorf("second lead-1: exit %d %s", code, errOut)
	}
	mustCLI(t, "insp-password-1\n", args("accounts", "create", "insp-1", "--role", "inspector", "--grids", "320582110,320582111", "--display-name", "王五", "--password-stdin", "--request-id", "mk-insp-1")...)
	out = mustCLI(t, "", args("accounts", "list")...)
	for _, re := range []string{`(?m)^lead-1 +李四 +shift-leader +- +- +enabled .* acct:admin$`, `(?m)^insp-1 +王五 +inspector +- +320582110,320582111 +enabled`, `(?m)^admin +管理员 +admin`} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("accounts list lacks %s:\n%s", re, out)
		}
	}

	// A wrong password and an unknown user are refused alike.
	_, _, wrongPw := cli(t, "not-the-password\n", args("login", "--user", "lead-1", "--password-stdin", "--token-file", filepath.Join(t.TempDir(), "x.json"))...)
	code, _, noUser := cli(t, "not-the-password\n", args("login", "--user", "nobody", "--password-stdin", "--token-file", filepath.Join(t.TempDir(), "y.json"))...)
	if code != 1 || wrongPw != noUser || !strings.Contains(wrongPw, "Unauthenticated: login refused: wrong user name or password") || strings.Contains(noUser, "nobody") {
		t.Errorf("wrong password: %q; unknown user (exit %d): %q", wrongPw, code, noUser)
	}

	// The shift leader logs in with its own token file; whoami shows the role.
	leadFile := filepath.Join(t.TempDir(), "lead.json")
	lead := func(a ...string) []string { return args(append([]string{"--token-file", leadFile}, a...)...) }
	mustCLI(t, "lead-password-1\n", lead("login", "--user", "lead-1", "--password-stdin")...)
	out = mustCLI(t, "", lead("whoami")...)
	if !regexp.MustCompile(`(?m)^role: +shift-leader$`).MatchString(out) || !regexp.MustCompile(`(?m)^name: +李四$`).MatchString(out) {
		t.Errorf("lead whoami:\n%s", out)
	}
	// It may not manage accounts.
	if code, _, errOut := cli(t, "", lead("accounts", "list")...); code != 1 || !strings.Contains(errOut, "PermissionDenied") || !strings.Contains(errOut, "accounts.manage") {
		t.Errorf("lead lists accounts: exit %d %s", code, errOut)
	}

	// An integrator key for the 12345 hotline: printed once, then it
	// authenticates as an intake clerk reporting as 12345 only.
	code, out, errOut = cli(t, "", args("keys", "create", "--name", "12345 热线平台", "--role", "intake-clerk", "--sources", "12345")...)
	if code != 0 || !strings.Contains(errOut, "shown only this once") {
		t.Fatalf("keys create: exit %d\n%s%s", code, out, errOut)
	}
	key := strings.SplitN(out, "\n", 2)[0]
	if !strings.HasPrefix(key, "chk_") || !regexp.MustCompile(`(?m)^sources: +12345$`).MatchString(out) {
		t.Fatalf("keys create output:\n%s", out)
	}
	keyID := strings.SplitN(strings.TrimPrefix(key, "chk_"), "_", 2)[0]
	hot := func(a ...string) []string { return args(append([]string{"--token", key}, a...)...) }
	report := []string{"cases", "report", "--kind", "event", "--major", "01", "--minor", "02", "--grid", "320582110152102", "--desc", "暴露垃圾"}
	out = mustCLI(t, "", hot("-o", "json", "cases", "list")...)
	out = mustCLI(t, "", hot(append(report, "--source", "12345", "-o", "json")...)...)
	id := regexp.MustCompile(`"id": "(320582-[0-9]{8}-[0-9]+)"`).FindStringSubmatch(out)
	if id == nil || !strings.Contains(out, `"actor": "12345 热线平台"`) {
		t.Fatalf("report through the key:\n%s", out)
	}
	if code, _, errOut := cli(t, "", hot("accounts", "list")...); code != 1 || !strings.Contains(errOut, "PermissionDenied") {
		t.Errorf("key lists accounts: exit %d %s", code, errOut)
	}
	out = mustCLI(t, "", hot("whoami")...)
	if !regexp.MustCompile(`(?m)^role: +intake-clerk$`).MatchString(out) || !regexp.MustCompile(`(?m)^via: +api_key$`).MatchString(out) {
		t.Errorf("key whoami:\n%s", out)
	}

	// A camera's key (role system) reports only as a camera.
	code, out, _ = cli(t, "", args("keys", "create", "--name", "视频智能分析", "--role", "system", "--sources", "camera")...)
	camKey := strings.SplitN(out, "\n", 2)[0]
	if code != 0 || !strings.HasPrefix(camKey, "chk_") {
		t.Fatalf("camera key: exit %d %s", code, out)
	}
	if code, _, errOut := cli(t, "", args(append([]string{"--token", camKey}, append(report, "--source", "12345")...)...)...); code != 1 || !strings.Contains(errOut, "PermissionDenied") {
		t.Errorf("camera key reports as 12345: exit %d %s", code, errOut)
	}
	mustCLI(t, "", args(append([]string{"--token", camKey}, append(report, "--source", "camera")...)...)...)

	// The inspector verifies it in their grids, the shift leader files it,
	// neither with --actor or --role: the node takes them from the login. A
	// contradicting --role is refused.
	inspFile := filepath.Join(t.TempDir(), "insp.json")
	mustCLI(t, "insp-password-1\n", args("--token-file", inspFile, "login", "--user", "insp-1", "--password-stdin")...)
	out = mustCLI(t, "", args("--token-file", inspFile, "whoami")...)
	if !regexp.MustCompile(`(?m)^role: +inspector$`).MatchString(out) || !regexp.MustCompile(`(?m)^grids: +320582110, 320582111$`).MatchString(out) {
		t.Errorf("inspector whoami:\n%s", out)
	}
	mustCLI(t, "", args("--token-file", inspFile, "cases", "act", id[1], "verify")...)
	out = mustCLI(t, "", lead("cases", "act", id[1], "file", "-o", "json")...)
	if !strings.Contains(out, `"actor": "李四"`) || !strings.Contains(out, `"role": "ROLE_SHIFT_LEADER"`) {
		t.Errorf("file as the shift leader:\n%s", out)
	}
	if code, _, errOut := cli(t, "", lead("cases", "act", id[1], "dispatch", "--unit", "sanitation", "--role", "dispatcher")...); code != 1 || !strings.Contains(errOut, "PermissionDenied") || !strings.Contains(errOut, "leave role out") {
		t.Errorf("contradicting role: exit %d %s", code, errOut)
	}
	// Without credentials, --actor and --role are required again.
	if code, _, errOut := cli(t, "", args("--token-file", filepath.Join(t.TempDir(), "none.json"), "cases", "act", id[1], "dispatch", "--unit", "x")...); code != 2 || !strings.Contains(errOut, `required flag "actor" not set`) {
		t.Errorf("no login, no actor: exit %d %s", code, errOut)
	}

	// Keys are listed without their secret; the audit trail has the account
	// creation and the key, by the administrator.
	out = mustCLI(t, "", args("keys", "list")...)
	if !regexp.MustCompile(`(?m)^`+keyID+` +12345 热线平台 +intake-clerk +12345 +own`).MatchString(out) || strings.Contains(out, key) {
		t.Errorf("keys list:\n%s", out)
	}
	out = mustCLI(t, "", args("audit", "--since", "1h")...)
	for _, re := range []string{`(?m)^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \S+ +acct:admin +.* account\.create +- +lead-1 \(ROLE_SHIFT_LEADER`,
		`(?m) key\.create +- +` + keyID + ` 12345 热线平台 \(ROLE_INTAKE_CLERK`, `(?m) acct:lead-1 +李四 +shift-leader .* file +` + id[1] + ` v3 `, `(?m) key:` + keyID + ` .* report +` + id[1] + ` v1 `} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("audit lacks %s:\n%s", re, out)
		}
	}
	out = mustCLI(t, "", args("audit", "--principal", "acct:lead-1", "-o", "json")...)
	if strings.Contains(out, "acct:admin") || !strings.Contains(out, "ACTION_FILE") {
		t.Errorf("audit of lead-1:\n%s", out)
	}

	// Revoked, the key stops working; disabled, so does the shift leader.
	mustCLI(t, "", args("keys", "revoke", keyID)...)
	if code, _, errOut := cli(t, "", hot("cases", "list")...); code != 1 || !strings.Contains(errOut, "Unauthenticated") {
		t.Errorf("revoked key: exit %d %s", code, errOut)
	}
	mustCLI(t, "", args("accounts", "update", "lead-1", "--disable")...)
	if code, _, errOut := cli(t, "", lead("whoami")...); code != 1 || !strings.Contains(errOut, "Unauthenticated") {
		t.Errorf("disabled lead: exit %d %s", code, errOut)
	}
	mustCLI(t, "", args("accounts", "delete", "insp-1")...)
	if out := mustCLI(t, "", args("accounts", "list")...); strings.Contains(out, "insp-1") {
		t.Errorf("insp-1 not deleted:\n%s", out)
	}

	// logout ends the session and removes the file; calls then carry
	// nothing and are refused.
	out = mustCLI(t, "", args("logout")...)
	if !strings.Contains(out, "logged out") {
		t.Errorf("logout: %s", out)
	}
	if _, err := os.Stat(tokFile); !os.IsNotExist(err) {
		t.Errorf("token file after logout: %v", err)
	}
	if code, _, errOut := cli(t, "", args("whoami")...); code != 1 || !strings.Contains(errOut, "Unauthenticated") {
		t.Errorf("whoami after logout: exit %d %s", code, errOut)
	}
}
