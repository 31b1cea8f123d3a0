package replica

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/cityhub/cityhub/config"
	"github.com/cityhub/cityhub/federation/certs"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/auth"
	"github.com/cityhub/cityhub/tiers/node"
	"github.com/cityhub/cityhub/tiers/store"
)

// newAuthenticator builds the node's authenticator (nil with auth.disabled).
func newAuthenticator(cfg config.Config, n *node.Node) (*auth.Authenticator, error) {
	if cfg.Auth.Disabled {
		return nil, nil
	}
	opts := auth.Options{
		Node: cfg.Group(), TokenTTL: cfg.Auth.TokenTTL, SessionTTL: cfg.Auth.SessionTTL, KeyRotation: cfg.Auth.KeyRotation,
		Progress: n, // a follower behind a token's login waits for it instead of refusing it
	}
	if cfg.Auth.OIDC.Enabled() {
		// Discovery waits for the first token: a node starts without its
		// identity provider.
		o, err := auth.NewOIDC(context.Background(), cfg.Auth.OIDC.WithDefaults(), cfg.Group())
		if err != nil {
			return nil, fmt.Errorf("auth.oidc: %w", err)
		}
		opts.OIDC = o
	}
	return auth.NewAuthenticator(n.Store(), opts), nil
}

// apiTLS loads the client API's certificate (nil: plain text).
func apiTLS(cfg config.Config) (*certs.Reloader, error) {
	if !cfg.TLS.Enabled() {
		return nil, nil
	}
	return certs.NewReloader(cfg.TLS.Cert, cfg.TLS.Key)
}

// peerDialOptions are how this replica dials the other replicas' client
// API (reads a follower passes to the leader): TLS when the API uses it.
func peerDialOptions(cfg config.Config) ([]grpc.DialOption, error) {
	if !cfg.TLS.Enabled() {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.TLS.CA != "" {
		pem, err := os.ReadFile(cfg.TLS.CA)
		if err != nil {
			return nil, fmt.Errorf("tls.ca: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls.ca: %s holds no PEM certificate", cfg.TLS.CA)
		}
	}
	return []grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(tc))}, nil
}

// firstAdmin makes the first administrator (auth.admin_password_file): a
// leader job that proposes the account while it is missing.
type firstAdmin struct {
	n    *node.Node
	user string
	file string
	log  *slog.Logger
}

func startFirstAdmin(cfg config.Config, n *node.Node, log *slog.Logger) {
	if cfg.Auth.Disabled || cfg.Auth.AdminPasswordFile == "" {
		return
	}
	f := &firstAdmin{n: n, user: cfg.Auth.AdminUser, file: cfg.Auth.AdminPasswordFile, log: log.With("component", "auth")}
	n.AddLeaderJob("first-admin", f.lead)
}

// lead makes the account in this term of leadership, retrying until it
// exists or the term ends.
func (f *firstAdmin) lead(ctx context.Context) {
	for {
		done, err := f.ensure(ctx)
		if err != nil && ctx.Err() == nil {
			f.log.Warn("creating the first administrator", "user", f.user, "error", err)
		}
		if done {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func (f *firstAdmin) ensure(ctx context.Context) (bool, error) {
	if _, err := f.n.Store().GetAccount(f.user); err == nil {
		return true, nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return false, err
	}
	pw, err := os.ReadFile(f.file)
	if err != nil {
		return false, fmt.Errorf("auth.admin_password_file: %w", err)
	}
	hash, err := auth.HashPassword(strings.TrimSpace(string(pw)))
	if err != nil {
		return false, fmt.Errorf("auth.admin_password_file: %w", err)
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err = f.n.Propose(cctx, &pb.Command{RequestId: "first-admin/" + f.user, Body: &pb.Command_Auth{Auth: &pb.AuthChange{
		By: "system", CreateOnly: true,
		Op: &pb.AuthChange_PutAccount{PutAccount: &pb.Account{Name: f.user, DisplayName: "管理员", Role: pb.Role_ROLE_ADMIN, PasswordHash: hash}},
	}}})
	if err != nil {
		return false, err
	}
	f.log.Info("created the first administrator", "user", f.user)
	return true, nil
}
