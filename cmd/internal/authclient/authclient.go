// Package authclient gives cityhub's programs (cityhubctl, the demo, the
// load generator) their credentials: a fixed bearer token or integrator
// key, or a login session that refreshes its access token before it
// expires. Both are gRPC per-RPC credentials.
package authclient

import (
	"context"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// Bearer sends a fixed token or integrator key with every call.
type Bearer string

// GetRequestMetadata implements credentials.PerRPCCredentials.
func (b Bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

// RequireTransportSecurity is false: plain text is allowed on loopback,
// and the node refuses plain text elsewhere.
func (Bearer) RequireTransportSecurity() bool { return false }

// Session is a login that refreshes its access token a minute before it
// expires, and logs in again when the refresh token has lapsed.
type Session struct {
	client   pb.AuthServiceClient
	user, pw string

	mu  sync.Mutex
	tok *pb.TokenResponse
}

// Login logs user in through cc (a connection to the node) and returns the
// session.
func Login(ctx context.Context, cc grpc.ClientConnInterface, user, password string) (*Session, error) {
	s := &Session{client: pb.NewAuthServiceClient(cc), user: user, pw: password}
	if err := s.login(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// ownCall marks the session's own login and refresh calls, which carry no
// credentials (the session may be the connection's credentials itself).
type ownCall struct{}

func (s *Session) login(ctx context.Context) error {
	tok, err := s.client.Login(context.WithValue(ctx, ownCall{}, true), &pb.LoginRequest{Username: s.user, Password: s.pw})
	if err != nil {
		return fmt.Errorf("login as %s: %w", s.user, err)
	}
	s.tok = tok
	return nil
}

// Token returns the current token response (access and refresh tokens).
func (s *Session) Token() *pb.TokenResponse {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tok
}

// GetRequestMetadata implements credentials.PerRPCCredentials.
func (s *Session) GetRequestMetadata(ctx context.Context, _ ...string) (map[string]string, error) {
	if ctx.Value(ownCall{}) != nil {
		return nil, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if time.Until(s.tok.GetExpiresAt().AsTime()) < time.Minute {
		// The refresh and login calls carry no credentials of their own.
		tok, err := s.client.Refresh(context.WithValue(ctx, ownCall{}, true), &pb.RefreshRequest{RefreshToken: s.tok.RefreshToken})
		if err == nil {
			s.tok = tok
		} else if err := s.login(ctx); err != nil {
			return nil, err
		}
	}
	return map[string]string{"authorization": "Bearer " + s.tok.AccessToken}, nil
}

// RequireTransportSecurity: see Bearer.
func (*Session) RequireTransportSecurity() bool { return false }
