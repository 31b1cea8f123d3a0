package node

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// RaftTLS is the mutual TLS of the raft transport between the replicas of
// a group. Server is the listener's configuration: it must require and
// verify a client certificate and accept only the group's name
// (certs.Files.GroupServerConfig). Client dials the other members and must
// verify that they hold the group's name (certs.Files.GroupClientConfig).
type RaftTLS struct {
	Server, Client *tls.Config
}

// handshakeTimeout bounds a raft connection's TLS handshake: a caller that
// connects and says nothing does not hold a goroutine for ever.
const handshakeTimeout = 10 * time.Second

// raft transport tuning (as NewTCPTransport had it).
const (
	transportMaxPool = 5
	transportTimeout = 10 * time.Second
)

// newTransport makes the raft transport: plain TCP without RaftTLS (the
// loopback development mode config.Validate allows), mutual TLS with it.
func newTransport(cfg Config, adv *net.TCPAddr, hl hclog.Logger) (*raft.NetworkTransport, error) {
	if cfg.RaftTLS == nil {
		return raft.NewTCPTransportWithLogger(cfg.RaftAddr, adv, transportMaxPool, transportTimeout, hl)
	}
	if cfg.RaftTLS.Server == nil || cfg.RaftTLS.Client == nil {
		return nil, errors.New("raft TLS needs both a server and a client configuration")
	}
	if cfg.RaftTLS.Server.ClientAuth != tls.RequireAndVerifyClientCert {
		return nil, errors.New("raft TLS: the listener must require and verify client certificates")
	}
	sl, err := newTLSStreamLayer(cfg.RaftAddr, adv, cfg.RaftTLS)
	if err != nil {
		return nil, err
	}
	return raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: sl, MaxPool: transportMaxPool, Timeout: transportTimeout, Logger: hl,
	}), nil
}

// tlsStreamLayer is a raft.StreamLayer over mutual TLS.
type tlsStreamLayer struct {
	net.Listener // accepts *handshakeConn
	advertise    net.Addr
	client       *tls.Config
}

var _ raft.StreamLayer = (*tlsStreamLayer)(nil)

func newTLSStreamLayer(bind string, adv *net.TCPAddr, t *RaftTLS) (*tlsStreamLayer, error) {
	l, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, err
	}
	var advertise net.Addr = adv
	if adv == nil {
		advertise = l.Addr()
	}
	return &tlsStreamLayer{
		Listener:  &tlsListener{Listener: l, cfg: t.Server},
		advertise: advertise,
		client:    t.Client,
	}, nil
}

// Addr is the address other members dial (raft's advertise address).
func (s *tlsStreamLayer) Addr() net.Addr { return s.advertise }

// Dial connects to a member and completes the handshake (the member must
// prove the group's name) within timeout.
func (s *tlsStreamLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	d := &net.Dialer{Timeout: timeout}
	conn, err := tls.DialWithDialer(d, "tcp", string(addr), s.client)
	if err != nil {
		return nil, fmt.Errorf("raft TLS dial %s: %w", addr, err)
	}
	return conn, nil
}

// tlsListener wraps accepted connections in TLS; the handshake happens on
// the first read, bounded by handshakeTimeout, in the connection's own
// goroutine (raft's accept loop never waits for a slow handshake).
type tlsListener struct {
	net.Listener
	cfg *tls.Config
}

func (l *tlsListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &handshakeConn{Conn: tls.Server(c, l.cfg)}, nil
}

// handshakeConn completes the server handshake before the first read or
// write; a caller without the group's certificate gets nothing but the
// handshake error and a closed connection.
type handshakeConn struct {
	*tls.Conn
	once sync.Once
	err  error
}

func (c *handshakeConn) handshake() error {
	c.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
		defer cancel()
		if c.err = c.Conn.HandshakeContext(ctx); c.err != nil {
			_ = c.Conn.Close()
		}
	})
	return c.err
}

func (c *handshakeConn) Read(b []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	return c.Conn.Read(b)
}

func (c *handshakeConn) Write(b []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	return c.Conn.Write(b)
}

// gatedTransport is the raft transport with its heartbeat handler behind a
// gate that Shutdown closes. hashicorp/raft handles a heartbeat on the
// transport's connection goroutine, which raft.Shutdown does not wait
// for: a heartbeat that began before the shutdown could still write the
// term to the stable store after Shutdown closed it, and raft panics when
// that write fails ("failed to save current term: closed").
type gatedTransport struct {
	*raft.NetworkTransport
	mu     sync.RWMutex
	closed bool
}

// SetHeartbeatHandler puts fn behind the gate (raft.NewRaft calls it).
func (t *gatedTransport) SetHeartbeatHandler(fn func(rpc raft.RPC)) {
	if fn == nil {
		t.NetworkTransport.SetHeartbeatHandler(nil)
		return
	}
	t.NetworkTransport.SetHeartbeatHandler(func(rpc raft.RPC) {
		t.mu.RLock()
		defer t.mu.RUnlock()
		if t.closed {
			rpc.Respond(nil, raft.ErrTransportShutdown)
			return
		}
		fn(rpc)
	})
}

// closeHeartbeats waits for the heartbeats being handled and refuses
// every later one.
func (t *gatedTransport) closeHeartbeats() {
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
}
