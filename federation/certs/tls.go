package certs

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
)

// Files names the PEM files of one node: the CA certificate(s) it trusts,
// its own certificate (chain) and its private key. NodeFiles gives the names
// GenerateDev uses.
type Files struct {
	CA, Cert, Key string
}

// ServerConfig is the TLS configuration of a node's listener: it presents
// the node's certificate and requires a client certificate that verifies
// against the CA (a client without one, or with one from another CA, fails
// the handshake). TLS 1.3 at least.
func (f Files) ServerConfig() (*tls.Config, error) {
	cert, pool, err := f.load()
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		MinVersion:   tls.VersionTLS13,
	}, nil
}

// ClientConfig is the TLS configuration of a node dialling another: it
// presents the node's certificate and verifies the server's against the CA
// and the dialled host (an address or name among the server certificate's
// SANs: its node name, localhost, 127.0.0.1, ::1 and the hosts it was made
// for). Setting ServerName on the result to a node name instead pins the
// peer to that node whatever address is dialled. TLS 1.3 at least.
func (f Files) ClientConfig() (*tls.Config, error) {
	cert, pool, err := f.load()
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		RootCAs:      pool,
		MinVersion:   tls.VersionTLS13,
	}, nil
}

// load reads the key pair and the CA pool, each error naming its file.
func (f Files) load() (tls.Certificate, *x509.CertPool, error) {
	pool, err := f.caPool()
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	certPEM, err := os.ReadFile(f.Cert)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("certs: reading certificate %s: %w", f.Cert, err)
	}
	keyPEM, err := os.ReadFile(f.Key)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("certs: reading key %s: %w", f.Key, err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("certs: key pair %s, %s: %w", f.Cert, f.Key, err)
	}
	return cert, pool, nil
}

func (f Files) caPool() (*x509.CertPool, error) {
	data, err := os.ReadFile(f.CA)
	if err != nil {
		return nil, fmt.Errorf("certs: reading CA %s: %w", f.CA, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("certs: CA %s: no PEM certificate in it", f.CA)
	}
	return pool, nil
}
