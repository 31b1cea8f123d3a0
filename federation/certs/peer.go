package certs

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// ErrNoPeerIdentity is returned by PeerName when the caller has not proved
// a node identity: no peer in the context, a connection without TLS, or no
// verified certificate chain.
var ErrNoPeerIdentity = errors.New("certs: no verified peer identity")

// PeerName returns the node name of the gRPC peer in ctx (a server handler's
// or interceptor's context): the CommonName of the leaf of its verified
// certificate chain. Errors wrap ErrNoPeerIdentity.
func PeerName(ctx context.Context) (string, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return "", fmt.Errorf("%w: no peer in the context", ErrNoPeerIdentity)
	}
	var info credentials.TLSInfo
	switch ai := p.AuthInfo.(type) {
	case credentials.TLSInfo:
		info = ai
	case *credentials.TLSInfo:
		if ai == nil {
			return "", fmt.Errorf("%w: connection from %v is not TLS", ErrNoPeerIdentity, p.Addr)
		}
		info = *ai
	default:
		return "", fmt.Errorf("%w: connection from %v is not TLS", ErrNoPeerIdentity, p.Addr)
	}
	chains := info.State.VerifiedChains
	if len(chains) == 0 || len(chains[0]) == 0 {
		return "", fmt.Errorf("%w: connection from %v has no verified client certificate", ErrNoPeerIdentity, p.Addr)
	}
	name := chains[0][0].Subject.CommonName
	if err := ValidateNodeName(name); err != nil {
		return "", fmt.Errorf("%w: certificate of %v: %v", ErrNoPeerIdentity, p.Addr, err)
	}
	return name, nil
}
