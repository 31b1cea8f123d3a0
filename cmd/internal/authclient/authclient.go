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
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

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
	// saved, when set, is called with every new token response (a
	// refreshed login kept in a file).
	saved func(*pb.TokenResponse)

	mu  sync.Mutex
	tok *pb.TokenResponse // nil: not logged in yet (Lazy)
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

// Lazy returns a session of user that logs in through cc on its first
// call (a program with many accounts logs in only those it uses).
func Lazy(cc grpc.ClientConnInterface, user, password string) *Session {
	return &Session{client: pb.NewAuthServiceClient(cc), user: user, pw: password}
}

// Resume continues a login kept from an earlier run (tok, from Login or
// Refresh): it refreshes the access token through cc when it is about to
// expire, and calls saved (which may be nil) with each new token response.
// With no password it cannot log in again: once the refresh token has
// lapsed its calls fail with Unauthenticated.
func Resume(cc grpc.ClientConnInterface, tok *pb.TokenResponse, saved func(*pb.TokenResponse)) *Session {
	return &Session{client: pb.NewAuthServiceClient(cc), tok: tok, saved: saved}
}

// ownCall marks the session's own login and refresh calls, which carry no
// credentials (the session may be the connection's credentials itself).
type ownCall struct{}

func (s *Session) login(ctx context.Context) error {
	if s.pw == "" {
		return status.Errorf(codes.Unauthenticated, "the login of %s has ended and cannot be refreshed: log in again (cityhubctl login)", orAccount(s.tok.GetPrincipal().GetId()))
	}
	tok, err := s.client.Login(context.WithValue(ctx, ownCall{}, true), &pb.LoginRequest{Username: s.user, Password: s.pw})
	if err != nil {
		return fmt.Errorf("login as %s: %w", s.user, err)
	}
	s.set(tok)
	return nil
}

func (s *Session) set(tok *pb.TokenResponse) {
	s.tok = tok
	if s.saved != nil {
		s.saved(tok)
	}
}

func orAccount(id string) string {
	if id == "" {
		return "this account"
	}
	return id
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
	switch {
	case s.tok == nil:
		if err := s.login(ctx); err != nil {
			return nil, err
		}
	case time.Until(s.tok.GetExpiresAt().AsTime()) < time.Minute:
		// The refresh and login calls carry no credentials of their own.
		tok, err := s.client.Refresh(context.WithValue(ctx, ownCall{}, true), &pb.RefreshRequest{RefreshToken: s.tok.RefreshToken})
		if err == nil {
			s.set(tok)
		} else if err := s.login(ctx); err != nil {
			return nil, err
		}
	}
	return map[string]string{"authorization": "Bearer " + s.tok.AccessToken}, nil
}

// RequireTransportSecurity: see Bearer.
func (*Session) RequireTransportSecurity() bool { return false }
