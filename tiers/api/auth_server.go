package api

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/auth"
	"github.com/cityhub/cityhub/tiers/catalogue"
)

// errAuthOff answers the identity calls of a node whose authentication is
// turned off.

// AuthServer implements cityhub.v1.AuthService.
type AuthServer struct {
	pb.UnimplementedAuthServiceServer
	replica Replica
	authn   *auth.Authenticator // nil: authentication is off
	g       *guard
	lim     *limiter // failed logins per username and address (nil: no limit)
	now     func() time.Time
}

var accountNameRe = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,31}$`)

// Login checks a password, records a session and issues the tokens.
func (s *AuthServer) Login(ctx context.Context, r *pb.LoginRequest) (*pb.TokenResponse, error) {
	if s.authn == nil {
		return nil, toStatus(errAuthOff)
	}
	if r.Username == "" || r.Password == "" {
		return nil, toStatus(invalid("username", "username and password are required"))
	}
	failed, err := s.lim.loginAttempt(ctx, r.Username)
	if err != nil {
		return nil, err
	}
	acct, err := s.authn.Login(r.Username, r.Password)
	if err != nil {
		failed()
		s.g.failed.WithLabelValues(pb.AuthService_Login_FullMethodName).Inc()
		s.g.log.Warn("login failed", "user", r.Username, "peer", callerHost(ctx))
		return nil, errUnauthenticated
	}
	if err := s.ensureSigningKey(ctx); err != nil {
		return nil, toStatus(err)
	}
	sid := auth.RandomToken(12)
	secret := auth.RandomToken(32)
	now := s.now()
	exp := now.Add(s.authn.Options().SessionTTL)
	if err := s.change(ctx, "login/"+sid, "acct:"+acct.Name, false, &pb.AuthChange{Op: &pb.AuthChange_PutSession{PutSession: &pb.Session{
		Id: sid, Account: acct.Name, RefreshHash: auth.HashToken(secret), CreatedUnixMs: now.UnixMilli(), ExpiresUnixMs: exp.UnixMilli(),
	}}}); err != nil {
		return nil, toStatus(err)
	}
	// On a follower the session is committed but may not be applied here
	// yet: the token would be refused here until it is.
	s.awaitLocal(ctx, func() bool { _, err := s.replica.Store().GetSession(sid); return err == nil })
	return s.tokens(ctx, acct, sid, sid+"."+secret, exp)
}

// awaitLocal waits, a few seconds at most, until this replica has applied
// what a write through the leader made (cond holds): an answer read from
// the local store then shows it.
func (s *AuthServer) awaitLocal(ctx context.Context, cond func() bool) {
	deadline := time.Now().Add(5 * time.Second)
	for !cond() && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// tokens issues an access token for acct's session sid.
func (s *AuthServer) tokens(ctx context.Context, acct *pb.Account, sid, refresh string, refreshExp time.Time) (*pb.TokenResponse, error) {
	var (
		tok string
		exp time.Time
		err error
	)
	// A key the leader just made may not have reached this replica yet.
	for attempt := 0; attempt < 50; attempt++ {
		if tok, exp, err = s.authn.Issue(acct.Name, sid); !errors.Is(err, auth.ErrNoSigningKey) {
			break
		}
		select {
		case <-ctx.Done():
			return nil, toStatus(ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
		_ = s.authn.Reload()
	}
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.TokenResponse{
		AccessToken: tok, TokenType: "Bearer", ExpiresAt: timestamppb.New(exp),
		RefreshToken: refresh, RefreshExpiresAt: timestamppb.New(refreshExp),
		Principal: auth.AccountPrincipal(acct, s.authn.Options().Node, auth.ViaPassword).Proto(),
	}, nil
}

// ensureSigningKey makes a new token signing key through the log when the
// newest is missing or older than the rotation period.
func (s *AuthServer) ensureSigningKey(ctx context.Context) error {
	if !s.authn.SigningKeyDue() {
		return nil
	}
	id := auth.RandomToken(9)
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return err
	}
	if err := s.change(ctx, "signing-key/"+id, "system", false, &pb.AuthChange{Op: &pb.AuthChange_PutSigningKey{PutSigningKey: &pb.SigningKey{
		Id: id, Secret: key, CreatedUnixMs: s.now().UnixMilli(),
	}}}); err != nil {
		return err
	}
	return s.authn.Reload()
}

// Refresh exchanges a refresh token for a new access token.
func (s *AuthServer) Refresh(ctx context.Context, r *pb.RefreshRequest) (*pb.TokenResponse, error) {
	if s.authn == nil {
		return nil, toStatus(errAuthOff)
	}
	sid, secret, ok := strings.Cut(r.RefreshToken, ".")
	if !ok {
		return nil, errUnauthenticated
	}
	acct, err := s.authn.Refresh(sid, secret)
	if err != nil {
		s.g.failed.WithLabelValues(pb.AuthService_Refresh_FullMethodName).Inc()
		s.g.log.Warn("refresh failed", "reason", err, "peer", peerAddr(ctx))
		return nil, errUnauthenticated
	}
	sess, err := s.replica.Store().GetSession(sid)
	if err != nil {
		return nil, errUnauthenticated
	}
	return s.tokens(ctx, acct, sid, r.RefreshToken, time.UnixMilli(sess.ExpiresUnixMs))
}

// Logout ends the session of a refresh token, or the caller's own.
func (s *AuthServer) Logout(ctx context.Context, r *pb.LogoutRequest) (*pb.LogoutResponse, error) {
	if s.authn == nil {
		return nil, toStatus(errAuthOff)
	}
	p := s.g.principal(ctx)
	sid := p.Session
	if r.RefreshToken != "" {
		id, _, _ := strings.Cut(r.RefreshToken, ".")
		sess, err := s.replica.Store().GetSession(id)
		if err != nil {
			return &pb.LogoutResponse{}, nil // already ended
		}
		if "acct:"+sess.Account != p.ID {
			return nil, toStatus(invalid("refresh_token", "not a session of the caller"))
		}
		sid = id
	}
	if sid == "" {
		return nil, toStatus(invalid("refresh_token", "the caller has no login session (an API key or an identity provider's token)"))
	}
	return &pb.LogoutResponse{}, s.change(ctx, "logout/"+sid, p.ID, false, &pb.AuthChange{Op: &pb.AuthChange_DeleteSession{DeleteSession: sid}})
}

// WhoAmI returns the caller as the node sees it.
func (s *AuthServer) WhoAmI(ctx context.Context, _ *pb.WhoAmIRequest) (*pb.Principal, error) {
	p := s.g.principal(ctx)
	if p == nil {
		return nil, toStatus(errAuthOff)
	}
	return p.Proto(), nil
}

// change proposes an identity change made by principal by.
func (s *AuthServer) change(ctx context.Context, requestID, by string, createOnly bool, a *pb.AuthChange) error {
	a.By, a.CreateOnly = by, createOnly
	_, err := s.replica.Propose(ctx, &pb.Command{RequestId: requestID, Body: &pb.Command_Auth{Auth: a}})
	return toStatus(err)
}

func (s *AuthServer) admin(ctx context.Context, perm auth.Permission) (*auth.Principal, error) {
	if s.authn == nil {
		return nil, toStatus(errAuthOff)
	}
	if err := s.g.require(ctx, perm, nil); err != nil {
		return nil, err
	}
	return s.g.principal(ctx), nil
}

func checkAccountFields(role pb.Role, unit string, grids []string, forCreate bool) error {
	if _, ok := auth.Rules[role]; !ok {
		return invalid("role", "one of INSPECTOR, INTAKE_CLERK, SHIFT_LEADER, DISPATCHER, HANDLING_UNIT, SUPERVISOR, EVALUATOR, ADMIN")
	}
	if forCreate && role == pb.Role_ROLE_CITIZEN || forCreate && role == pb.Role_ROLE_SYSTEM {
		return invalid("role", "CITIZEN and SYSTEM are integrators: give them an API key (keys create)")
	}
	if unit != "" && !unitRe.MatchString(unit) {
		return invalid("unit", "not a unit id")
	}
	if role == pb.Role_ROLE_HANDLING_UNIT && unit == "" {
		return invalid("unit", "required for a handling unit's seat: the unit it works for")
	}
	for i, g := range grids {
		if g == "" || len(g) > catalogue.GridCodeLen || !allDigits(g) {
			return invalid("grids", "grid %d: 1 to %d digits (a grid code or its prefix)", i, catalogue.GridCodeLen)
		}
	}
	if role == pb.Role_ROLE_INSPECTOR && len(grids) == 0 {
		return invalid("grids", "required for an inspector: the grids they patrol")
	}
	return nil
}

// CreateAccount adds a person's seat.
func (s *AuthServer) CreateAccount(ctx context.Context, r *pb.CreateAccountRequest) (*pb.AccountView, error) {
	p, err := s.admin(ctx, auth.AccountsManage)
	if err != nil {
		return nil, err
	}
	if err := checkRequestID(r.RequestId); err != nil {
		return nil, toStatus(err)
	}
	if !accountNameRe.MatchString(r.Name) {
		return nil, toStatus(invalid("name", "1 to 32 characters of a-z 0-9 . _ -, starting with a letter or digit"))
	}
	if err := checkText("display_name", r.DisplayName, MaxName); err != nil {
		return nil, toStatus(err)
	}
	if err := checkAccountFields(r.Role, r.Unit, r.Grids, true); err != nil {
		return nil, toStatus(err)
	}
	if _, err := s.replica.Store().GetAccount(r.Name); err == nil {
		return nil, toStatus(fmt.Errorf("account %q: %w", r.Name, errAccountExists))
	}
	hash, err := auth.HashPassword(r.Password)
	if err != nil {
		return nil, toStatus(invalid("password", "%v", err))
	}
	acct := &pb.Account{Name: r.Name, DisplayName: r.DisplayName, Role: r.Role, Unit: r.Unit, Grids: r.Grids, PasswordHash: hash}
	if err := s.change(ctx, r.RequestId, p.ID, true, &pb.AuthChange{Op: &pb.AuthChange_PutAccount{PutAccount: acct}}); err != nil {
		return nil, err
	}
	s.awaitLocal(ctx, func() bool { _, err := s.replica.Store().GetAccount(r.Name); return err == nil })
	return s.view(r.Name)
}

// errAccountExists refuses a second account of the same name before
// anything is proposed.

func (s *AuthServer) view(name string) (*pb.AccountView, error) {
	a, err := s.replica.Store().GetAccount(name)
	if err != nil {
		return nil, toStatus(fmt.Errorf("account %q: %w", name, err))
	}
	return accountView(a), nil
}

func accountView(a *pb.Account) *pb.AccountView {
	return &pb.AccountView{
		Name: a.Name, DisplayName: a.DisplayName, Role: a.Role, Unit: a.Unit, Grids: a.Grids, Disabled: a.Disabled,
		CreatedAt: msTime(a.CreatedUnixMs), UpdatedAt: msTime(a.UpdatedUnixMs), CreatedBy: a.CreatedBy,
	}
}

func msTime(ms int64) *timestamppb.Timestamp {
	if ms == 0 {
		return nil
	}
	return timestamppb.New(time.UnixMilli(ms))
}

// UpdateAccount changes a seat; a new password, disabling or revoke_tokens
// ends every token issued to it so far.
func (s *AuthServer) UpdateAccount(ctx context.Context, r *pb.UpdateAccountRequest) (*pb.AccountView, error) {
	p, err := s.admin(ctx, auth.AccountsManage)
	if err != nil {
		return nil, err
	}
	if err := checkRequestID(r.RequestId); err != nil {
		return nil, toStatus(err)
	}
	old, err := s.replica.Store().GetAccount(r.Name)
	if err != nil {
		return nil, toStatus(fmt.Errorf("account %q: %w", r.Name, err))
	}
	a := old
	if r.DisplayName != "" {
		if err := checkText("display_name", r.DisplayName, MaxName); err != nil {
			return nil, toStatus(err)
		}
		a.DisplayName = r.DisplayName
	}
	if r.Role != pb.Role_ROLE_UNSPECIFIED {
		a.Role = r.Role
	}
	if r.Unit != "" {
		a.Unit = r.Unit
	}
	if r.SetGrids {
		a.Grids = r.Grids
	}
	if err := checkAccountFields(a.Role, a.Unit, a.Grids, true); err != nil {
		return nil, toStatus(err)
	}
	revoke := r.RevokeTokens
	if r.Password != "" {
		if a.PasswordHash, err = auth.HashPassword(r.Password); err != nil {
			return nil, toStatus(invalid("password", "%v", err))
		}
		revoke = true
	}
	if r.Disable && r.Enable {
		return nil, toStatus(invalid("disable", "disable or enable, not both"))
	}
	if r.Disable {
		a.Disabled, revoke = true, true
	}
	if r.Enable {
		a.Disabled = false
	}
	if revoke {
		a.TokensValidAfterUnixMs = s.now().UnixMilli()
	}
	before := a.UpdatedUnixMs
	if err := s.change(ctx, r.RequestId, p.ID, false, &pb.AuthChange{Op: &pb.AuthChange_PutAccount{PutAccount: a}}); err != nil {
		return nil, err
	}
	s.awaitLocal(ctx, func() bool {
		n, err := s.replica.Store().GetAccount(r.Name)
		return err == nil && n.UpdatedUnixMs != before
	})
	return s.view(r.Name)
}

// DeleteAccount removes a seat and its sessions.
func (s *AuthServer) DeleteAccount(ctx context.Context, r *pb.DeleteAccountRequest) (*pb.DeleteAccountResponse, error) {
	p, err := s.admin(ctx, auth.AccountsManage)
	if err != nil {
		return nil, err
	}
	if r.RequestId == "" {
		r.RequestId = "delete-account/" + r.Name + "/" + auth.RandomToken(6)
	}
	if err := checkRequestID(r.RequestId); err != nil {
		return nil, toStatus(err)
	}
	if p.ID == "acct:"+r.Name {
		return nil, toStatus(invalid("name", "an administrator cannot delete their own account"))
	}
	if _, err := s.replica.Store().GetAccount(r.Name); err != nil {
		return nil, toStatus(fmt.Errorf("account %q: %w", r.Name, err))
	}
	return &pb.DeleteAccountResponse{}, s.change(ctx, r.RequestId, p.ID, false, &pb.AuthChange{Op: &pb.AuthChange_DeleteAccount{DeleteAccount: r.Name}})
}

// ListAccounts lists the node's seats.
func (s *AuthServer) ListAccounts(ctx context.Context, _ *pb.ListAccountsRequest) (*pb.ListAccountsResponse, error) {
	if _, err := s.admin(ctx, auth.AccountsManage); err != nil {
		return nil, err
	}
	accts, err := s.replica.Store().Accounts()
	if err != nil {
		return nil, toStatus(err)
	}
	out := &pb.ListAccountsResponse{}
	for _, a := range accts {
		out.Accounts = append(out.Accounts, accountView(a))
	}
	return out, nil
}

// integratorRoles are the roles an API key may have.
var integratorRoles = map[pb.Role]bool{pb.Role_ROLE_INTAKE_CLERK: true, pb.Role_ROLE_CITIZEN: true, pb.Role_ROLE_SYSTEM: true}

// CreateAPIKey makes an integrator key and shows it once.
func (s *AuthServer) CreateAPIKey(ctx context.Context, r *pb.CreateAPIKeyRequest) (*pb.CreateAPIKeyResponse, error) {
	p, err := s.admin(ctx, auth.KeysManage)
	if err != nil {
		return nil, err
	}
	if err := checkRequestID(r.RequestId); err != nil {
		return nil, toStatus(err)
	}
	if r.Name == "" {
		return nil, toStatus(invalid("name", "required: who the key is for, e.g. 12345 热线平台"))
	}
	if err := checkText("name", r.Name, MaxName); err != nil {
		return nil, toStatus(err)
	}
	if !integratorRoles[r.Role] {
		return nil, toStatus(invalid("role", "INTAKE_CLERK (hotline platform), CITIZEN (citizens' app) or SYSTEM (camera analytics)"))
	}
	if len(r.Sources) == 0 {
		return nil, toStatus(invalid("sources", "required: the sources it reports as, e.g. HOTLINE_12345"))
	}
	for _, src := range r.Sources {
		if _, ok := pb.Source_name[int32(src)]; !ok || src == pb.Source_SOURCE_UNSPECIFIED {
			return nil, toStatus(invalid("sources", "unknown source %d", src))
		}
	}
	if r.Unit != "" && !unitRe.MatchString(r.Unit) {
		return nil, toStatus(invalid("unit", "not a unit id"))
	}
	if rec, err := s.replica.Store().GetRequest(r.RequestId); err == nil && rec != nil {
		return nil, toStatus(invalid("request_id", "already used: a key is shown only once; revoke it and create another"))
	}
	id, key, hash := auth.NewAPIKey()
	k := &pb.APIKey{Id: id, Name: r.Name, SecretHash: hash, Role: r.Role, Sources: r.Sources, ReadAll: r.ReadAll, Unit: r.Unit}
	if err := s.change(ctx, r.RequestId, p.ID, true, &pb.AuthChange{Op: &pb.AuthChange_PutKey{PutKey: k}}); err != nil {
		return nil, err
	}
	s.awaitLocal(ctx, func() bool { _, err := s.replica.Store().GetAPIKey(id); return err == nil })
	stored, err := s.replica.Store().GetAPIKey(id)
	if err != nil {
		stored = k
	}
	return &pb.CreateAPIKeyResponse{Key: key, Info: keyView(stored)}, nil
}

func keyView(k *pb.APIKey) *pb.APIKeyView {
	return &pb.APIKeyView{
		Id: k.Id, Name: k.Name, Role: k.Role, Sources: k.Sources, ReadAll: k.ReadAll, Unit: k.Unit,
		CreatedAt: msTime(k.CreatedUnixMs), RevokedAt: msTime(k.RevokedUnixMs), CreatedBy: k.CreatedBy,
	}
}

// ListAPIKeys lists the integrator keys (never their secrets).
func (s *AuthServer) ListAPIKeys(ctx context.Context, _ *pb.ListAPIKeysRequest) (*pb.ListAPIKeysResponse, error) {
	if _, err := s.admin(ctx, auth.KeysManage); err != nil {
		return nil, err
	}
	keys, err := s.replica.Store().APIKeys()
	if err != nil {
		return nil, toStatus(err)
	}
	out := &pb.ListAPIKeysResponse{}
	for _, k := range keys {
		out.Keys = append(out.Keys, keyView(k))
	}
	return out, nil
}

// RevokeAPIKey ends an integrator key at once.
func (s *AuthServer) RevokeAPIKey(ctx context.Context, r *pb.RevokeAPIKeyRequest) (*pb.RevokeAPIKeyResponse, error) {
	p, err := s.admin(ctx, auth.KeysManage)
	if err != nil {
		return nil, err
	}
	if r.RequestId == "" {
		r.RequestId = "revoke-key/" + r.Id
	}
	if err := checkRequestID(r.RequestId); err != nil {
		return nil, toStatus(err)
	}
	if _, err := s.replica.Store().GetAPIKey(r.Id); err != nil {
		return nil, toStatus(fmt.Errorf("key %q: %w", r.Id, err))
	}
	return &pb.RevokeAPIKeyResponse{}, s.change(ctx, r.RequestId, p.ID, false, &pb.AuthChange{Op: &pb.AuthChange_RevokeKey{RevokeKey: r.Id}})
}

// MaxAuditPage bounds ListAudit pages.
const MaxAuditPage = 1000

// ListAudit lists who did what on this node in a time range.
func (s *AuthServer) ListAudit(ctx context.Context, r *pb.ListAuditRequest) (*pb.ListAuditResponse, error) {
	if err := s.g.require(ctx, auth.AuditRead, nil); err != nil {
		return nil, err
	}
	if r.PageSize < 0 || r.PageSize > MaxAuditPage {
		return nil, toStatus(invalid("page_size", "between 1 and %d (0 means 100)", MaxAuditPage))
	}
	size := int(r.PageSize)
	if size == 0 {
		size = 100
	}
	now := s.now()
	since, until := now.Add(-24*time.Hour), now.Add(time.Minute)
	if r.Since != nil {
		since = r.Since.AsTime()
	}
	if r.Until != nil {
		until = r.Until.AsTime()
	}
	if !since.Before(until) {
		return nil, toStatus(invalid("until", "must be after since"))
	}
	evs, next, err := s.replica.Store().Audit(since.UnixMilli(), until.UnixMilli(), r.Principal, size, r.PageToken)
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.ListAuditResponse{Events: evs, NextPageToken: next}, nil
}
