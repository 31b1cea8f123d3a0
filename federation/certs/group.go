package certs

import (
	"crypto/tls"
	"fmt"
)

// The replicas of one Raft group talk among themselves (write forwarding,
// raft) with one shared identity: a certificate whose CommonName is the
// group's name. In a federation that is the node's topology name, so a
// node's replicas may use their federation certificate; a neighbouring
// node, another group or a client holds another name (or none) and is
// refused during the handshake.

// GroupServerConfig is ServerConfig restricted to the replicas of group:
// the client's certificate must verify against the CA and carry group as
// its CommonName.
func (f Files) GroupServerConfig(group string) (*tls.Config, error) {
	if err := ValidateNodeName(group); err != nil {
		return nil, fmt.Errorf("certs: group: %w", err)
	}
	cfg, err := f.ServerConfig()
	if err != nil {
		return nil, err
	}
	cfg.VerifyConnection = RequireCommonName(group)
	return cfg, nil
}

// GroupClientConfig is ClientConfig pinned to the replicas of group: the
// server's certificate must verify against the CA for the name group
// (a SAN GenerateDev writes) and carry group as its CommonName, whatever
// address is dialled.
func (f Files) GroupClientConfig(group string) (*tls.Config, error) {
	if err := ValidateNodeName(group); err != nil {
		return nil, fmt.Errorf("certs: group: %w", err)
	}
	cfg, err := f.ClientConfig()
	if err != nil {
		return nil, err
	}
	cfg.ServerName = group
	cfg.VerifyConnection = RequireCommonName(group)
	return cfg, nil
}

// RequireCommonName is a tls.Config.VerifyConnection that accepts only a
// peer whose verified certificate chain's leaf has CommonName name. It runs
// after the chain was verified against the CA; a peer without a verified
// chain (no certificate, InsecureSkipVerify) is refused too.
func RequireCommonName(name string) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
			return fmt.Errorf("certs: peer has no verified certificate (want one for %q)", name)
		}
		if cn := cs.VerifiedChains[0][0].Subject.CommonName; cn != name {
			return fmt.Errorf("certs: peer certificate names %q, not a replica of %q", cn, name)
		}
		return nil
	}
}
