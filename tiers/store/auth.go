package store

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
	"google.golang.org/protobuf/proto"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// Identity and audit families (see tiers/auth/DESIGN.md).
const (
	pfxAccount = "A/" // A/<name>                              → Account
	pfxAPIKey  = "K/" // K/<key id>                            → APIKey
	pfxSession = "S/" // S/<session id>                        → Session
	pfxSigning = "J/" // J/<key id>                            → SigningKey
	pfxAudit   = "a/" // a/<at ms:8 BE><log index:8 BE><n:2 BE> → AuditEvent
)

func accountKey(name string) []byte { return []byte(pfxAccount + name) }
func apiKeyKey(id string) []byte    { return []byte(pfxAPIKey + id) }
func sessionKey(id string) []byte   { return []byte(pfxSession + id) }
func signingKey(id string) []byte   { return []byte(pfxSigning + id) }

func auditKey(atMs int64, index uint64, n int) []byte {
	k := make([]byte, 0, len(pfxAudit)+18)
	k = append(k, pfxAudit...)
	k = binary.BigEndian.AppendUint64(k, uint64(atMs))
	k = binary.BigEndian.AppendUint64(k, index)
	return binary.BigEndian.AppendUint16(k, uint16(n))
}

// GetAccount reads an account; ErrNotFound when absent.
func (tx *Tx) GetAccount(name string) (*pb.Account, error) {
	a := &pb.Account{}
	return a, tx.getProto(accountKey(name), a)
}

// PutAccount writes an account.
func (tx *Tx) PutAccount(a *pb.Account) error { return tx.putProto(accountKey(a.Name), a) }

// DeleteAccount deletes an account and every session of it.
func (tx *Tx) DeleteAccount(name string) error {
	if err := tx.del(accountKey(name)); err != nil {
		return err
	}
	var ids []string
	if err := eachProto(tx, []byte(pfxSession), func() proto.Message { return &pb.Session{} }, func(m proto.Message) error {
		if s := m.(*pb.Session); s.Account == name {
			ids = append(ids, s.Id)
		}
		return nil
	}); err != nil {
		return err
	}
	for _, id := range ids {
		if err := tx.del(sessionKey(id)); err != nil {
			return err
		}
	}
	return nil
}

// GetAPIKey reads an integrator key; ErrNotFound when absent.
func (tx *Tx) GetAPIKey(id string) (*pb.APIKey, error) {
	k := &pb.APIKey{}
	return k, tx.getProto(apiKeyKey(id), k)
}

// PutAPIKey writes an integrator key.
func (tx *Tx) PutAPIKey(k *pb.APIKey) error { return tx.putProto(apiKeyKey(k.Id), k) }

// GetSession reads a login session; ErrNotFound when absent.
func (tx *Tx) GetSession(id string) (*pb.Session, error) {
	s := &pb.Session{}
	return s, tx.getProto(sessionKey(id), s)
}

// PutSession writes a login session and drops the account's sessions that
// lapsed before it began (sessions never pile up).
func (tx *Tx) PutSession(s *pb.Session) error {
	var stale []string
	if err := eachProto(tx, []byte(pfxSession), func() proto.Message { return &pb.Session{} }, func(m proto.Message) error {
		if o := m.(*pb.Session); o.Account == s.Account && o.ExpiresUnixMs <= s.CreatedUnixMs {
			stale = append(stale, o.Id)
		}
		return nil
	}); err != nil {
		return err
	}
	for _, id := range stale {
		if err := tx.del(sessionKey(id)); err != nil {
			return err
		}
	}
	return tx.putProto(sessionKey(s.Id), s)
}

// DeleteSession ends a login session.
func (tx *Tx) DeleteSession(id string) error { return tx.del(sessionKey(id)) }

// PutSigningKey stores a token signing key.
func (tx *Tx) PutSigningKey(k *pb.SigningKey) error { return tx.putProto(signingKey(k.Id), k) }

// PutAudit appends one event to the audit trail; index and n make its key
// unique (the log entry and the event's place in it).
func (tx *Tx) PutAudit(index uint64, n int, ev *pb.AuditEvent) error {
	return tx.putProto(auditKey(ev.AtUnixMs, index, n), ev)
}

func eachProto(tx *Tx, prefix []byte, mk func() proto.Message, fn func(proto.Message) error) error {
	it := tx.iterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true, PrefetchSize: 64})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		m := mk()
		if err := it.Item().Value(func(v []byte) error { return proto.Unmarshal(v, m) }); err != nil {
			return fmt.Errorf("decode %q: %w", it.Item().Key(), err)
		}
		if err := fn(m); err != nil {
			return err
		}
	}
	return nil
}

// GetAccount reads an account; ErrNotFound when absent.
func (s *Store) GetAccount(name string) (a *pb.Account, err error) {
	err = s.View(func(tx *Tx) error { a, err = tx.GetAccount(name); return err })
	return a, err
}

// GetAPIKey reads an integrator key; ErrNotFound when absent.
func (s *Store) GetAPIKey(id string) (k *pb.APIKey, err error) {
	err = s.View(func(tx *Tx) error { k, err = tx.GetAPIKey(id); return err })
	return k, err
}

// GetSession reads a login session; ErrNotFound when absent.
func (s *Store) GetSession(id string) (ss *pb.Session, err error) {
	err = s.View(func(tx *Tx) error { ss, err = tx.GetSession(id); return err })
	return ss, err
}

// Accounts lists every account, by name.
func (s *Store) Accounts() ([]*pb.Account, error) {
	var out []*pb.Account
	err := s.View(func(tx *Tx) error {
		return eachProto(tx, []byte(pfxAccount), func() proto.Message { return &pb.Account{} }, func(m proto.Message) error {
			out = append(out, m.(*pb.Account))
			return nil
		})
	})
	return out, err
}

// APIKeys lists every integrator key, by id.
func (s *Store) APIKeys() ([]*pb.APIKey, error) {
	var out []*pb.APIKey
	err := s.View(func(tx *Tx) error {
		return eachProto(tx, []byte(pfxAPIKey), func() proto.Message { return &pb.APIKey{} }, func(m proto.Message) error {
			out = append(out, m.(*pb.APIKey))
			return nil
		})
	})
	return out, err
}

// SigningKeys lists the token signing keys.
func (s *Store) SigningKeys() ([]*pb.SigningKey, error) {
	var out []*pb.SigningKey
	err := s.View(func(tx *Tx) error {
		return eachProto(tx, []byte(pfxSigning), func() proto.Message { return &pb.SigningKey{} }, func(m proto.Message) error {
			out = append(out, m.(*pb.SigningKey))
			return nil
		})
	})
	return out, err
}

// ErrBadAuditToken is a page token Audit did not make.
var ErrBadAuditToken = errors.New("bad audit page token")

// Audit lists the audit events in [sinceMs, untilMs), oldest first, at most
// pageSize, only principal's when it is set. The page token is the key to
// continue from.
func (s *Store) Audit(sinceMs, untilMs int64, principal string, pageSize int, pageToken string) ([]*pb.AuditEvent, string, error) {
	start := auditKey(sinceMs, 0, 0)
	if pageToken != "" {
		k, err := base64.RawURLEncoding.DecodeString(pageToken)
		if err != nil || len(k) != len(start) || string(k[:len(pfxAudit)]) != pfxAudit {
			return nil, "", fmt.Errorf("%w: %w", ErrBadPageToken, ErrBadAuditToken)
		}
		start = k
	}
	end := auditKey(untilMs, 0, 0)
	var (
		out  []*pb.AuditEvent
		next string
	)
	err := s.View(func(tx *Tx) error {
		it := tx.iterator(badger.IteratorOptions{Prefix: []byte(pfxAudit), PrefetchValues: true, PrefetchSize: 64})
		defer it.Close()
		for it.Seek(start); it.Valid(); it.Next() {
			k := it.Item().Key()
			if string(k) >= string(end) {
				return nil
			}
			if len(out) == pageSize {
				next = base64.RawURLEncoding.EncodeToString(it.Item().KeyCopy(nil))
				return nil
			}
			ev := &pb.AuditEvent{}
			if err := it.Item().Value(func(v []byte) error { return proto.Unmarshal(v, ev) }); err != nil {
				return fmt.Errorf("decode audit %x: %w", k, err)
			}
			if principal == "" || ev.Principal == principal {
				out = append(out, ev)
			}
		}
		return nil
	})
	return out, next, err
}

// GetRequest reads the record of a request id; ErrNotFound when absent.
func (s *Store) GetRequest(id string) (r *pb.RequestRecord, err error) {
	err = s.View(func(tx *Tx) error { r, err = tx.GetRequest(id); return err })
	return r, err
}
