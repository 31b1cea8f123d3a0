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
	pfxAudit   = "a/" // a/<at ms:8 BE><log index:8 BE><n:2 BE> → a page of AuditEvent (pages.go)
)

// The audit events of one command stamped in the same millisecond (all
// of a command's, in practice) are one record, a page, under the key its
// first event would have alone: n is the event's place in the log entry
// (a batch item's number), and the page holds the events n, n+1, ... A
// release before 2026-12-05 wrote a record an event (the AuditEvent); it
// reads as a page of one.

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
// unique (the log entry and the event's place in it). It joins the
// command's page when it follows its last event; the page is written when
// the next command begins or the transaction commits (flushPages).
func (tx *Tx) PutAudit(index uint64, n int, ev *pb.AuditEvent) error {
	p := &tx.audit
	if len(p.events) > 0 && (p.index != index || p.atMs != ev.AtUnixMs || p.first+len(p.events) != n) {
		if err := tx.flushAudit(); err != nil {
			return err
		}
	}
	if len(p.events) == 0 {
		p.index, p.atMs, p.first = index, ev.AtUnixMs, n
	}
	p.events = append(p.events, ev)
	return nil
}

// auditPage is a command's audit events not written yet: the events
// first, first+1, ... of log entry index, stamped atMs.
type auditPage struct {
	index  uint64
	atMs   int64
	first  int
	events []*pb.AuditEvent
}

// flushAudit writes the pending audit events as one page.
func (tx *Tx) flushAudit() error {
	p := &tx.audit
	if len(p.events) == 0 {
		return nil
	}
	events := p.events
	p.events = nil
	v, err := tx.pages.encode(len(events), func(i int) proto.Message { return events[i] })
	if err != nil {
		return fmt.Errorf("encode audit page of entry %d: %w", p.index, err)
	}
	return tx.set(auditKey(p.atMs, p.index, p.first), v)
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
		// A token may name an event inside a page: begin with that page.
		from := auditPageOf(tx, start)
		it := tx.iterator(badger.IteratorOptions{Prefix: []byte(pfxAudit), PrefetchValues: true, PrefetchSize: 64})
		defer it.Close()
		for it.Seek(from); it.Valid(); it.Next() {
			k := it.Item().Key()
			if string(k) >= string(end) {
				return nil
			}
			if len(k) != len(start) {
				return fmt.Errorf("audit key %x has %d bytes, want %d", k, len(k), len(start))
			}
			atMs, index := int64(binary.BigEndian.Uint64(k[2:])), binary.BigEndian.Uint64(k[10:])
			first := int(binary.BigEndian.Uint16(k[18:]))
			err := it.Item().Value(func(v []byte) error {
				return decodePage(v, func(i int, raw []byte) error {
					key := auditKey(atMs, index, first+i)
					if string(key) < string(start) || next != "" {
						return nil
					}
					if len(out) == pageSize {
						next = base64.RawURLEncoding.EncodeToString(key)
						return nil
					}
					ev := &pb.AuditEvent{}
					if err := proto.Unmarshal(raw, ev); err != nil {
						return err
					}
					if principal == "" || ev.Principal == principal {
						out = append(out, ev)
					}
					return nil
				})
			})
			if err != nil {
				return fmt.Errorf("decode audit %x: %w", k, err)
			}
			if next != "" {
				return nil
			}
		}
		return nil
	})
	return out, next, err
}

// auditPageOf is the key of the page holding the event of key k, when
// one begins before k with the same stamp and entry; else k.
func auditPageOf(tx *Tx, k []byte) []byte {
	it := tx.iterator(badger.IteratorOptions{Prefix: []byte(pfxAudit), Reverse: true})
	defer it.Close()
	it.Seek(k)
	if it.Valid() {
		if p := it.Item().Key(); len(p) == len(k) && string(p[:len(p)-2]) == string(k[:len(k)-2]) {
			return it.Item().KeyCopy(nil)
		}
	}
	return k
}

// GetRequest reads the record of a request id; ErrNotFound when absent.
func (s *Store) GetRequest(id string) (r *pb.RequestRecord, err error) {
	err = s.View(func(tx *Tx) error { r, err = tx.GetRequest(id); return err })
	return r, err
}
