package fsm

import (
	"errors"
	"fmt"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/store"
)

var (
	// ErrIdentityExists refuses creating an account or key whose name or
	// id is taken.
	ErrIdentityExists = errors.New("already exists")
	// ErrIdentityNotFound refuses changing an account, key or session that
	// does not exist.
	ErrIdentityNotFound = errors.New("not found")
)

// applyAuth applies an identity change (AuthChange, command 22). Secrets
// arrive hashed and signing keys as bytes the leader made: Apply only
// stores what the command says.
func applyAuth(tx *store.Tx, cmd *pb.Command, a *pb.AuthChange, index uint64, fp []byte) (*Result, error) {
	ev := &pb.AuditEvent{AtUnixMs: cmd.StampedUnixMs, Principal: a.By, RequestId: cmd.RequestId}
	refuse := func(err error) (*Result, error) { return &Result{Err: err}, nil }
	switch op := a.Op.(type) {
	case *pb.AuthChange_PutAccount:
		acct := op.PutAccount
		if acct == nil || acct.Name == "" {
			return refuse(fmt.Errorf("%w: account without a name", ErrBadCommand))
		}
		old, err := tx.GetAccount(acct.Name)
		switch {
		case err == nil && a.CreateOnly:
			return refuse(fmt.Errorf("account %q: %w", acct.Name, ErrIdentityExists))
		case err == nil:
			acct.CreatedUnixMs, acct.CreatedBy = old.CreatedUnixMs, old.CreatedBy
			ev.Action = "account.update"
		case errors.Is(err, store.ErrNotFound):
			if !a.CreateOnly {
				return refuse(fmt.Errorf("account %q: %w", acct.Name, ErrIdentityNotFound))
			}
			acct.CreatedUnixMs, acct.CreatedBy = cmd.StampedUnixMs, a.By
			ev.Action = "account.create"
		default:
			return nil, err
		}
		acct.UpdatedUnixMs = cmd.StampedUnixMs
		ev.Detail = fmt.Sprintf("%s (%s, unit %q)", acct.Name, acct.Role, acct.Unit)
		if err := tx.PutAccount(acct); err != nil {
			return nil, err
		}
	case *pb.AuthChange_DeleteAccount:
		if _, err := tx.GetAccount(op.DeleteAccount); errors.Is(err, store.ErrNotFound) {
			return refuse(fmt.Errorf("account %q: %w", op.DeleteAccount, ErrIdentityNotFound))
		} else if err != nil {
			return nil, err
		}
		ev.Action, ev.Detail = "account.delete", op.DeleteAccount
		if err := tx.DeleteAccount(op.DeleteAccount); err != nil {
			return nil, err
		}
	case *pb.AuthChange_PutKey:
		k := op.PutKey
		if k == nil || k.Id == "" {
			return refuse(fmt.Errorf("%w: key without an id", ErrBadCommand))
		}
		if _, err := tx.GetAPIKey(k.Id); err == nil {
			return refuse(fmt.Errorf("key %q: %w", k.Id, ErrIdentityExists))
		} else if !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		k.CreatedUnixMs, k.CreatedBy = cmd.StampedUnixMs, a.By
		ev.Action, ev.Detail = "key.create", fmt.Sprintf("%s %s (%s, %v)", k.Id, k.Name, k.Role, k.Sources)
		if err := tx.PutAPIKey(k); err != nil {
			return nil, err
		}
	case *pb.AuthChange_RevokeKey:
		k, err := tx.GetAPIKey(op.RevokeKey)
		if errors.Is(err, store.ErrNotFound) {
			return refuse(fmt.Errorf("key %q: %w", op.RevokeKey, ErrIdentityNotFound))
		} else if err != nil {
			return nil, err
		}
		if k.RevokedUnixMs == 0 {
			k.RevokedUnixMs = cmd.StampedUnixMs
		}
		ev.Action, ev.Detail = "key.revoke", k.Id+" "+k.Name
		if err := tx.PutAPIKey(k); err != nil {
			return nil, err
		}
	case *pb.AuthChange_PutSession:
		s := op.PutSession
		if s == nil || s.Id == "" || s.Account == "" {
			return refuse(fmt.Errorf("%w: session without an id or account", ErrBadCommand))
		}
		if _, err := tx.GetAccount(s.Account); errors.Is(err, store.ErrNotFound) {
			return refuse(fmt.Errorf("account %q: %w", s.Account, ErrIdentityNotFound))
		} else if err != nil {
			return nil, err
		}
		ev.Action, ev.Detail = "login", s.Account
		if err := tx.PutSession(s); err != nil {
			return nil, err
		}
	case *pb.AuthChange_DeleteSession:
		if _, err := tx.GetSession(op.DeleteSession); errors.Is(err, store.ErrNotFound) {
			return &Result{}, nil // already ended: logging out twice is fine
		} else if err != nil {
			return nil, err
		}
		ev.Action = "logout"
		if err := tx.DeleteSession(op.DeleteSession); err != nil {
			return nil, err
		}
	case *pb.AuthChange_PutSigningKey:
		k := op.PutSigningKey
		if k == nil || k.Id == "" || len(k.Secret) < 32 {
			return refuse(fmt.Errorf("%w: a signing key needs an id and 32 bytes", ErrBadCommand))
		}
		return &Result{}, tx.PutSigningKey(k) // not audited: the leader rotates keys by itself
	default:
		return refuse(fmt.Errorf("%w: identity change without an operation", ErrBadCommand))
	}
	if cmd.RequestId != "" {
		// A retried identity change returns the first result.
		if err := tx.PutRequest(cmd.RequestId, &pb.RequestRecord{Fingerprint: fp, LogIndex: index}); err != nil {
			return nil, err
		}
	}
	return &Result{}, tx.PutAudit(index, 0, ev)
}

// auditCase records the history entry a case write made on this node.
func auditCase(tx *store.Tx, c *pb.Case, index uint64, item int) error {
	if c == nil || len(c.History) == 0 {
		return nil
	}
	h := c.History[len(c.History)-1]
	principal := h.Principal
	if principal == "" {
		principal = h.Actor
	}
	return tx.PutAudit(index, item, &pb.AuditEvent{
		AtUnixMs: h.GetAt().AsTime().UnixMilli(), Principal: principal, Actor: h.Actor, Role: h.Role,
		Unit: h.ActorUnit, Action: h.Action.String(), CaseId: c.Id, Version: c.Version, RequestId: h.RequestId,
	})
}
