package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/cityhub/cityhub/cmd/internal/authclient"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// Credentials: a node with authentication on (the default) wants
// "authorization: Bearer <token or API key>" on every call but Login and
// Refresh. cityhubctl sends, in this order of precedence:
//
//   - --token (or $CITYHUB_TOKEN): an access token or an integrator key, as is;
//   - the login kept in the token file (cityhubctl login; --token-file or
//     $CITYHUB_TOKEN_FILE, default $XDG_CONFIG_HOME/cityhub/token-<addr>.json),
//     refreshed through AuthService.Refresh when it is about to expire;
//   - nothing (a node with auth.disabled).
const (
	tokenEnv     = "CITYHUB_TOKEN"
	tokenFileEnv = "CITYHUB_TOKEN_FILE"
	userEnv      = "CITYHUB_USER"
)

// storedLogin is the token file: the node's token response and where it
// came from. It holds a refresh token: mode 0600.
type storedLogin struct {
	Addr    string          `json:"addr"`
	User    string          `json:"user"`
	SavedAt time.Time       `json:"saved_at"`
	Token   json.RawMessage `json:"token"` // cityhub.v1.TokenResponse, protojson
}

// defaultTokenFile is where the login at addr is kept.
func defaultTokenFile(addr string) (string, error) {
	dir, err := os.UserConfigDir() // $XDG_CONFIG_HOME, or ~/.config
	if err != nil {
		return "", fmt.Errorf("no directory for the token file (set --token-file): %w", err)
	}
	name := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-':
			return r
		}
		return '_'
	}, addr)
	return filepath.Join(dir, "cityhub", "token-"+name+".json"), nil
}

// tokenPath is the token file this invocation uses.
func (a *app) tokenPath() (string, error) {
	if a.tokenFile != "" {
		return a.tokenFile, nil
	}
	return defaultTokenFile(a.addr)
}

// readLogin reads the token file (nil, nil when there is none).
func (a *app) readLogin() (*storedLogin, *pb.TokenResponse, string, error) {
	path, err := a.tokenPath()
	if err != nil {
		return nil, nil, "", err
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, path, nil
	}
	if err != nil {
		return nil, nil, path, fmt.Errorf("token file: %w", err)
	}
	var sl storedLogin
	tok := &pb.TokenResponse{}
	if err := json.Unmarshal(b, &sl); err != nil {
		return nil, nil, path, fmt.Errorf("token file %s: %w (remove it and log in again)", path, err)
	}
	if err := protojson.Unmarshal(sl.Token, tok); err != nil {
		return nil, nil, path, fmt.Errorf("token file %s: %w (remove it and log in again)", path, err)
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		fmt.Fprintf(a.stderr, "warning: %s is readable by others (mode %04o): chmod 600 it\n", path, fi.Mode().Perm())
	}
	return &sl, tok, path, nil
}

// writeLogin replaces the token file (mode 0600, directory 0700).
func writeLogin(path string, sl *storedLogin, tok *pb.TokenResponse) error {
	raw, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(tok)
	if err != nil {
		return err
	}
	sl.Token, sl.SavedAt = raw, time.Now().UTC()
	b, err := json.MarshalIndent(sl, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("token file: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".token-*")
	if err != nil {
		return fmt.Errorf("token file: %w", err)
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("token file: %w", err)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("token file: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("token file: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("token file: %w", err)
	}
	return nil
}

// callCreds are the per-RPC credentials of the connection, chosen once the
// connection exists (a kept login refreshes through it). Login and Refresh
// never carry credentials.
type callCreds struct {
	mu    sync.Mutex
	inner credentials.PerRPCCredentials // nil: none
}

func (c *callCreds) GetRequestMetadata(ctx context.Context, uri ...string) (map[string]string, error) {
	if ri, ok := credentials.RequestInfoFromContext(ctx); ok {
		if ri.Method == pb.AuthService_Login_FullMethodName || ri.Method == pb.AuthService_Refresh_FullMethodName {
			return nil, nil
		}
	}
	inner := c.get()
	if inner == nil {
		return nil, nil
	}
	return inner.GetRequestMetadata(ctx, uri...)
}

func (*callCreds) RequireTransportSecurity() bool { return false }

func (c *callCreds) set(inner credentials.PerRPCCredentials) {
	c.mu.Lock()
	c.inner = inner
	c.mu.Unlock()
}

func (c *callCreds) get() credentials.PerRPCCredentials {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.inner
}

// useCredentials picks what the connection's calls carry (see above).
func (a *app) useCredentials() error {
	if a.credsChosen {
		return nil
	}
	a.credsChosen = true
	if a.token != "" {
		a.creds.set(authclient.Bearer(strings.TrimSpace(a.token)))
		a.credsFrom = "--token"
		return nil
	}
	sl, tok, path, err := a.readLogin()
	if err != nil || sl == nil {
		return err
	}
	if sl.Addr != "" && sl.Addr != a.addr && a.tokenFile == "" {
		// Cannot happen with the default file (named by address).
		fmt.Fprintf(a.stderr, "warning: %s holds a login at %s, not %s\n", path, sl.Addr, a.addr)
	}
	if exp := tok.GetRefreshExpiresAt(); exp != nil && time.Now().After(exp.AsTime()) {
		return status.Errorf(codes.Unauthenticated, "the login kept in %s ended at %s: log in again (cityhubctl --addr %s login --user %s)",
			path, exp.AsTime().In(displayLoc).Format(zoneTime), a.addr, orDash(sl.User))
	}
	a.creds.set(authclient.Resume(a.conn, tok, func(t *pb.TokenResponse) {
		if err := writeLogin(path, sl, t); err != nil {
			fmt.Fprintf(a.stderr, "warning: keeping the refreshed login: %v\n", err)
		}
	}))
	a.credsFrom = path
	return nil
}

// authenticated reports whether calls carry credentials: then the node
// takes the actor and role from them, and the role flags may be left out.
func (a *app) authenticated() bool {
	if a.token != "" {
		return true
	}
	path, err := a.tokenPath()
	if err != nil {
		return false
	}
	_, err = os.Stat(path)
	return err == nil
}

// actorRole checks the --actor and --role of a case write: required when no
// credentials are sent (a node with auth.disabled believes them), optional
// otherwise (the node takes both from the credentials and refuses a role
// that is not the caller's).
func (a *app) actorRole(actor, role string) (pb.Role, error) {
	if !a.authenticated() {
		switch {
		case strings.TrimSpace(actor) == "":
			return 0, usagef(`required flag "actor" not set (or log in: cityhubctl login; the node then takes actor and role from the login)`)
		case strings.TrimSpace(role) == "":
			return 0, usagef(`required flag "role" not set (or log in: cityhubctl login; the node then takes actor and role from the login)`)
		}
	}
	return parseOptional(roles, role)
}

// transport is the connection's security: plain text, or TLS with --tls,
// --ca, --server-name or --insecure-skip-verify.
func (a *app) transport() (credentials.TransportCredentials, error) {
	if !a.tls && a.ca == "" && a.serverName == "" && !a.insecureSkipVerify {
		return insecure.NewCredentials(), nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: a.serverName, InsecureSkipVerify: a.insecureSkipVerify}
	if a.ca != "" {
		pem, err := os.ReadFile(a.ca)
		if err != nil {
			return nil, usagef("--ca: %v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, usagef("--ca %s: no PEM certificate in it", a.ca)
		}
		cfg.RootCAs = pool
	}
	if a.insecureSkipVerify {
		fmt.Fprintln(a.stderr, "warning: --insecure-skip-verify: the node's certificate is not checked; anyone on the path can read and change the calls, tokens included (development only)")
	}
	return credentials.NewTLS(cfg), nil
}

// readSecret reads a password: the first line of stdin with --password-stdin,
// else from the terminal without echo (twice when confirm is set).
func (a *app) readSecret(fromStdin, confirm bool, prompt string) (string, error) {
	if fromStdin {
		line, err := bufio.NewReader(a.stdin).ReadString('\n')
		if err != nil && !(errors.Is(err, io.EOF) && line != "") {
			return "", fmt.Errorf("--password-stdin: reading the password: %w", err)
		}
		pw := strings.TrimRight(line, "\r\n")
		if pw == "" {
			return "", usagef("--password-stdin: the first line of stdin is empty")
		}
		return pw, nil
	}
	f, ok := a.stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return "", usagef("no terminal to ask for the password on: pass it with --password-stdin")
	}
	ask := func(p string) (string, error) {
		fmt.Fprint(a.stderr, p)
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(a.stderr)
		return string(b), err
	}
	pw, err := ask(prompt)
	if err != nil {
		return "", err
	}
	if confirm {
		again, err := ask("again: ")
		if err != nil {
			return "", err
		}
		if again != pw {
			return "", usagef("the passwords differ")
		}
	}
	if pw == "" {
		return "", usagef("empty password")
	}
	return pw, nil
}

func (a *app) authClient() (pb.AuthServiceClient, error) {
	conn, err := a.dial()
	if err != nil {
		return nil, err
	}
	return pb.NewAuthServiceClient(conn), nil
}

func (a *app) loginCmd() *cobra.Command {
	var (
		user     string
		pwStdin  bool
		tokenOut string
	)
	c := &cobra.Command{
		Use:   "login",
		Short: "Log in at the node and keep the login for later commands",
		Long: `Log in at the node (--addr) with a user name and password. The node's
token response (an access token valid for minutes and a refresh token valid
for hours) is kept in the token file, mode 0600 (--token-file, default
$XDG_CONFIG_HOME/cityhub/token-<addr>.json); later commands against the same
address send it and refresh it when it is about to expire. 'cityhubctl
logout' ends the login. The password is asked on the terminal, or read from
the first line of stdin with --password-stdin.`,
		Example: `  cityhubctl --addr 127.0.0.1:7101 login --user admin
  cat pw.txt | cityhubctl login --user lead-1 --password-stdin`,
		Args: cobra.NoArgs,
		RunE: a.runE(func(ctx context.Context, _ *cobra.Command, _ []string) error {
			if user == "" {
				user = strings.TrimSpace(os.Getenv(userEnv))
			}
			if user == "" {
				return usagef("--user is required (or $%s)", userEnv)
			}
			if a.token != "" {
				return usagef("--token and login do not go together: a login keeps its own token")
			}
			pw, err := a.readSecret(pwStdin, false, fmt.Sprintf("password for %s at %s: ", user, a.addr))
			if err != nil {
				return err
			}
			path, err := a.tokenPath()
			if err != nil {
				return err
			}
			a.credsChosen = true // the old login, if any, is not sent
			cl, err := a.authClient()
			if err != nil {
				return err
			}
			cctx, cancel := a.call(ctx)
			defer cancel()
			tok, err := cl.Login(cctx, &pb.LoginRequest{Username: user, Password: pw})
			if status.Code(err) == codes.Unauthenticated {
				// The node says no more than this, whether the account
				// exists or not.
				return status.Error(codes.Unauthenticated, "login refused: wrong user name or password, or the account is disabled")
			}
			if err != nil {
				return err
			}
			if tokenOut == "-" {
				return writeJSON(a.stdout, tok)
			}
			if err := writeLogin(path, &storedLogin{Addr: a.addr, User: user}, tok); err != nil {
				return err
			}
			p := tok.GetPrincipal()
			fmt.Fprintf(a.stdout, "logged in at %s as %s (%s, %s)\n", a.addr, orDash(p.GetName()), orDash(p.GetId()), roles.name(p.GetRole()))
			fmt.Fprintf(a.stdout, "access token valid until %s, renewed until %s; kept in %s\n",
				fmtTime(tok.GetExpiresAt(), zoneTime), fmtTime(tok.GetRefreshExpiresAt(), zoneTime), path)
			return nil
		}),
	}
	f := c.Flags()
	f.StringVar(&user, "user", "", "account name (env "+userEnv+")")
	f.BoolVar(&pwStdin, "password-stdin", false, "read the password from the first line of stdin")
	f.StringVar(&tokenOut, "print-token", "", `"-": print the token response as JSON instead of keeping it (for scripts)`)
	return c
}

func (a *app) logoutCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "logout",
		Short: "End the kept login at the node and remove its token file",
		Long: `End the login kept in the token file: the node ends its session (its
refresh token stops working at once; access tokens already issued run out
within minutes) and the file is removed. With --token, ends the session of
that access token instead.`,
		Args: cobra.NoArgs,
		RunE: a.runE(func(ctx context.Context, _ *cobra.Command, _ []string) error {
			var req pb.LogoutRequest
			path := ""
			if a.token == "" {
				sl, tok, p, err := a.readLogin()
				if err != nil {
					return err
				}
				if sl == nil {
					fmt.Fprintf(a.stderr, "not logged in at %s (no %s)\n", a.addr, p)
					return nil
				}
				path, req.RefreshToken = p, tok.GetRefreshToken()
			}
			cl, err := a.authClient()
			if err != nil {
				return err
			}
			cctx, cancel := a.call(ctx)
			defer cancel()
			_, callErr := cl.Logout(cctx, &req)
			if path != "" {
				if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
					return err
				}
				if callErr != nil {
					fmt.Fprintf(a.stderr, "warning: the node did not end the session (%s); removed %s anyway\n", status.Convert(callErr).Message(), path)
					return nil
				}
				fmt.Fprintf(a.stdout, "logged out at %s; removed %s\n", a.addr, path)
				return nil
			}
			if callErr != nil {
				return callErr
			}
			fmt.Fprintf(a.stdout, "logged out at %s\n", a.addr)
			return nil
		}),
	}
}

func (a *app) whoamiCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "whoami",
		Short: "Show who the node takes the caller for: role, unit, grids, permissions",
		Args:  cobra.NoArgs,
		RunE: a.runE(func(ctx context.Context, _ *cobra.Command, _ []string) error {
			cl, err := a.authClient()
			if err != nil {
				return err
			}
			cctx, cancel := a.call(ctx)
			defer cancel()
			p, err := cl.WhoAmI(cctx, &pb.WhoAmIRequest{})
			if err != nil {
				return err
			}
			if a.output == "json" {
				return writeJSON(a.stdout, p)
			}
			tw := newTable(a.stdout)
			row(tw, "principal:", p.GetId())
			row(tw, "name:", orDash(p.GetName()))
			row(tw, "kind:", orDash(p.GetKind()))
			row(tw, "role:", roles.name(p.GetRole()))
			row(tw, "node:", orDash(p.GetNode()))
			row(tw, "unit:", orDash(p.GetUnit()))
			row(tw, "grids:", orDash(strings.Join(p.GetGrids(), ", ")))
			row(tw, "sources:", orDash(sourceNames(p.GetSources())))
			row(tw, "via:", orDash(p.GetVia()))
			if a.credsFrom != "" {
				row(tw, "credentials:", a.credsFrom)
			}
			if s, ok := a.creds.get().(*authclient.Session); ok {
				tok := s.Token()
				row(tw, "token:", fmt.Sprintf("valid until %s, renewed until %s", fmtTime(tok.GetExpiresAt(), zoneTime), fmtTime(tok.GetRefreshExpiresAt(), zoneTime)))
			}
			for i, perm := range p.GetPermissions() {
				label := ""
				if i == 0 {
					label = "permissions:"
				}
				row(tw, label, perm)
			}
			return tw.Flush()
		}),
	}
}

func sourceNames(ss []pb.Source) string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = sources.name(s)
	}
	return strings.Join(out, ", ")
}
