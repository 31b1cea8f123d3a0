package replica

import (
	"crypto/tls"
	"fmt"
	"net"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/cityhub/cityhub/config"
	"github.com/cityhub/cityhub/federation/certs"
	"github.com/cityhub/cityhub/tiers/node"
)

// internalPlane is what a replica uses to talk to the other replicas of its
// group: the internal listener (write forwarding), the raft transport's
// TLS and the dial options of forwarding. With internal.insecure (loopback
// only, config.Validate) everything is plain text.
type internalPlane struct {
	group     string
	lis       net.Listener
	advertise string          // the internal address registered for forwarding
	server    *tls.Config     // internal listener; nil in plain text
	raft      *node.RaftTLS   // nil in plain text
	dial      grpc.DialOption // the forwarding client's credentials
}

func newInternalPlane(cfg config.Config) (*internalPlane, error) {
	p := &internalPlane{group: cfg.Group()}
	if cfg.Internal.Insecure {
		p.dial = grpc.WithTransportCredentials(insecure.NewCredentials())
	} else {
		t := cfg.InternalTLS()
		files := certs.Files{CA: t.CA, Cert: t.Cert, Key: t.Key}
		var err error
		if p.server, err = files.GroupServerConfig(p.group); err != nil {
			return nil, fmt.Errorf("internal.tls: %w", err)
		}
		client, err := files.GroupClientConfig(p.group)
		if err != nil {
			return nil, fmt.Errorf("internal.tls: %w", err)
		}
		// Raft gets configurations of its own: tls.Config must not be
		// shared once in use, and gRPC adjusts the ones it is given.
		p.raft = &node.RaftTLS{Server: p.server.Clone(), Client: client.Clone()}
		p.dial = grpc.WithTransportCredentials(credentials.NewTLS(client))
	}
	lis, err := net.Listen("tcp", cfg.Internal.Addr)
	if err != nil {
		return nil, fmt.Errorf("internal.addr: %w", err)
	}
	p.lis = lis
	p.advertise = lis.Addr().String()
	for _, peer := range cfg.Raft.Peers {
		if peer.ID == cfg.Node.ID && peer.InternalAddr != "" {
			p.advertise = peer.InternalAddr
		}
	}
	return p, nil
}
